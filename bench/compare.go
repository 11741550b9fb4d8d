package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
)

// A comparison of two builds runs the same benchmark with each, in turns.
// On a shared or virtual machine, runs a minute apart differ by more than
// most changes gain (bench/README.md: ±10 % of CPU, ±50 % of p99), and the
// second run of a pair tends to do better than the first. So the runs
// alternate in the order ABBA ABBA …: each build is as often first as
// second, and a drift of the machine over the comparison weighs on both
// alike. The figures to quote are the ratios of the comparison's sums and
// medians, measured in one invocation.

// CompareOptions says what Compare runs.
type CompareOptions struct {
	// Baseline and Candidate are the tessera binaries compared.
	Baseline, Candidate string
	// Args are the `tessera bench` flags both run with; Compare adds
	// --json and --quiet.
	Args []string
	// Rounds is how many pairs run: the first baseline then candidate,
	// the second candidate then baseline, and so on.
	Rounds int
	// Progress, when not nil, gets a line per finished run.
	Progress io.Writer
}

// Comparison is what Compare measured: every run, and per metric the
// baseline's and the candidate's aggregate and their ratio.
type Comparison struct {
	Baseline  string        `json:"baseline"`
	Candidate string        `json:"candidate"`
	Args      []string      `json:"args"`
	Runs      []ComparedRun `json:"runs"`
	Summary   []CompareRow  `json:"summary"`
}

// ComparedRun is one run of a comparison: which build ran (baseline or
// candidate) and what it measured.
type ComparedRun struct {
	Build  string  `json:"build"`
	Result *Result `json:"result"`
}

// CompareRow is one metric of a comparison: how it aggregates over a
// build's runs (sum, median, max, or a rate over sums), the baseline's and
// the candidate's values, and Ratio, candidate over baseline.
type CompareRow struct {
	Metric    string  `json:"metric"`
	Aggregate string  `json:"aggregate"`
	Baseline  float64 `json:"baseline"`
	Candidate float64 `json:"candidate"`
	Ratio     float64 `json:"ratio"`
}

// Build names in ComparedRun.Build.
const (
	BuildBaseline  = "baseline"
	BuildCandidate = "candidate"
)

// order returns the builds of rounds pairs in the order they run: ABBA
// ABBA …, A being the baseline.
func order(rounds int) []string {
	out := make([]string, 0, 2*rounds)
	for i := range rounds {
		if i%2 == 0 {
			out = append(out, BuildBaseline, BuildCandidate)
		} else {
			out = append(out, BuildCandidate, BuildBaseline)
		}
	}
	return out
}

// Compare runs `bench` with opts.Args of each binary in turn (order) and
// sums them up. A run that fails ends the comparison with its error and
// its stderr's last lines.
func Compare(ctx context.Context, opts CompareOptions) (*Comparison, error) {
	if opts.Rounds < 1 {
		return nil, fmt.Errorf("comparing builds: rounds is %d, want 1 or more", opts.Rounds)
	}
	c := &Comparison{Baseline: opts.Baseline, Candidate: opts.Candidate, Args: opts.Args}
	builds := order(opts.Rounds)
	for i, build := range builds {
		bin := opts.Baseline
		if build == BuildCandidate {
			bin = opts.Candidate
		}
		r, err := runBench(ctx, bin, opts.Args)
		if err != nil {
			return nil, fmt.Errorf("comparing builds, run %d of %d (%s, %s): %w", i+1, len(builds), build, bin, err)
		}
		c.Runs = append(c.Runs, ComparedRun{Build: build, Result: r})
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "bench: run %d of %d (%s): %s\n", i+1, len(builds), build, runLine(r))
		}
	}
	c.Summary = summarize(c.Runs)
	return c, nil
}

// runBench runs one `bin bench args… --json --quiet` and decodes its
// result.
func runBench(ctx context.Context, bin string, args []string) (*Result, error) {
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"bench"}, args...), "--json", "--quiet")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if tail := lastLines(stderr.String(), 5); tail != "" {
			return nil, fmt.Errorf("%w: %s", err, tail)
		}
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("reading its result: %w", err)
	}
	return &r, nil
}

// lastLines returns the last n lines of s, trimmed.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// runLine is a run's progress line.
func runLine(r *Result) string {
	s := fmt.Sprintf("%.2f CPU s, %.0f events per core-second, %.1f s", r.CPUSeconds, r.EventsPerCoreSec, r.Seconds)
	if r.LatencyMS != nil {
		s += fmt.Sprintf(", p50 %.1f p99 %.1f ms", r.LatencyMS.P50, r.LatencyMS.P99)
	}
	if r.RestoreRecordsPerSec > 0 {
		s += fmt.Sprintf(", restore %.0f records/s", r.RestoreRecordsPerSec)
	}
	return s
}

// summarize aggregates each build's runs. CPU and wall time add up over
// runs, so the per-core rate is total events over total CPU; a latency
// percentile or a restore rate does not add up, so its median stands for
// the build; peak memory is the peak over runs. Metrics a mode does not
// measure are left out.
func summarize(runs []ComparedRun) []CompareRow {
	by := map[string][]*Result{}
	for _, r := range runs {
		by[r.Build] = append(by[r.Build], r.Result)
	}
	type metric struct {
		name, agg string
		of        func(rs []*Result) (float64, bool)
	}
	sum := func(f func(*Result) float64) func([]*Result) (float64, bool) {
		return func(rs []*Result) (float64, bool) {
			var s float64
			for _, r := range rs {
				s += f(r)
			}
			return s, true
		}
	}
	median := func(f func(*Result) (float64, bool)) func([]*Result) (float64, bool) {
		return func(rs []*Result) (float64, bool) {
			var vs []float64
			for _, r := range rs {
				if v, ok := f(r); ok {
					vs = append(vs, v)
				}
			}
			if len(vs) == 0 {
				return 0, false
			}
			slices.Sort(vs)
			if n := len(vs); n%2 == 0 {
				return (vs[n/2-1] + vs[n/2]) / 2, true
			}
			return vs[len(vs)/2], true
		}
	}
	latency := func(p func(*Percentiles) float64) func(*Result) (float64, bool) {
		return func(r *Result) (float64, bool) {
			if r.LatencyMS == nil {
				return 0, false
			}
			return p(r.LatencyMS), true
		}
	}
	metrics := []metric{
		{"cpu_seconds", "sum", sum(func(r *Result) float64 { return r.CPUSeconds })},
		{"seconds", "sum", sum(func(r *Result) float64 { return r.Seconds })},
		{"events_per_core_sec", "events over CPU seconds, summed", func(rs []*Result) (float64, bool) {
			var ev, cpu float64
			for _, r := range rs {
				ev += float64(r.EventsProcessed)
				cpu += r.CPUSeconds
			}
			if cpu == 0 {
				return 0, false
			}
			return ev / cpu, true
		}},
		{"minor_faults", "sum", sum(func(r *Result) float64 { return float64(r.MinorFaults) })},
		{"alloc_bytes_per_event", "median", median(func(r *Result) (float64, bool) {
			return r.AllocBytesPerEvent, r.AllocBytesPerEvent > 0
		})},
		{"gc_cycles", "sum", sum(func(r *Result) float64 { return float64(r.GCCycles) })},
		{"gc_cpu_seconds", "sum", sum(func(r *Result) float64 { return r.GCCPUSeconds })},
		{"rss_peak_bytes", "max", func(rs []*Result) (float64, bool) {
			var m float64
			for _, r := range rs {
				m = max(m, float64(r.RSSPeakBytes))
			}
			return m, true
		}},
		{"latency_p50_ms", "median", median(latency(func(p *Percentiles) float64 { return p.P50 }))},
		{"latency_p99_ms", "median", median(latency(func(p *Percentiles) float64 { return p.P99 }))},
		{"latency_p999_ms", "median", median(latency(func(p *Percentiles) float64 { return p.P999 }))},
		{"restore_records_per_sec", "median", median(func(r *Result) (float64, bool) {
			return r.RestoreRecordsPerSec, r.RestoreRecordsPerSec > 0
		})},
	}
	var rows []CompareRow
	for _, m := range metrics {
		a, aok := m.of(by[BuildBaseline])
		b, bok := m.of(by[BuildCandidate])
		if !aok || !bok {
			continue
		}
		row := CompareRow{Metric: m.name, Aggregate: m.agg, Baseline: a, Candidate: b}
		if a != 0 {
			row.Ratio = b / a
		}
		rows = append(rows, row)
	}
	return rows
}

// errCompareFlag is CompareArgs's error for a flag that a comparison
// cannot pass on to both builds' runs.
var errCompareFlag = errors.New("not allowed with --against")

// CompareArgs checks the flags a comparison passes to each run: a work
// directory, a kept one, or a profile would be shared by every run, or
// overwritten by the next.
func CompareArgs(flags []string) error {
	for _, f := range flags {
		switch f {
		case "dir", "keep", "pprof", "cpuprofile", "profile-seconds":
			return fmt.Errorf("--%s: %w", f, errCompareFlag)
		}
	}
	return nil
}
