package console

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestOverviewSample: rates come from the counters' increase between two
// samples, only the events topic counts as events, levels are read as
// they are, and the series keeps the last hour.
func TestOverviewSample(t *testing.T) {
	reg := prometheus.NewRegistry()
	processed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tessera_records_processed_total"}, []string{"topic"})
	invalid := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tessera_events_invalid_total"}, []string{"source"})
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tessera_sink_sent_total"}, []string{"destination"})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tessera_sink_failed_total"}, []string{"destination"})
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tessera_consumer_lag"}, []string{"topic", "partition"})
	reg.MustRegister(processed, invalid, sent, failed, lag)
	profiles := int64(0)
	o := NewOverview(reg, "shop", func() (int64, bool) { return profiles, profiles > 0 })

	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	processed.WithLabelValues("shop.events").Add(100)
	o.Sample(t0)
	processed.WithLabelValues("shop.events").Add(50)
	processed.WithLabelValues("shop-profile-repartition").Add(1000) // not an ingested event
	invalid.WithLabelValues("http").Add(2)
	sent.WithLabelValues("hook").Add(5)
	sent.WithLabelValues("crm").Add(5)
	failed.WithLabelValues("hook").Add(1)
	lag.WithLabelValues("shop.events", "0").Set(7)
	lag.WithLabelValues("shop.events", "1").Set(3)
	profiles = 42
	o.Sample(t0.Add(10 * time.Second))

	v := o.View()
	if len(v.Points) != 2 || v.IntervalSeconds != 10 {
		t.Fatalf("view: %+v", v)
	}
	first, p := v.Points[0], v.Points[1]
	if first.EventsPerSecond != nil || first.Profiles != nil {
		t.Errorf("the first point has rates or profiles: %+v", first)
	}
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"events per second", *p.EventsPerSecond, 5},
		{"invalid per minute", *p.InvalidPerMinute, 12},
		{"delivered per minute", *p.DeliveredPerMinute, 60},
		{"failed per minute", *p.FailedPerMinute, 6},
		{"consumer lag", p.ConsumerLag, 10},
		{"profiles", float64(*p.Profiles), 42},
		{"total events", v.Totals.Events, 150},
		{"total delivered", v.Totals.Delivered, 10},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}

	for i := range overviewPoints + 40 {
		o.Sample(t0.Add(time.Duration(i+2) * 10 * time.Second))
	}
	v = o.View()
	if len(v.Points) != overviewPoints {
		t.Errorf("kept %d points, want %d", len(v.Points), overviewPoints)
	}
	if last := v.Points[len(v.Points)-1].At; !last.Equal(t0.Add(time.Duration(overviewPoints+41) * 10 * time.Second)) {
		t.Errorf("newest point at %v", last)
	}
}
