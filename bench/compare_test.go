package bench

import (
	"reflect"
	"testing"
)

func TestRunOrder(t *testing.T) {
	a, b := BuildBaseline, BuildCandidate
	tests := []struct {
		rounds int
		want   []string
	}{
		{1, []string{a, b}},
		{2, []string{a, b, b, a}},
		{3, []string{a, b, b, a, a, b}},
	}
	for _, tt := range tests {
		if got := order(tt.rounds); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("order(%d) = %v, want %v", tt.rounds, got, tt.want)
		}
	}
}

// TestSummarize checks each aggregate on hand-made runs: sums, the rate
// over sums, medians of odd and even counts, the maximum, and metrics a
// mode lacks left out.
func TestSummarize(t *testing.T) {
	lat := func(p50, p99 float64) *Percentiles { return &Percentiles{P50: p50, P99: p99, P999: p99 + 1} }
	run := func(build string, cpu float64, events int64, rss int64, l *Percentiles) ComparedRun {
		return ComparedRun{Build: build, Result: &Result{CPUSeconds: cpu, Seconds: cpu / 2, EventsProcessed: events, RSSPeakBytes: rss, LatencyMS: l,
			AllocBytesPerEvent: 10 * cpu, GCCycles: int64(cpu), GCCPUSeconds: cpu / 10}}
	}
	runs := []ComparedRun{
		run(BuildBaseline, 10, 1000, 5, lat(1, 40)),
		run(BuildCandidate, 8, 1000, 7, lat(2, 30)),
		run(BuildCandidate, 12, 1000, 6, lat(3, 90)),
		run(BuildBaseline, 30, 1000, 4, lat(4, 60)),
		run(BuildBaseline, 20, 1000, 3, lat(5, 50)),
	}
	want := map[string][2]float64{
		"cpu_seconds":         {60, 20},
		"seconds":             {30, 10},
		"events_per_core_sec": {3000.0 / 60, 2000.0 / 20},
		"rss_peak_bytes":      {5, 7},
		"latency_p50_ms":      {4, 2.5},
		"latency_p99_ms":      {50, 60},
		"latency_p999_ms":     {51, 61},
		"minor_faults":        {0, 0},
		// Medians of 100, 300, 200 and of 80, 120; sums of the CPU.
		"alloc_bytes_per_event": {200, 100},
		"gc_cycles":             {60, 20},
		"gc_cpu_seconds":        {6, 2},
	}
	got := summarize(runs)
	if len(got) != len(want) {
		t.Fatalf("summary has %d rows, want %d (no restore row): %+v", len(got), len(want), got)
	}
	for _, row := range got {
		w, ok := want[row.Metric]
		if !ok {
			t.Errorf("unexpected row %+v", row)
			continue
		}
		if row.Baseline != w[0] || row.Candidate != w[1] {
			t.Errorf("%s: baseline %g, candidate %g; want %g, %g", row.Metric, row.Baseline, row.Candidate, w[0], w[1])
		}
		if w[0] != 0 && row.Ratio != w[1]/w[0] {
			t.Errorf("%s: ratio %g, want %g", row.Metric, row.Ratio, w[1]/w[0])
		}
	}
}
