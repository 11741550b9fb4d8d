package bench

import (
	"fmt"
	"io"
	"math"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the hub's /metrics, in Prometheus's text format (which
// the hub serves when the request asks for nothing else), parsed by the
// Prometheus library's own parser.
func (h *harness) scrape() (metrics, error) {
	resp, err := http.Get("http://" + h.hubHTTP + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("reading the hub's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the hub's metrics: %s", resp.Status)
	}
	m, err := parseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the hub's metrics: %w", err)
	}
	return m, nil
}

// parseMetrics parses metrics in Prometheus's text format.
func parseMetrics(r io.Reader) (metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// metrics are the hub's metric families by name.
type metrics map[string]*dto.MetricFamily

// sum returns the sum of the samples of counter or gauge name, over its
// series with label set to value (every series when label is empty); 0
// when the hub has no such metric.
func (m metrics) sum(name, label, value string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
	var total float64
	for _, s := range f.GetMetric() {
		if label != "" && !hasLabel(s, label, value) {
			continue
		}
		switch {
		case s.Counter != nil:
			total += s.GetCounter().GetValue()
		case s.Gauge != nil:
			total += s.GetGauge().GetValue()
		case s.Untyped != nil:
			total += s.GetUntyped().GetValue()
		}
	}
	return total
}

func hasLabel(s *dto.Metric, label, value string) bool {
	v, ok := labelOf(s, label)
	return ok && v == value
}

// labelOf returns the value of series s's label, and whether s has it.
func labelOf(s *dto.Metric, label string) (string, bool) {
	for _, l := range s.GetLabel() {
		if l.GetName() == label {
			return l.GetValue(), true
		}
	}
	return "", false
}

// histogram returns histogram name's observation count, their sum and its
// cumulative buckets (ascending, +Inf last), over its one series; zeros
// when the hub has no such metric.
func (m metrics) histogram(name string) (count uint64, sum float64, buckets []bucket) {
	f := m[name]
	if f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].Histogram == nil {
		return 0, 0, nil
	}
	return series(f.GetMetric()[0].GetHistogram())
}

// series returns a histogram series' observation count, their sum and its
// cumulative buckets (ascending, +Inf last).
func series(hist *dto.Histogram) (count uint64, sum float64, buckets []bucket) {
	for _, b := range hist.GetBucket() {
		buckets = append(buckets, bucket{le: b.GetUpperBound(), count: float64(b.GetCumulativeCount())})
	}
	// The text format's +Inf bucket is the count; the parser keeps it
	// only there.
	if n := len(buckets); n == 0 || !math.IsInf(buckets[n-1].le, 1) {
		buckets = append(buckets, bucket{le: math.Inf(1), count: float64(hist.GetSampleCount())})
	}
	return hist.GetSampleCount(), hist.GetSampleSum(), buckets
}

// bucket is one cumulative bucket of a Prometheus histogram: count
// observations at most le.
type bucket struct{ le, count float64 }

// quantile returns the q-quantile of a histogram's cumulative buckets
// (ascending, +Inf last) as Prometheus's histogram_quantile estimates it:
// linearly within the bucket it falls in, from 0 for the first; the
// largest finite bound when it falls past it. With no observations, 0.
func quantile(q float64, buckets []bucket) float64 {
	if len(buckets) == 0 || buckets[len(buckets)-1].count == 0 {
		return 0
	}
	rank := q * buckets[len(buckets)-1].count
	lo, below := 0.0, 0.0
	for i, b := range buckets {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				if i == 0 {
					return 0
				}
				return buckets[i-1].le
			}
			if b.count == below {
				return b.le
			}
			return lo + (b.le-lo)*(rank-below)/(b.count-below)
		}
		lo, below = b.le, b.count
	}
	return lo
}

// hubUsage returns what the hub has used so far: its CPU time and page
// faults from /proc, and its Go heap's counters from its metrics.
func (h *harness) hubUsage() (usage, metrics, error) {
	u, err := processUsage(h.hub.pid())
	if err != nil {
		return usage{}, nil, err
	}
	m, err := h.scrape()
	if err != nil {
		return usage{}, nil, err
	}
	u.AllocBytes, u.GCCycles, u.GCCPU = m.heapCounts()
	return u, m, nil
}

// heapCounts returns the bytes the Go heap allocated, the collections it
// completed and the CPU seconds the collector took since the process
// started (the Prometheus Go collector's go_memstats_alloc_bytes_total,
// the count of go_gc_duration_seconds and
// go_cpu_classes_gc_total_cpu_seconds_total); zeros for what the hub
// does not report.
func (m metrics) heapCounts() (allocBytes, gcCycles, gcCPU float64) {
	allocBytes = m.sum("go_memstats_alloc_bytes_total", "", "")
	if f := m["go_gc_duration_seconds"]; f != nil {
		for _, s := range f.GetMetric() {
			gcCycles += float64(s.GetSummary().GetSampleCount())
		}
	}
	gcCPU = m.sum("go_cpu_classes_gc_total_cpu_seconds_total", "", "")
	return allocBytes, gcCycles, gcCPU
}

// setHeap sets res's heap figures from the hub's usage from before to
// after, over the events it processed meanwhile.
func setHeap(res *Result, before, after usage, events int64) {
	res.AllocBytesPerEvent = (after.AllocBytes - before.AllocBytes) / float64(max(events, 1))
	res.GCCycles = int64(after.GCCycles - before.GCCycles)
	res.GCCPUSeconds = after.GCCPU - before.GCCPU
}

// readHub reads what a mode reports of the hub process at its end: its
// usage so far (returned), its peak RSS and the events it processed (set
// in res).
func (h *harness) readHub(res *Result) (usage, error) {
	u, m, err := h.hubUsage()
	if err != nil {
		return usage{}, err
	}
	if res.RSSPeakBytes, err = peakRSS(h.hub.pid()); err != nil {
		return usage{}, err
	}
	res.EventsProcessed = int64(m.sum("tessera_records_processed_total", "topic", h.topics.Events))
	if n, total, buckets := m.histogram("tessera_commit_latency_seconds"); n > 0 {
		t := timing(n, total, buckets)
		res.Commits, res.CommitMSMean, res.CommitMSP99 = int64(n), t.MeanMS, t.P99MS
	}
	res.CommitPhasesMS = m.commitPhases()
	return u, nil
}

// commitPhases returns the mean and p99 of each phase of the hub's
// commits (tessera_commit_phase_seconds) in milliseconds, by phase; nil
// when the hub reports none.
func (m metrics) commitPhases() map[string]Timing {
	f := m["tessera_commit_phase_seconds"]
	if f == nil {
		return nil
	}
	out := make(map[string]Timing)
	for _, s := range f.GetMetric() {
		phase, _ := labelOf(s, "phase")
		if s.Histogram == nil || phase == "" {
			continue
		}
		if n, total, buckets := series(s.GetHistogram()); n > 0 {
			out[phase] = timing(n, total, buckets)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// timing returns the mean and p99, in milliseconds, of a histogram of
// seconds with n observations summing to total.
func timing(n uint64, total float64, buckets []bucket) Timing {
	return Timing{MeanMS: total / float64(n) * 1000, P99MS: quantile(0.99, buckets) * 1000}
}
