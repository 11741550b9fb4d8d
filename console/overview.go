package console

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tessera-cdp/tessera/api"
)

// Limits of the overview's time series.
const (
	// OverviewInterval is how often the overview samples the metrics.
	OverviewInterval = 10 * time.Second
	// overviewPoints is how many samples it keeps: an hour at
	// OverviewInterval. Memory is bounded by it: a point is a few words.
	overviewPoints = 360
)

// Point is one sample of the overview: rates over the interval before At,
// and levels at At. A rate is null (nil) for the first sample, which has
// nothing to compare with.
type Point struct {
	At time.Time `json:"at"`
	// EventsPerSecond is events processed from <app>.events.
	EventsPerSecond *float64 `json:"events_per_second"`
	// InvalidPerMinute is events sent to <app>.events.invalid.
	InvalidPerMinute *float64 `json:"invalid_per_minute"`
	// DeliveredPerMinute and FailedPerMinute are activations delivered
	// and failed delivery attempts, over every destination.
	DeliveredPerMinute *float64 `json:"delivered_per_minute"`
	FailedPerMinute    *float64 `json:"failed_per_minute"`
	// ConsumerLag is records not yet processed, over this instance's
	// source partitions.
	ConsumerLag float64 `json:"consumer_lag"`
	// Profiles is the newest count of live profiles; nil before the first.
	Profiles *int64 `json:"profiles"`
}

// Totals are the counters since this instance started.
type Totals struct {
	Events       float64 `json:"events"`
	Invalid      float64 `json:"invalid"`
	Delivered    float64 `json:"delivered"`
	Failed       float64 `json:"failed"`
	DeadLettered float64 `json:"dead_lettered"`
}

// Overview samples the Prometheus registry in-process every
// OverviewInterval and keeps the last hour, for the console's overview
// charts: no Prometheus server is needed to see them.
type Overview struct {
	gatherer prometheus.Gatherer
	events   string // the events topic: <app>.events
	profiles func() (int64, bool)
	interval time.Duration

	// mu guards points and last.
	mu     sync.Mutex
	points []Point // oldest first, at most overviewPoints
	last   Totals
	lastAt time.Time
}

// NewOverview returns the overview of app's metrics in g. profiles, if
// not nil, returns the newest count of profiles (from the audience-size
// sampler, which scans the stores anyway).
func NewOverview(g prometheus.Gatherer, app string, profiles func() (int64, bool)) *Overview {
	return &Overview{gatherer: g, events: app + ".events", profiles: profiles, interval: OverviewInterval}
}

// Run samples every interval until ctx is done.
func (o *Overview) Run(ctx context.Context) {
	t := time.NewTicker(o.interval)
	defer t.Stop()
	for {
		o.Sample(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample reads the metrics now and appends a point. A metric that cannot
// be gathered counts as zero: the overview must not fail because one
// collector does.
func (o *Overview) Sample(now time.Time) {
	fams, _ := o.gatherer.Gather() // partial results on error
	var tot Totals
	var lag float64
	for _, f := range fams {
		switch f.GetName() {
		case "tessera_records_processed_total":
			tot.Events += sum(f, func(m *dto.Metric) bool { return label(m, "topic") == o.events })
		case "tessera_events_invalid_total":
			tot.Invalid += sum(f, nil)
		case "tessera_sink_sent_total":
			tot.Delivered += sum(f, nil)
		case "tessera_sink_failed_total":
			tot.Failed += sum(f, nil)
		case "tessera_sink_dead_lettered_total":
			tot.DeadLettered += sum(f, nil)
		case "tessera_consumer_lag":
			lag += sum(f, nil)
		}
	}
	p := Point{At: now.UTC(), ConsumerLag: lag}
	if o.profiles != nil {
		if n, ok := o.profiles(); ok {
			p.Profiles = &n
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.lastAt.IsZero() {
		secs := now.Sub(o.lastAt).Seconds()
		if secs > 0 {
			rate := func(cur, prev, per float64) *float64 {
				r := max(cur-prev, 0) / secs * per // a counter reset is not a negative rate
				return &r
			}
			p.EventsPerSecond = rate(tot.Events, o.last.Events, 1)
			p.InvalidPerMinute = rate(tot.Invalid, o.last.Invalid, 60)
			p.DeliveredPerMinute = rate(tot.Delivered, o.last.Delivered, 60)
			p.FailedPerMinute = rate(tot.Failed, o.last.Failed, 60)
		}
	}
	o.last, o.lastAt = tot, now
	o.points = append(o.points, p)
	if len(o.points) > overviewPoints {
		o.points = append(o.points[:0], o.points[len(o.points)-overviewPoints:]...)
	}
}

// sum adds the values of f's metrics that keep accepts (all when nil).
func sum(f *dto.MetricFamily, keep func(*dto.Metric) bool) float64 {
	var s float64
	for _, m := range f.GetMetric() {
		if keep != nil && !keep(m) {
			continue
		}
		switch {
		case m.Counter != nil:
			s += m.Counter.GetValue()
		case m.Gauge != nil:
			s += m.Gauge.GetValue()
		case m.Untyped != nil:
			s += m.Untyped.GetValue()
		}
	}
	return s
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// OverviewView is the answer of GET /v1/overview.
type OverviewView struct {
	IntervalSeconds float64 `json:"interval_seconds"`
	// Points are the last hour's samples, oldest first.
	Points []Point `json:"points"`
	// Totals are the counters at the newest sample.
	Totals Totals `json:"totals"`
}

// View returns the kept samples.
func (o *Overview) View() OverviewView {
	o.mu.Lock()
	defer o.mu.Unlock()
	return OverviewView{IntervalSeconds: o.interval.Seconds(), Points: append([]Point{}, o.points...), Totals: o.last}
}

// ServeHTTP answers GET /v1/overview: a read of the kept samples, cheap
// on any number of profiles.
func (o *Overview) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	api.WriteJSON(w, http.StatusOK, o.View())
}
