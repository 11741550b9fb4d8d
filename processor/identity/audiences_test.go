package identity_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
)

// A profile enters an audience through its events and leaves it as stream
// time passes with no event of its own; triggers fire on single events.
func TestAudiencesEnterAndLeaveWithTime(t *testing.T) {
	fs, err := features.Compile([]config.Feature{
		{Name: "orders_1h", Event: "Order Completed", Agg: "count", Window: "1h"},
		// No rule reads it: the rules are evaluated without it, and the
		// activations still carry it.
		{Name: "revenue_1h", Event: "Order Completed", Agg: "sum", Property: "revenue", Window: "1h"},
	}, features.Options{})
	if err != nil {
		t.Fatal(err)
	}
	as, err := audience.Compile([]audience.Definition{
		{Name: "active_buyers", Rule: `features.orders_1h >= 2`},
		{Name: "pro", Rule: `traits.plan == "pro"`},
	}, []audience.Trigger{
		{Name: "big_order", Event: "Order Completed", Rule: `properties.revenue > 500`},
		{Name: "pro_from_fall", Event: "Signed Up", Rule: `traits.plan == "pro" && properties.source.campaign == "fall"`},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newHubFull(t, 3, config.DefaultIdentity(), &fs, &as)
	send := func(e string) {
		h.send(e)
		if err := h.d.Drain(nil); err != nil {
			t.Fatal(err)
		}
	}
	profiles := map[string]string{} // "type name" → the profile it carried
	activations := func() []string {
		var out []string
		for _, r := range h.d.Output("t.activations") {
			var a identity.Activation
			if err := json.Unmarshal(r.Value, &a); err != nil {
				t.Fatal(err)
			}
			out = append(out, a.Type+" "+a.Name)
			profiles[a.Type+" "+a.Name] = string(a.Profile)
		}
		return out
	}
	send(`{"type":"identify","userId":"u1","traits":{"plan":"pro"},"messageId":"1","timestamp":"2026-03-01T10:00:00Z"}`)
	send(`{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":20},"messageId":"2","timestamp":"2026-03-01T10:10:00Z"}`)
	if got := fmt.Sprint(activations()); got != "[audience_entered pro]" {
		t.Fatalf("after one order: %s", got)
	}
	send(`{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":900},"messageId":"3","timestamp":"2026-03-01T10:20:00Z"}`)
	if got := fmt.Sprint(activations()); got != "[event_triggered big_order audience_entered active_buyers]" {
		t.Fatalf("after the second order: %s", got)
	}
	for _, act := range []string{"event_triggered big_order", "audience_entered active_buyers"} {
		var p struct {
			Traits   map[string]any `json:"traits"`
			Features map[string]any `json:"features"`
		}
		if err := json.Unmarshal([]byte(profiles[act]), &p); err != nil {
			t.Fatalf("%s: profile %q: %v", act, profiles[act], err)
		}
		if got := fmt.Sprint(p.Features, p.Traits); got != "map[orders_1h:2 revenue_1h:920] map[plan:pro]" {
			t.Errorf("%s carried features and traits %s, want every feature and trait", act, got)
		}
	}
	// Other customers' later events move stream time past u1's window;
	// the sweep evaluates u1 with no event of its own. Every task sees a
	// later event (keys spread over the partitions).
	for i := 0; i < 30; i++ {
		send(fmt.Sprintf(`{"type":"page","userId":"other-%d","messageId":"o%d","timestamp":"2026-03-01T12:%02d:00Z"}`, i, i, i))
	}
	activations()
	if err := h.d.AdvanceWallClock(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := h.d.Drain(nil); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(activations()); got != "[audience_exited active_buyers]" {
		t.Fatalf("after time passed: %s", got)
	}
	// A trigger reads the profile's traits and nested properties.
	send(`{"type":"track","userId":"u1","event":"Signed Up","properties":{"source":{"campaign":"spring"}},"messageId":"s1","timestamp":"2026-03-01T12:40:00Z"}`)
	send(`{"type":"track","userId":"u2","event":"Signed Up","properties":{"source":{"campaign":"fall"}},"messageId":"s2","timestamp":"2026-03-01T12:41:00Z"}`)
	send(`{"type":"track","userId":"u1","event":"Signed Up","properties":{"source":{"campaign":"fall"}},"messageId":"s3","timestamp":"2026-03-01T12:42:00Z"}`)
	if got := fmt.Sprint(activations()); got != "[event_triggered pro_from_fall]" {
		t.Fatalf("after three sign-ups, only u1's in the fall campaign fires: %s", got)
	}
	s := h.state()
	if p := s.profileOf("user_id:u1"); p == nil {
		t.Fatal("no profile")
	}
}
