package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tessera-cdp/tessera/bench"
)

// latencyMarkShare is the latency mode's default --mark-share: one event
// in ten gives a latency sample.
const latencyMarkShare = 0.1

// newBenchCmd returns `tessera bench`, the benchmark harness.
func newBenchCmd() *cobra.Command {
	o := bench.DefaultOptions()
	var (
		asJSON  bool
		quiet   bool
		against string
		rounds  int
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark the full topology: throughput, latency or restore",
		Long: `Run a synthetic workload through the full topology (identity, profiles, 8
windowed features, 5 audiences, an event trigger, a discard sink and a webhook)
and measure the processing process on its own.

The harness starts 'tessera broker' (unless --brokers is given) and 'tessera
run --brokers …' as child processes of this binary, with a generated
configuration and a fresh application id, and reads the CPU time and peak
memory of the 'run' process from /proc.

Modes:
  throughput  fill <app>.events with --events normalised events, then process
              them as fast as possible; also runs a bare franz-go
              consume→produce loop over the same events (in its own process)
              as the baseline.
  latency     send --events events at --rate per second through the HTTP
              batch endpoint, open loop (arrivals scheduled in advance, so
              queueing delay counts), and report percentiles of the time from
              scheduled send to the trigger's activation on <app>.activations.
  restore     a throughput run, then wipe the state directory, restart, and
              measure restoring the stores from their changelogs.

The workload: --customers customers with Zipf-distributed activity, a share
(--merge-rate) who browse anonymously and identify later (an identity merge),
a mix of track, identify and page calls, events padded to --event-bytes, a
share of late (back-dated) events, and a share (--mark-share) that fire the
event trigger. bench/README.md has the results and how to reproduce them.`,
		Example: `  # Throughput on 1M events, as JSON:
  tessera bench --mode throughput --events 1000000 --json

  # Latency at 7,000 events/s, at-least-once:
  tessera bench --mode latency --rate 7000 --events 140000 --guarantee at_least_once

  # This build against an older one, 4 runs in the order ABBA, with ratios:
  tessera bench --mode throughput --events 500000 --against ./tessera-old --rounds 2

  # Restore, with a CPU profile of the throughput part:
  tessera bench --mode restore --events 500000 --pprof 127.0.0.1:6060 --cpuprofile cpu.pprof`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if !quiet {
				o.Progress = cmd.ErrOrStderr()
			}
			if against != "" {
				return compareBuilds(ctx, cmd, bench.CompareOptions{Baseline: against, Rounds: rounds, Progress: o.Progress}, asJSON)
			}
			if o.Mode == bench.Latency && !cmd.Flags().Changed("mark-share") {
				// Latency is measured on marked events: take more samples.
				o.Workload.MarkShare = latencyMarkShare
			}
			res, err := bench.Run(ctx, o)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			printBench(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Mode, "mode", o.Mode, "throughput, latency or restore")
	f.IntVar(&o.Events, "events", o.Events, "events to generate")
	f.IntVar(&o.Workload.Customers, "customers", o.Workload.Customers, "distinct customers")
	f.IntVar(&o.Rate, "rate", o.Rate, "latency mode: arrival rate, events per second")
	f.StringSliceVar(&o.Brokers, "brokers", nil, "Kafka seed brokers host:port,…; none starts 'tessera broker' as a child process")
	f.StringVar(&o.Guarantee, "guarantee", o.Guarantee, "processing guarantee: exactly_once or at_least_once")
	f.IntVar(&o.Partitions, "partitions", o.Partitions, "partitions of the hub's topics")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines on stderr")
	f.Float64Var(&o.Workload.ZipfS, "zipf", o.Workload.ZipfS, "Zipf exponent of activity over customers (above 1)")
	f.Float64Var(&o.Workload.ZipfV, "zipf-offset", o.Workload.ZipfV, "Zipf offset: larger flattens the busiest customers (at least 1)")
	f.Float64Var(&o.Workload.MergeRate, "merge-rate", o.Workload.MergeRate, "share of customers who start anonymous and identify later (identity merges)")
	f.Float64Var(&o.Workload.Track, "track", o.Workload.Track, "share of track calls")
	f.Float64Var(&o.Workload.Identify, "identify", o.Workload.Identify, "share of identify calls")
	f.Float64Var(&o.Workload.Page, "page", o.Workload.Page, "share of page calls")
	f.IntVar(&o.Workload.EventBytes, "event-bytes", o.Workload.EventBytes, "size events are padded to, bytes of JSON")
	f.Float64Var(&o.Workload.LateShare, "late-share", o.Workload.LateShare, "share of events back-dated 1-72 hours")
	f.Float64Var(&o.Workload.MarkShare, "mark-share", o.Workload.MarkShare, "share of events that fire the event trigger (one activation each); latency mode default 0.1")
	f.Uint64Var(&o.Workload.Seed, "seed", o.Workload.Seed, "random seed of the workload")
	f.IntVar(&o.Threads, "threads", o.Threads, "processing.threads of the hub (goroutines processing tasks at once); 0 keeps the default")
	f.BoolVar(&o.HugePages, "huge-pages", o.HugePages, "run the hub with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (transparent huge pages for Pebble's C memory), as the Dockerfile does")
	f.StringArrayVar(&o.HubEnv, "hub-env", nil, "NAME=value added to the hub's environment alone, such as GOGC=200 or GOMEMLIMIT=1GiB (repeatable)")
	f.IntVar(&o.RecentEvents, "recent-events", o.RecentEvents, "profiles.recent_events of the hub (events kept inline per profile); negative keeps the default")
	f.Int64Var(&o.ReadCacheBytes, "read-cache-bytes", o.ReadCacheBytes, "processing.read_cache_bytes of the hub (each task's read cache); 0 keeps the default")
	f.DurationVar(&o.ProducerLinger, "producer-linger", o.ProducerLinger, "processing.producer_linger of the hub (how long a produced batch may fill); negative keeps the default")
	f.DurationVar(&o.CommitInterval, "commit-interval", o.CommitInterval, "processing.commit_interval of the hub (how often it commits); 0 keeps the default")
	f.DurationVar(&o.MinCommitInterval, "min-commit-interval", o.MinCommitInterval, "processing.min_commit_interval of the hub (the shortest exactly-once cycle, when the input runs dry); 0 keeps the default")
	f.StringVar(&o.Dir, "dir", "", "work directory (config, state, logs); default a temporary one, removed afterwards")
	f.BoolVar(&o.Keep, "keep", false, "keep the temporary work directory")
	f.StringVar(&o.Pprof, "pprof", "", "serve the hub's /debug/pprof/ on this host:port")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write the hub's CPU profile over the first --profile-seconds of the measured phase (processing, sending, or the restart) to this file (needs --pprof)")
	f.IntVar(&o.ProfileSeconds, "profile-seconds", o.ProfileSeconds, "length of the CPU profile")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound on each wait (readiness, processing, activations)")
	f.StringVar(&against, "against", "", "compare this binary with the tessera binary at this path: run the same benchmark with each in turn (baseline first, ABBA…) and print every run and the ratios")
	f.IntVar(&rounds, "rounds", 2, "with --against: pairs of runs (2 is ABBA)")
	return cmd
}

// compareBuilds runs `tessera bench --against`, this binary being the
// candidate: the flags the user set, but for the comparison's own, go to
// every run of both binaries.
func compareBuilds(ctx context.Context, cmd *cobra.Command, opts bench.CompareOptions, asJSON bool) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary: %w", err)
	}
	opts.Candidate = self
	var args, set []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "against", "rounds", "json", "quiet":
			return
		}
		set = append(set, f.Name)
		v := f.Value.String()
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			v = strings.Join(sv.GetSlice(), ",")
		}
		args = append(args, "--"+f.Name+"="+v)
	})
	if err := bench.CompareArgs(set); err != nil {
		return err
	}
	opts.Args = args
	c, err := bench.Compare(ctx, opts)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), c)
	}
	printComparison(cmd.OutOrStdout(), c)
	return nil
}

// printJSON prints v as one indented JSON object: `tessera bench --json`.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printComparison prints a comparison's runs in order, then a metric per
// row with the ratio, candidate (this binary) over baseline.
func printComparison(w io.Writer, c *bench.Comparison) {
	fmt.Fprintf(w, "baseline  %s\ncandidate %s\nflags     %s\n\n", c.Baseline, c.Candidate, strings.Join(c.Args, " "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tbuild\tCPU s\tevents/core-s\twall s\tp50 ms\tp99 ms\trestore rec/s\t")
	for i, r := range c.Runs {
		p50, p99 := "-", "-"
		if l := r.Result.LatencyMS; l != nil {
			p50, p99 = fmt.Sprintf("%.1f", l.P50), fmt.Sprintf("%.1f", l.P99)
		}
		restore := "-"
		if r.Result.RestoreRecordsPerSec > 0 {
			restore = fmt.Sprintf("%.0f", r.Result.RestoreRecordsPerSec)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.2f\t%.0f\t%.1f\t%s\t%s\t%s\t\n", i+1, r.Build, r.Result.CPUSeconds, r.Result.EventsPerCoreSec, r.Result.Seconds, p50, p99, restore)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tover runs\tbaseline\tcandidate\tcandidate/baseline")
	for _, row := range c.Summary {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3f\n", row.Metric, row.Aggregate, figure(row.Baseline), figure(row.Candidate), row.Ratio)
	}
	tw.Flush()
}

// figure formats a comparison's value: whole above a thousand, else to
// two decimals.
func figure(v float64) string {
	if v >= 1000 || v <= -1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// orDefault returns s if set, else "default".
func orDefault(s string, set bool) string {
	if set {
		return s
	}
	return "default"
}

func printBench(w io.Writer, r *bench.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	row("mode", "%s (%s, %d partitions, threads %s)", r.Mode, r.Guarantee, r.Partitions, threadsOf(r.Threads))
	if r.ReadCacheBytes > 0 || r.ProducerLinger != "" || r.CommitInterval != "" || r.MinCommitInterval != "" {
		row("settings", "read_cache_bytes %s, producer_linger %s, commit_interval %s, min_commit_interval %s", orDefault(strconv.FormatInt(r.ReadCacheBytes, 10), r.ReadCacheBytes > 0),
			orDefault(r.ProducerLinger, r.ProducerLinger != ""), orDefault(r.CommitInterval, r.CommitInterval != ""), orDefault(r.MinCommitInterval, r.MinCommitInterval != ""))
	}
	if len(r.HubEnv) > 0 {
		row("hub env", "%s", strings.Join(r.HubEnv, " "))
	}
	row("machine", "%d cores, %s; load %s → %s; transparent huge pages %s", r.Machine.Cores, r.Machine.CPU, r.Machine.LoadBefore, r.Machine.LoadAfter, r.Machine.THP)
	row("events", "%d (%d processed, %d B each), %d profiles", r.Events, r.EventsProcessed, r.EventBytes, r.Profiles)
	row("wall", "%.2f s, %.0f events/s", r.Seconds, r.EventsPerSec)
	row("cpu", "%.2f s, %.0f events per core-second; %d minor page faults (huge pages %v)", r.CPUSeconds, r.EventsPerCoreSec, r.MinorFaults, r.HugePages)
	if r.AllocBytesPerEvent > 0 {
		row("heap", "%.0f bytes allocated per event, %d collections", r.AllocBytesPerEvent, r.GCCycles)
	}
	if r.BaselineEventsPerCoreSec > 0 {
		row("baseline", "%.0f events per core-second; overhead ratio %.2f", r.BaselineEventsPerCoreSec, r.OverheadRatio)
	}
	if l := r.LatencyMS; l != nil {
		row("latency", "%s (%d samples at %d/s)", percentileRow(l), l.Samples, r.Rate)
	}
	if len(r.LatencyWindows) > 1 {
		var b strings.Builder
		for i, w := range r.LatencyWindows {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%gs %.0f/%.0f", w.Start, w.P50, w.P99)
		}
		row("  by window", "p50/p99 ms per %gs of the schedule: %s", r.LatencyWindowSeconds, b.String())
	}
	for _, part := range []struct {
		name string
		l    *bench.Percentiles
	}{{"  to receipt", r.IngestLatencyMS}, {"  after", r.HubLatencyMS}} {
		if l := part.l; l != nil {
			row(part.name, "%s", percentileRow(l))
		}
	}
	if r.RestoreRecords > 0 {
		row("restore", "%d records (%d MiB) in %.2f s, %.0f records/s, %.0f MiB/s", r.RestoreRecords, r.RestoreBytes>>20,
			r.RestoreSeconds, r.RestoreRecordsPerSec, r.RestoreBytesPerSec/(1<<20))
		row("ready", "%.2f s from start to ready, %.0f records/s over it, %.2f CPU s", r.RestoreReadySeconds, r.RestoreReadyRecordsPerSec, r.RestoreCPUSeconds)
	}
	if r.Commits > 0 {
		row("commits", "%d, %.1f ms each on average, p99 %.1f ms", r.Commits, r.CommitMSMean, r.CommitMSP99)
		for _, phase := range slices.Sorted(maps.Keys(r.CommitPhasesMS)) {
			t := r.CommitPhasesMS[phase]
			row("  "+phase, "%.1f ms on average, p99 %.1f ms", t.MeanMS, t.P99MS)
		}
	}
	if r.ChangelogOffsetsPerEvent > 0 {
		row("changelogs", "%.2f offsets per event", r.ChangelogOffsetsPerEvent)
	}
	row("memory", "%d MiB peak RSS", r.RSSPeakBytes>>20)
	if r.DiskBytesPerProfile > 0 {
		row("disk", "%.0f B per profile", r.DiskBytesPerProfile)
	}
	tw.Flush()
}

// newBenchBaselineCmd returns the hidden `tessera bench-baseline`: the bare
// consume→produce loop `tessera bench` runs in a process of its own.
func newBenchBaselineCmd() *cobra.Command {
	var o bench.BaselineOptions
	cmd := &cobra.Command{
		Use:    "bench-baseline",
		Short:  "The benchmark's baseline: a bare franz-go consume→produce loop",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := bench.Baseline(ctx, o)
			if err != nil {
				return err
			}
			b, _ := json.Marshal(res)
			fmt.Fprintf(cmd.OutOrStdout(), "baseline: %s\n", b)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Brokers, "brokers", nil, "Kafka seed brokers")
	f.StringVar(&o.From, "from", "", "topic to read")
	f.StringVar(&o.To, "to", "", "topic to write")
	f.StringVar(&o.Group, "group", "", "consumer group (and transactional id)")
	f.Int64Var(&o.Records, "records", 0, "records to copy before stopping")
	f.BoolVar(&o.ExactlyOnce, "exactly-once", true, "copy in transactions")
	f.DurationVar(&o.CommitInterval, "commit-interval", 0, "commit cycle (default 100ms)")
	for _, n := range []string{"brokers", "from", "to", "group", "records"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

// threadsOf shows a run's processing.threads, 0 being the hub's default.
func threadsOf(n int) string {
	if n == 0 {
		return "default"
	}
	return strconv.Itoa(n)
}

// percentileRow formats latency percentiles for printBench.
func percentileRow(l *bench.Percentiles) string {
	return fmt.Sprintf("p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, p99.9 %.1f ms", l.P50, l.P95, l.P99, l.P999)
}
