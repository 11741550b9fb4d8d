package features

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/valyala/fastjson"
)

// benchFeatures are eight features of one event, of every common kind and
// window: what DESIGN.md §9's throughput target assumes per event.
var benchFeatures = []config.Feature{
	{Name: "orders_1h", Event: "Order Completed", Agg: "count", Window: "1h"},
	{Name: "spend_7d", Event: "Order Completed", Agg: "sum", Property: "revenue", Window: "7d"},
	{Name: "max_order_30d", Event: "Order Completed", Agg: "max", Property: "revenue", Window: "30d"},
	{Name: "avg_order_90d", Event: "Order Completed", Agg: "avg", Property: "revenue", Window: "90d"},
	{Name: "skus_30d", Event: "Order Completed", Agg: "count_distinct", Property: "sku", Window: "30d"},
	{Name: "last_sku", Event: "Order Completed", Agg: "last", Property: "sku", Window: "lifetime"},
	{Name: "fav_category_90d", Event: "Order Completed", Agg: "most_frequent", Property: "category", Window: "90d"},
	{Name: "big_orders_7d", Event: "Order Completed", Filter: "revenue > 50", Agg: "count", Window: "7d"},
}

// benchEvents returns n parsed Order Completed events a minute apart, about
// 1 KB each like the design's workload, for profiles cycling through 64.
func benchEvents(n int) []*fastjson.Value {
	rng := rand.New(rand.NewPCG(7, 8))
	pad := make([]byte, 700)
	for i := range pad {
		pad[i] = 'x'
	}
	evs := make([]*fastjson.Value, n)
	for i := range evs {
		ts := t0.Add(time.Duration(i) * time.Minute).Format("2006-01-02T15:04:05.000Z")
		evs[i] = fastjson.MustParse(fmt.Sprintf(`{"type":"track","event":"Order Completed","userId":"u%d","timestamp":%q,`+
			`"context":{"library":{"name":"analytics.js"},"userAgent":%q},`+
			`"properties":{"revenue":%d.%02d,"currency":"EUR","sku":"sku-%d","category":"cat-%d"}}`,
			i%64, ts, pad, rng.IntN(120), rng.IntN(100), rng.IntN(200), rng.IntN(8)))
	}
	return evs
}

// BenchmarkUpdate applies one event to eight features of its profile, in a
// Pebble store with a commit every 1,000 events as a task's transactions
// would (the commit is not timed). Without a change logger: the changelog
// is the engine's cost.
func BenchmarkUpdate(b *testing.B) {
	for _, bc := range []struct {
		name string
		defs []config.Feature
		ev   string // "" for Order Completed
	}{
		{"8-features", benchFeatures, ""},
		{"7-features-no-filter", benchFeatures[:7], ""},
		{"no-feature-matches", benchFeatures, `{"type":"track","event":"Page Scrolled","timestamp":"2026-03-01T12:00:00.000Z"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			db, w := newWindow(b)
			s := mustCompile(b, bc.defs, Options{})
			evs := benchEvents(4096)
			if bc.ev != "" {
				evs = []*fastjson.Value{fastjson.MustParse(bc.ev)}
			}
			profiles := make([][]byte, 64)
			for i := range profiles {
				profiles[i] = []byte(fmt.Sprintf("profile-%02d", i))
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				j := i % len(evs)
				at := t0.Add(time.Duration(j) * time.Minute)
				if _, err := s.Update(w, profiles[i%64], evs[j], at); err != nil {
					b.Fatal(err)
				}
				if i%1000 == 999 {
					b.StopTimer()
					if err := db.Commit(nil); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			}
		})
	}
}

// BenchmarkValues reads the eight features of a profile with 90 days of
// history: 30 orders a day.
func BenchmarkValues(b *testing.B) {
	db, w := newWindow(b)
	s := mustCompile(b, benchFeatures, Options{})
	rng := rand.New(rand.NewPCG(9, 10))
	profile := []byte("profile")
	var last time.Time
	for i := 0; i < 90*30; i++ {
		last = t0.Add(time.Duration(i) * 48 * time.Minute)
		ev := fastjson.MustParse(fmt.Sprintf(`{"type":"track","event":"Order Completed","timestamp":%q,"properties":{"revenue":%d,"sku":"sku-%d","category":"cat-%d"}}`,
			last.Format("2006-01-02T15:04:05.000Z"), rng.IntN(120), rng.IntN(200), rng.IntN(8)))
		if _, err := s.Update(w, profile, ev, last); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Commit(nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Values(w, profile, last); err != nil {
			b.Fatal(err)
		}
	}
}
