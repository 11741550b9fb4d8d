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
	}, features.Options{})
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
