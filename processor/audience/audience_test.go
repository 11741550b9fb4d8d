package audience

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestCompileAndMembers(t *testing.T) {
	s, err := Compile([]Definition{
		{Name: "big_spenders", Rule: `features.spend_30d > 100`},
		{Name: "pro", Rule: `traits.plan == "pro" && rfm.segment in ["Champions", "Loyal"]`},
		{Name: "likely_churn", Rule: `predictions["90d"].p_alive < 0.3`},
	}, []Trigger{{Name: "big_order", Event: "Order Completed", Rule: `properties.revenue > 500`}})
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{
		Traits:      map[string]any{"plan": "pro"},
		Features:    map[string]any{"spend_30d": 150.0},
		Predictions: map[string]any{"90d": map[string]any{"p_alive": 0.2}},
		RFM:         map[string]any{"segment": "Loyal"},
	}
	got := s.Members(env)
	if !got["big_spenders"] || !got["pro"] || !got["likely_churn"] {
		t.Errorf("members %v", got)
	}
	// A missing feature is no match, not an error.
	if s.Members(&Env{})["big_spenders"] {
		t.Error("empty profile matched")
	}
	fired := s.Fired(&EventEnv{Event: "Order Completed", Properties: map[string]any{"revenue": 900.0}})
	if len(fired) != 1 || fired[0].Name != "big_order" {
		t.Errorf("fired %v", fired)
	}
	if len(s.Fired(&EventEnv{Event: "Viewed", Properties: map[string]any{"revenue": 900.0}})) != 0 {
		t.Error("trigger fired on another event")
	}
}

func TestCompileErrorsSayWhere(t *testing.T) {
	tests := []struct {
		rule, want string
	}{
		{`features.x >`, `audience "a": rule: unexpected token EOF (line 1, column 12)`},
		{`traits.plan == `, `(line 1, column 15)`},
		{`1 + 1`, `expected bool`},
	}
	for _, tt := range tests {
		_, err := Compile([]Definition{{Name: "a", Rule: tt.rule}}, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.rule, err, tt.want)
		}
	}
}

func TestActivationIDIsDeterministic(t *testing.T) {
	a := ActivationID("p1", "vip", "audience_entered", "m-1")
	if a != ActivationID("p1", "vip", "audience_entered", "m-1") || a == ActivationID("p1", "vip", "audience_exited", "m-1") {
		t.Error("ids")
	}
}

func TestSetDestinations(t *testing.T) {
	set, err := Compile(
		[]Definition{{Name: "vip", Rule: "true", Destinations: []string{"crm", "hook"}}, {Name: "all", Rule: "true"}},
		[]Trigger{{Name: "big_order", Rule: "true", Destinations: []string{"slack"}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"vip": "[crm hook]", "all": "[]", "big_order": "[slack]", "nope": "[]"} {
		if got := fmt.Sprint(set.Destinations(name)); got != want {
			t.Errorf("Destinations(%q) = %s, want %s", name, got, want)
		}
	}
}

func TestNeedsOf(t *testing.T) {
	all := Everything
	for _, tc := range []struct {
		rule string
		want Needs
	}{
		{`traits.plan == "vip"`, Needs{Traits: true, TraitNames: []string{"plan"}}},
		{`features.orders_30d >= 3 && predictions.p_alive > 0.5`, Needs{Features: true, Predictions: true, FeatureNames: []string{"orders_30d"}}},
		{`rfm.segment == "Champions" || events["Order Completed"] > 2`, Needs{RFM: true, Events: true}},
		{`traits["plan"] in ["a", "b"] and traits.age > 3`, Needs{Traits: true, TraitNames: []string{"plan", "age"}}},
		{`len(traits) > 0 and traits.plan == "x"`, Needs{Traits: true}}, // the whole map
		{`traits[traits.key] == 1`, Needs{Traits: true}},                // a computed key
		{`true`, Needs{}},
		{`traits.plan ==`, all}, // does not parse
	} {
		if got := NeedsOf(tc.rule); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("NeedsOf(%q) = %+v, want %+v", tc.rule, got, tc.want)
		}
	}
}

// TestNeedsOfAll: the profile stage builds, for each event, only what its
// audiences read together; a root any rule reads whole is needed whole.
func TestNeedsOfAll(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []string
		want  Needs
	}{
		{"none", nil, Needs{}},
		{"names united, sorted, once",
			[]string{`features.orders_30d >= 3`, `features.revenue_30d > 10 && features.orders_30d == 0`, `traits.plan == "pro"`},
			Needs{Traits: true, Features: true, TraitNames: []string{"plan"}, FeatureNames: []string{"orders_30d", "revenue_30d"}}},
		{"one rule reads every feature",
			[]string{`features.orders_30d >= 3`, `len(features) > 2`},
			Needs{Features: true}},
		{"a rule without traits leaves the names of the others",
			[]string{`traits.plan == "pro"`, `events["Signed Up"] > 0`},
			Needs{Traits: true, Events: true, TraitNames: []string{"plan"}}},
		{"predictions and rfm",
			[]string{`predictions.p_alive > 0.5`, `rfm.segment == "Champions"`},
			Needs{Predictions: true, RFM: true}},
		{"a rule that does not parse needs everything", []string{`traits.plan ==`, `true`}, Everything},
		{"properties by name, nested and optional",
			[]string{`properties.source.campaign == "fall"`, `properties?.revenue > 5`, `properties["coupon"] != nil`},
			Needs{Properties: true, PropertyNames: []string{"coupon", "revenue", "source"}}},
		{"a rule that reads every property", []string{`properties.revenue > 5`, `"coupon" in properties`}, Needs{Properties: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NeedsOfAll(tc.rules); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("NeedsOfAll(%q) = %+v, want %+v", tc.rules, got, tc.want)
			}
		})
	}
	set, err := Compile([]Definition{
		{Name: "a", Rule: `features.orders_30d >= 3`},
		{Name: "b", Rule: `traits.plan == "pro" && features.page_views_7d > 1`},
	}, []Trigger{{Name: "t", Event: "Order Completed", Rule: `properties.revenue > 5 && traits.tier == "gold"`}})
	if err != nil {
		t.Fatal(err)
	}
	if got := set.TriggerNeeds(); fmt.Sprint(got) != fmt.Sprint(Needs{Traits: true, TraitNames: []string{"tier"}, Properties: true, PropertyNames: []string{"revenue"}}) {
		t.Errorf("Set.TriggerNeeds() = %+v, want the trait tier and the property revenue", got)
	}
	if !set.Watches("Order Completed") || set.Watches("Product Viewed") || set.Watches("") {
		t.Error("Watches: the trigger watches Order Completed only")
	}
	want := Needs{Traits: true, Features: true, TraitNames: []string{"plan"}, FeatureNames: []string{"orders_30d", "page_views_7d"}}
	if got := set.Needs(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Set.Needs() = %+v, want %+v (triggers read events, not profiles)", got, want)
	}
}

// TestEventsOfUnseenEventsCountZero: events["X"] of an event the profile
// never had is 0, so "fewer than" rules match it.
func TestEventsOfUnseenEventsCountZero(t *testing.T) {
	env := &Env{Events: map[string]any{"Order Completed": int64(3)}}
	for rule, want := range map[string]bool{
		`events["Order Completed"] > 2`:     true,
		`events["Refund"] == 0`:             true,
		`events["Refund"] < 1`:              true,
		`events["Refund"] > 0`:              false,
		`events.Signup >= 1`:                false,
		`events["Order Completed"] + 1 > 3`: true,
	} {
		p, err := CompileRule(rule)
		if err != nil {
			t.Fatalf("%s: %v", rule, err)
		}
		if got := Match(p, env); got != want {
			t.Errorf("%s = %v, want %v", rule, got, want)
		}
	}
}

// TestMembersConcurrently runs a Set from many goroutines, as the
// processing threads of one instance do, alternating profiles that match
// with ones whose rules fail at run time: the pooled expression machines
// must carry nothing from one run into the next.
func TestMembersConcurrently(t *testing.T) {
	s, err := Compile([]Definition{
		{Name: "big_spenders", Rule: `features.spend_30d > 100`},
		{Name: "pro", Rule: `let p = traits.plan; p == "pro"`},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				spend, plan := float64(50+100*((g+i)%2)), "free"
				if i%3 == 0 {
					plan = "pro"
				}
				env := &Env{Traits: map[string]any{"plan": plan}, Features: map[string]any{"spend_30d": spend}}
				if i%5 == 0 {
					env = &Env{} // every rule fails at run time
				}
				got := s.Members(env)
				want := map[string]bool{
					"big_spenders": env.Features != nil && spend > 100,
					"pro":          env.Traits != nil && plan == "pro",
				}
				if got["big_spenders"] != want["big_spenders"] || got["pro"] != want["pro"] {
					errs <- fmt.Sprintf("goroutine %d, run %d: members %v, want %v", g, i, got, want)
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

// BenchmarkMembers evaluates the five audiences of tessera bench over one
// profile, as the profile stage does for every event.
func BenchmarkMembers(b *testing.B) {
	s, err := Compile([]Definition{
		{Name: "big_spenders", Rule: `features.revenue_30d > 1000`},
		{Name: "frequent_buyers", Rule: `features.orders_30d >= 3`},
		{Name: "window_shoppers", Rule: `features.products_viewed_7d >= 5 && features.orders_30d == 0`},
		{Name: "pro_plan", Rule: `traits.plan == "pro"`},
		{Name: "engaged_readers", Rule: `features.page_views_7d >= 10`},
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	env := &Env{
		Traits: map[string]any{"plan": "pro", "email": "a@example.com"},
		Features: map[string]any{"revenue_30d": 1200.0, "orders_30d": int64(4),
			"products_viewed_7d": int64(7), "page_views_7d": int64(3)},
	}
	b.ReportAllocs()
	for b.Loop() {
		if m := s.Members(env); !m["big_spenders"] {
			b.Fatal("big_spenders should match")
		}
	}
}
