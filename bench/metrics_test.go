package bench

import (
	"math"
	"strings"
	"testing"
)

// TestQuantile checks the histogram quantile against hand-computed
// estimates: linear within the bucket the rank falls in, from 0 below the
// first bound, the largest finite bound past it, 0 without observations.
func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	// 100 observations: 10 at most 1, 60 more up to 2, 20 up to 4, 10
	// past 8.
	h := []bucket{{1, 10}, {2, 70}, {4, 90}, {8, 90}, {inf, 100}}
	for _, tc := range []struct {
		name    string
		q       float64
		buckets []bucket
		want    float64
	}{
		{"in the first bucket, from 0", 0.05, h, 0.5},
		{"in the second", 0.40, h, 1.5},
		{"at a bound", 0.70, h, 2},
		{"in the third", 0.80, h, 3},
		{"past the last finite bound", 0.99, h, 8},
		{"an empty bucket's bound", 0.90, h, 4},
		{"no observations", 0.99, []bucket{{1, 0}, {inf, 0}}, 0},
		{"no buckets", 0.99, nil, 0},
		{"everything past the bounds", 0.5, []bucket{{inf, 5}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := quantile(tc.q, tc.buckets); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("quantile(%g) = %g, want %g", tc.q, got, tc.want)
			}
		})
	}
}

// TestMetricsFromText reads the figures the harness takes from the hub
// out of a page in the hub's format: a counter's series for one label
// value, a sum over every series, and a histogram's count, sum and
// buckets, whose p99 falls past its last finite bound here.
func TestMetricsFromText(t *testing.T) {
	page := `# TYPE tessera_records_processed_total counter
tessera_records_processed_total{topic="events"} 120
tessera_records_processed_total{topic="ops"} 7
# TYPE tessera_restore_bytes_total counter
tessera_restore_bytes_total{store="a"} 10
tessera_restore_bytes_total{store="b"} 32
# TYPE tessera_commit_latency_seconds histogram
tessera_commit_latency_seconds_bucket{le="0.001"} 2
tessera_commit_latency_seconds_bucket{le="0.002"} 6
tessera_commit_latency_seconds_bucket{le="0.004"} 8
tessera_commit_latency_seconds_bucket{le="+Inf"} 10
tessera_commit_latency_seconds_sum 0.05
tessera_commit_latency_seconds_count 10
# TYPE tessera_commit_phase_seconds histogram
tessera_commit_phase_seconds_bucket{phase="apply",le="0.001"} 3
tessera_commit_phase_seconds_bucket{phase="apply",le="0.002"} 4
tessera_commit_phase_seconds_bucket{phase="apply",le="+Inf"} 4
tessera_commit_phase_seconds_sum{phase="apply"} 0.004
tessera_commit_phase_seconds_count{phase="apply"} 4
tessera_commit_phase_seconds_bucket{phase="offset_commit",le="0.001"} 0
tessera_commit_phase_seconds_bucket{phase="offset_commit",le="0.002"} 0
tessera_commit_phase_seconds_bucket{phase="offset_commit",le="+Inf"} 0
tessera_commit_phase_seconds_sum{phase="offset_commit"} 0
tessera_commit_phase_seconds_count{phase="offset_commit"} 0
`
	m, err := parseMetrics(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.sum("tessera_records_processed_total", "topic", "events"); got != 120 {
		t.Errorf("events processed %g, want 120", got)
	}
	if got := m.sum("tessera_restore_bytes_total", "", ""); got != 42 {
		t.Errorf("restored bytes %g, want 42", got)
	}
	if got := m.sum("tessera_absent_total", "", ""); got != 0 {
		t.Errorf("an absent metric sums to %g, want 0", got)
	}
	n, total, buckets := m.histogram("tessera_commit_latency_seconds")
	if n != 10 || total != 0.05 {
		t.Errorf("count %d, sum %g, want 10 and 0.05", n, total)
	}
	if got := quantile(0.5, buckets); math.Abs(got-0.00175) > 1e-12 {
		t.Errorf("median %g, want 0.00175", got)
	}
	if got := quantile(0.99, buckets); got != 0.004 {
		t.Errorf("p99 %g, want 0.004 (the last finite bound)", got)
	}
	// A phase's series by its label; one that never ran is left out.
	phases := m.commitPhases()
	if got, want := phases["apply"], (Timing{MeanMS: 1, P99MS: 1.96}); len(phases) != 1 || math.Abs(got.MeanMS-want.MeanMS) > 1e-9 || math.Abs(got.P99MS-want.P99MS) > 1e-9 {
		t.Errorf("commit phases %v, want only apply at %v", phases, want)
	}
	if n, _, b := m.histogram("tessera_absent_seconds"); n != 0 || b != nil {
		t.Errorf("an absent histogram: count %d, buckets %v", n, b)
	}
}
