package identity_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/topology"
)

// Features follow their profile through merges, across partitions: the
// merged profile's values are those of all its events.
func TestFeaturesFollowMerges(t *testing.T) {
	set, err := features.Compile([]config.Feature{
		{Name: "orders", Event: "Order Completed", Agg: "count", Window: "lifetime"},
		{Name: "revenue_7d", Event: "Order Completed", Agg: "sum", Property: "revenue", Window: "7d"},
		{Name: "pages_1h", Type: "page", Agg: "count", Window: "1h"},
	}, features.Options{AllowedLateness: 60 * 24 * time.Hour}) // the February order arrives a month late
	if err != nil {
		t.Fatal(err)
	}
	for seed := int64(0); seed < 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			h := newHubWith(t, 12, config.DefaultIdentity(), set)
			pick := picker(seed)
			for _, e := range []string{
				`{"type":"page","anonymousId":"a1","messageId":"1","timestamp":"2026-03-01T10:00:00Z"}`,
				`{"type":"track","anonymousId":"a1","event":"Order Completed","properties":{"revenue":10},"messageId":"2","timestamp":"2026-03-01T10:05:00Z"}`,
				`{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":5.5},"messageId":"3","timestamp":"2026-03-01T10:10:00Z"}`,
				`{"type":"track","anonymousId":"a2","event":"Order Completed","properties":{"revenue":100},"messageId":"4","timestamp":"2026-02-01T10:10:00Z"}`,
				`{"type":"alias","userId":"u1","previousId":"a1","messageId":"5","timestamp":"2026-03-01T10:20:00Z"}`,
				`{"type":"identify","userId":"u1","anonymousId":"a2","messageId":"6","timestamp":"2026-03-01T10:30:00Z"}`,
			} {
				h.send(e)
				if err := h.d.Drain(pick); err != nil {
					t.Fatal(err)
				}
			}
			s := h.state()
			p := s.profileOf("user_id:u1")
			if p == nil || len(s.live) != 1 {
				t.Fatalf("want one profile:\n%s", s.describe())
			}
			task := topology.TaskID{Group: 1, Partition: topology.PartitionFor([]byte(p.ID), 12)}
			vals, err := set.Values(h.d.TaskWindow(task, identity.FeaturesStore), []byte(p.ID), time.Date(2026, 3, 1, 10, 45, 0, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			// The February order is outside 7 days but counts for lifetime.
			if vals["orders"] != int64(3) || vals["revenue_7d"] != 15.5 || vals["pages_1h"] != int64(1) {
				t.Errorf("merged profile's features: %v", vals)
			}
		})
	}
}

// A feature defined after events arrived is computed from each profile's
// recent events: at the profile's next event, or by the sweep for a
// profile that gets none; never counting an event twice, merges included.
func TestNewFeatureComputedFromHistory(t *testing.T) {
	set, err := features.Compile([]config.Feature{
		{Name: "orders", Event: "Order Completed", Agg: "count", Window: "lifetime"},
		{Name: "revenue_30d", Event: "Order Completed", Agg: "sum", Property: "revenue", Window: "30d"},
	}, features.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for seed := int64(0); seed < 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			var current *features.Set
			rules := config.DefaultIdentity()
			h := newHubSwitch(t, 3, rules, &current)
			pick := picker(seed)
			send := func(e string) {
				h.send(e)
				if err := h.d.Drain(pick); err != nil {
					t.Fatal(err)
				}
			}
			send(`{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":10},"messageId":"1","timestamp":"2026-03-01T10:00:00Z"}`)
			send(`{"type":"track","anonymousId":"a1","event":"Order Completed","properties":{"revenue":7},"messageId":"2","timestamp":"2026-03-01T10:01:00Z"}`)
			send(`{"type":"track","userId":"u2","event":"Order Completed","properties":{"revenue":1},"messageId":"3","timestamp":"2026-03-01T10:02:00Z"}`)
			current = set // defined now, after three orders
			send(`{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":5},"messageId":"4","timestamp":"2026-03-01T10:03:00Z"}`)
			send(`{"type":"alias","userId":"u1","previousId":"a1","messageId":"5","timestamp":"2026-03-01T10:04:00Z"}`)
			// u2 gets no event: the sweep computes it.
			if err := h.d.AdvanceWallClock(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			if err := h.d.Drain(pick); err != nil {
				t.Fatal(err)
			}
			s := h.state()
			now := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
			for ident, want := range map[string][2]any{"user_id:u1": {int64(3), 22.0}, "user_id:u2": {int64(1), 1.0}} {
				p := s.profileOf(ident)
				if p == nil {
					t.Fatalf("no profile for %s:\n%s", ident, s.describe())
				}
				task := topology.TaskID{Group: 1, Partition: topology.PartitionFor([]byte(p.ID), 3)}
				vals, err := set.Values(h.d.TaskWindow(task, identity.FeaturesStore), []byte(p.ID), now)
				if err != nil {
					t.Fatal(err)
				}
				if vals["orders"] != want[0] || vals["revenue_30d"] != want[1] {
					t.Errorf("%s: %v, want orders %v revenue %v", ident, vals, want[0], want[1])
				}
			}
		})
	}
}
