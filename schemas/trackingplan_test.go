package schemas

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/tessera-cdp/tessera/config"
)

// testPlans are the plans of testdata/plans, as a config would list them.
var testPlans = []config.TrackingPlan{
	{Event: "Order Completed", Schema: "plans/order_completed.json", Policy: PolicyBlock},
	{Event: "Signed Up", Schema: "plans/signed_up.json", Policy: PolicyAllow},
	{Event: "identify", Schema: "plans/identify.json", Policy: PolicyBlock},
	{Event: "page", Schema: "plans/page.json", Policy: PolicyAllow},
	{Event: "group", Schema: "plans/group.json", Policy: PolicyBlock},
}

func loadTestPlans(t testing.TB) *TrackingPlans {
	t.Helper()
	p, err := LoadTrackingPlans(testPlans, "testdata")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// normalized runs raw through a real Normalizer, as every source does
// before it publishes.
func normalized(t testing.TB, raw string) Normalized {
	t.Helper()
	var n Normalizer
	v, err := n.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := n.Normalize(v, Input{})
	if err != nil {
		t.Fatalf("normalizing %s: %v", raw, err)
	}
	return ev
}

func TestTrackingPlansCheck(t *testing.T) {
	plans := loadTestPlans(t)
	if got := plans.Len(); got != len(testPlans) {
		t.Fatalf("Len() = %d, want %d", got, len(testPlans))
	}
	tests := []struct {
		name    string
		event   string
		want    *Violation // nil: no violation
		wantWhy string
	}{
		{
			name:  "track matches its plan",
			event: `{"type":"track","userId":"u1","event":"Order Completed","properties":{"order_id":"o1","revenue":12.5,"currency":"EUR","products":[{"sku":"a","quantity":2}]}}`,
		},
		{
			name:    "track with a string where the plan wants a number",
			event:   `{"type":"track","userId":"u1","event":"Order Completed","properties":{"order_id":"o1","revenue":"12.50"}}`,
			want:    &Violation{Event: "Order Completed", Policy: PolicyBlock, Blocked: true, Errors: []string{"/revenue: got string, want number"}},
			wantWhy: `tracking plan "Order Completed": /revenue: got string, want number`,
		},
		{
			name:  "track missing required properties, several errors sorted",
			event: `{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":-1,"currency":"YEN"}}`,
			want: &Violation{Event: "Order Completed", Policy: PolicyBlock, Blocked: true, Errors: []string{
				"/: missing property 'order_id'",
				"/currency: value must be one of 'USD', 'EUR', 'GBP'",
				"/revenue: minimum: got -1, want 0",
			}},
		},
		{
			name:  "track without properties validates as an empty object",
			event: `{"type":"track","userId":"u1","event":"Order Completed"}`,
			want:  &Violation{Event: "Order Completed", Policy: PolicyBlock, Blocked: true, Errors: []string{"/: missing properties 'order_id', 'revenue'"}},
		},
		{
			name:  "track through a $ref to another file",
			event: `{"type":"track","userId":"u1","event":"Order Completed","properties":{"order_id":"o1","revenue":1,"products":[{"sku":"a"},{"quantity":0}]}}`,
			want: &Violation{Event: "Order Completed", Policy: PolicyBlock, Blocked: true, Errors: []string{
				"/products/1: missing property 'sku'",
				"/products/1/quantity: minimum: got 0, want 1",
			}},
		},
		{
			name:  "allow policy reports without blocking",
			event: `{"type":"track","anonymousId":"a1","event":"Signed Up","properties":{"plan":"gold","coupon":"X"}}`,
			want: &Violation{Event: "Signed Up", Policy: PolicyAllow, Errors: []string{
				"/: additional properties 'coupon' not allowed",
				"/plan: value must be one of 'free', 'pro'",
			}},
		},
		{
			name:  "track event without a plan",
			event: `{"type":"track","userId":"u1","event":"Product Viewed","properties":{"revenue":"x"}}`,
		},
		{
			name:  "track plans do not apply to a page with the same properties",
			event: `{"type":"page","userId":"u1","name":"Order Completed","properties":{"path":"/checkout","revenue":"x"}}`,
		},
		{
			name:  "identify validates traits, formats asserted",
			event: `{"type":"identify","userId":"u1","traits":{"email":"not-an-email","age":"41"}}`,
			want: &Violation{Event: "identify", Policy: PolicyBlock, Blocked: true, Errors: []string{
				"/age: got string, want integer",
				"/email: 'not-an-email' is not valid email: missing @",
			}},
		},
		{
			name:  "identify with null traits",
			event: `{"type":"identify","userId":"u1","traits":null}`,
			want:  &Violation{Event: "identify", Policy: PolicyBlock, Blocked: true, Errors: []string{"/: missing property 'email'"}},
		},
		{
			name:  "identify matches",
			event: `{"type":"identify","userId":"u1","traits":{"email":"jane@example.com","age":41}}`,
		},
		{
			name:  "page validates properties",
			event: `{"type":"page","userId":"u1","properties":{"path":"checkout"}}`,
			want:  &Violation{Event: "page", Policy: PolicyAllow, Errors: []string{"/path: 'checkout' does not match pattern '^/'"}},
		},
		{
			name:  "group validates traits",
			event: `{"type":"group","userId":"u1","groupId":"g1","traits":{"employees":12.5}}`,
			want:  &Violation{Event: "group", Policy: PolicyBlock, Blocked: true, Errors: []string{"/employees: got number, want integer"}},
		},
		{
			name:  "screen has no plan",
			event: `{"type":"screen","userId":"u1","properties":{"path":1}}`,
		},
		{
			name:  "alias has no plan",
			event: `{"type":"alias","userId":"u1","previousId":"a1"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, bad := plans.Check(normalized(t, tt.event))
			if tt.want == nil {
				if bad {
					t.Fatalf("Check() = %+v, want no violation", v)
				}
				return
			}
			if !bad {
				t.Fatalf("Check() found no violation, want %+v", *tt.want)
			}
			if v.Event != tt.want.Event || v.Policy != tt.want.Policy || v.Blocked != tt.want.Blocked || !slices.Equal(v.Errors, tt.want.Errors) {
				t.Fatalf("Check() =\n  %#v\nwant\n  %#v", v, *tt.want)
			}
			if tt.wantWhy != "" && v.Reason() != tt.wantWhy {
				t.Fatalf("Reason() = %q, want %q", v.Reason(), tt.wantWhy)
			}
		})
	}
}

func TestTrackingPlansErrorsAreCapped(t *testing.T) {
	plans := loadTestPlans(t)
	props := `{"order_id":"o1","revenue":1,"products":[`
	for i := range 2 * MaxViolationErrors {
		if i > 0 {
			props += ","
		}
		props += `{"sku":1}`
	}
	props += `]}`
	v, bad := plans.Check(normalized(t, `{"type":"track","userId":"u","event":"Order Completed","properties":`+props+`}`))
	if !bad {
		t.Fatal("no violation")
	}
	if len(v.Errors) != MaxViolationErrors {
		t.Fatalf("%d errors, want %d: %q", len(v.Errors), MaxViolationErrors, v.Errors)
	}
	if last, want := v.Errors[MaxViolationErrors-1], fmt.Sprintf("and %d more", MaxViolationErrors+1); last != want {
		t.Fatalf("last error %q, want %q", last, want)
	}
}

func TestNilTrackingPlans(t *testing.T) {
	var plans *TrackingPlans
	if _, bad := plans.Check(normalized(t, `{"type":"identify","userId":"u"}`)); bad {
		t.Fatal("a nil *TrackingPlans found a violation")
	}
	if plans.Len() != 0 {
		t.Fatal("a nil *TrackingPlans has plans")
	}
}

func TestLoadTrackingPlansErrors(t *testing.T) {
	tests := []struct {
		name  string
		plans []config.TrackingPlan
		want  string
	}{
		{
			name:  "missing file",
			plans: []config.TrackingPlan{{Event: "Order Completed", Schema: "plans/missing.json", Policy: PolicyBlock}},
			want:  `tracking plan "Order Completed": reading schema testdata/plans/missing.json: no such file or directory`,
		},
		{
			name:  "not JSON",
			plans: []config.TrackingPlan{{Event: "Order Completed", Schema: "plans/not_json.json", Policy: PolicyBlock}},
			want:  `tracking plan "Order Completed": parsing schema testdata/plans/not_json.json: line 3, column 18: invalid character ',' looking for beginning of object key string`,
		},
		{
			name:  "not a JSON Schema",
			plans: []config.TrackingPlan{{Event: "Order Completed", Schema: "plans/bad_keyword.json", Policy: PolicyAllow}},
			want:  `tracking plan "Order Completed": compiling schema testdata/plans/bad_keyword.json: not a valid JSON Schema: /properties/revenue/type: got string, want array; /properties/revenue/type: value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'`,
		},
		{
			name:  "$ref to a missing file",
			plans: []config.TrackingPlan{{Event: "Order Completed", Schema: "plans/bad_ref.json", Policy: PolicyAllow}},
			want:  `tracking plan "Order Completed": compiling schema testdata/plans/bad_ref.json: failing loading "file://` + mustAbs(t, "testdata/plans/no_such_file.json") + `": open ` + mustAbs(t, "testdata/plans/no_such_file.json") + `: no such file or directory`,
		},
		{
			name:  "bad policy",
			plans: []config.TrackingPlan{{Event: "Signed Up", Schema: "plans/signed_up.json", Policy: "warn"}},
			want:  `tracking plan "Signed Up": policy must be allow or block, got "warn"`,
		},
		{
			name:  "no schema",
			plans: []config.TrackingPlan{{Event: "Signed Up", Policy: PolicyAllow}},
			want:  `tracking plan "Signed Up": schema must name a JSON Schema file`,
		},
		{
			name:  "no event",
			plans: []config.TrackingPlan{testPlans[0], {Schema: "plans/signed_up.json", Policy: PolicyAllow}},
			want:  `tracking plan 1: event must not be empty`,
		},
		{
			name:  "twice",
			plans: []config.TrackingPlan{testPlans[0], testPlans[1], {Event: "Order Completed", Schema: "plans/signed_up.json", Policy: PolicyAllow}},
			want:  `tracking plan "Order Completed": listed twice (plans 0 and 2)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadTrackingPlans(tt.plans, "testdata")
			if err == nil {
				t.Fatalf("loaded %d plans, want error %q", p.Len(), tt.want)
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n  %s\nwant\n  %s", err, tt.want)
			}
		})
	}
}

func TestTrackingPlansShareFiles(t *testing.T) {
	// Two plans on one file, and a plan on a file another plan $refs:
	// the compiler already holds it, which is not an error.
	p, err := LoadTrackingPlans([]config.TrackingPlan{
		{Event: "Order Completed", Schema: "plans/order_completed.json", Policy: PolicyBlock},
		{Event: "Order Refunded", Schema: "plans/order_completed.json", Policy: PolicyAllow},
		{Event: "Product Added", Schema: "plans/product.json", Policy: PolicyAllow},
	}, "testdata")
	if err != nil {
		t.Fatal(err)
	}
	v, bad := p.Check(normalized(t, `{"type":"track","userId":"u","event":"Product Added","properties":{}}`))
	if !bad || v.Errors[0] != "/: missing property 'sku'" {
		t.Fatalf("Check() = %+v, %v", v, bad)
	}
}

func TestTrackingPlansConcurrentCheck(t *testing.T) {
	plans := loadTestPlans(t)
	good := normalized(t, `{"type":"track","userId":"u1","event":"Order Completed","properties":{"order_id":"o1","revenue":1}}`)
	bad := normalized(t, `{"type":"identify","userId":"u1","traits":{"email":"x"}}`)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if v, ok := plans.Check(good); ok {
					errs <- fmt.Sprintf("good event violated: %+v", v)
					return
				}
				if _, ok := plans.Check(bad); !ok {
					errs <- "bad event passed"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func BenchmarkTrackingPlansCheck(b *testing.B) {
	plans := loadTestPlans(b)
	ev := normalized(b, `{"type":"track","userId":"u1","event":"Order Completed","properties":{"order_id":"o1","revenue":12.5,"currency":"EUR","products":[{"sku":"a","quantity":2}]}}`)
	unplanned := normalized(b, `{"type":"track","userId":"u1","event":"Product Viewed","properties":{"sku":"a"}}`)
	b.Run("planned", func(b *testing.B) {
		for b.Loop() {
			plans.Check(ev)
		}
	})
	b.Run("unplanned", func(b *testing.B) {
		for b.Loop() {
			plans.Check(unplanned)
		}
	})
}
