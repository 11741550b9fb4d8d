package identity_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
)

// A round of the maintenance sweep passes by the profiles that their own
// events evaluated since it began, and visits every other profile once.
func TestSweepPassesByFreshProfiles(t *testing.T) {
	defer identity.SetSweepBudget(0)() // one slice of profiles a sweep
	fs, err := features.Compile([]config.Feature{
		{Name: "orders_1h", Event: "Order Completed", Agg: "count", Window: "1h"},
	}, features.Options{})
	if err != nil {
		t.Fatal(err)
	}
	as, err := audience.Compile([]audience.Definition{{Name: "buyers", Rule: `features.orders_1h >= 2`}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := newHubOpts(t, 3, config.DefaultIdentity(), &fs, &as, func(o *identity.Options) { o.Registerer = reg })
	counts := func() (visited, passed int) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "tessera_profile_sweep_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				switch m.GetLabel()[0].GetValue() {
				case "visited":
					visited = int(m.GetCounter().GetValue())
				case "passed":
					passed = int(m.GetCounter().GetValue())
				}
			}
		}
		return visited, passed
	}
	// Stream time stays within roundEvery (a minute) of the round's
	// start, so that one round is all the sweeps make.
	const n = 150
	orders := func(second int) {
		for i := range n {
			h.send(fmt.Sprintf(`{"type":"track","userId":"u%d","event":"Order Completed","messageId":"m%d-%d","timestamp":"2026-03-01T10:00:%02d.%03dZ"}`,
				i, second, i, second+i/10, i%10*100))
		}
		if err := h.d.Drain(nil); err != nil {
			t.Fatal(err)
		}
	}
	advance := func() {
		t.Helper()
		if err := h.d.AdvanceWallClock(250 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	orders(0)
	// The first sweep begins a round: one slice of each task's
	// profiles.
	for i := 0; ; i++ {
		if v, _ := counts(); v > 0 {
			break
		}
		if i == 10 {
			t.Fatal("no round began")
		}
		advance()
	}
	first, _ := counts()
	orders(20) // every profile is evaluated by an event
	for i := 0; ; i++ {
		if v, p := counts(); v+p >= n {
			break
		}
		if i == 100 {
			v, p := counts()
			t.Fatalf("the round has not ended: %d visited, %d passed by", v, p)
		}
		advance()
	}
	if v, p := counts(); v != first || p != n-first {
		t.Errorf("the round visited %d profiles and passed by %d, want %d visited before the events and the other %d passed by", v, p, first, n-first)
	}
	t.Logf("%d profiles visited before the events, %d after", first, n-first)
	if first >= n {
		t.Fatalf("the first sweep visited all %d profiles: a round must take several", first)
	}
}
