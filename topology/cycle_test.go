package topology_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/tessera-cdp/tessera/topology"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Commit cycles end by time. A cycle used to process everything one poll
// returned (up to MaxPollRecords) and every wall-clock punctuation that
// was due before it committed; with slow processing or slow punctuators
// the transaction outlasted the transaction timeout, the broker aborted it
// and fenced the producer (INVALID_PRODUCER_EPOCH, and the runtime
// stopped: both exactly-once cases here failed so). These tests make both
// slow, over a transaction timeout of 2s, and check that nothing is fenced
// or aborted, every record counts exactly once, in order, and the group's
// committed offsets are exactly the input's end offsets.

const (
	slowTxnTimeout = 2 * time.Second
	ticksStore     = "ticks"
)

// slowCounter is counter with a delay per record and a wall-clock
// punctuation that blocks (and writes to the ticks store, so the broker
// sees the transaction begin) on its first calls.
type slowCounter struct {
	delay       time.Duration
	every       time.Duration // 0: no punctuation
	block       time.Duration
	blockCalls  int
	calls       int
	blockedDone *atomic.Int64 // blocking calls finished, over all tasks
	// inflight counts the Process calls running, over all tasks, and
	// mostInflight is its highest value; busy is this task's own count,
	// and reentered is set if it ever exceeded one.
	inflight, mostInflight *atomic.Int64
	busy                   int32
	reentered              *atomic.Bool
	// mostBacklog is the largest Context.Backlog a Process call saw.
	mostBacklog *atomic.Int64
}

// share gives the counter its counters shared over all tasks.
func (s *slowCounter) share() {
	s.blockedDone = new(atomic.Int64)
	s.inflight, s.mostInflight, s.reentered = new(atomic.Int64), new(atomic.Int64), new(atomic.Bool)
	s.mostBacklog = new(atomic.Int64)
}

func (s *slowCounter) Init(ctx *topology.Context) error {
	if s.every > 0 {
		ctx.Schedule(s.every, topology.WallClock, func(ctx *topology.Context, _ time.Time) error {
			if s.calls >= s.blockCalls {
				return nil
			}
			s.calls++
			time.Sleep(s.block) // a slow sweep
			if err := ctx.KeyValue(ticksStore).Put([]byte("tick"), []byte{byte(s.calls)}); err != nil {
				return err
			}
			s.blockedDone.Add(1)
			return nil
		})
	}
	return nil
}

func (s *slowCounter) Process(ctx *topology.Context, r topology.Record) error {
	if atomic.AddInt32(&s.busy, 1) > 1 {
		s.reentered.Store(true)
	}
	defer atomic.AddInt32(&s.busy, -1)
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for m := s.mostInflight.Load(); n > m && !s.mostInflight.CompareAndSwap(m, n); m = s.mostInflight.Load() {
	}
	b := ctx.Backlog()
	for m := s.mostBacklog.Load(); b > m && !s.mostBacklog.CompareAndSwap(m, b); m = s.mostBacklog.Load() {
	}
	time.Sleep(s.delay) // slow processing
	return counter{}.Process(ctx, r)
}

func slowCounting(proto slowCounter) *topology.Topology {
	t, err := topology.NewBuilder().
		AddSource("input", inTopic, partitions).
		AddProcessor("count", func() topology.Processor { p := proto; return &p }, "input").
		AddStore(countStore, topology.KeyValueStore, "count").
		AddStore(ticksStore, topology.KeyValueStore, "count").
		AddSink("output", outTopic, "count").
		Build()
	if err != nil {
		panic(err)
	}
	return t
}

func TestCommitCycleEndsByTime(t *testing.T) {
	t.Run("slow records exactly_once", func(t *testing.T) {
		// 480 records at 10ms each: one poll returns far more than a
		// transaction timeout's worth.
		runSlow(t, topology.ExactlyOnce, slowCounter{delay: 10 * time.Millisecond}, 480, 0, 10)
	})
	t.Run("slow records at_least_once", func(t *testing.T) {
		runSlow(t, topology.AtLeastOnce, slowCounter{delay: 10 * time.Millisecond}, 480, 0, 10)
	})
	t.Run("slow records on four threads exactly_once", func(t *testing.T) {
		// Each thread stops at the deadline in the middle of its
		// partitions; what it left is the next cycle's.
		runSlowThreads(t, 4, topology.ExactlyOnce, slowCounter{delay: 10 * time.Millisecond}, 1440, 0, 10)
	})
	t.Run("slow records on four threads at_least_once", func(t *testing.T) {
		runSlowThreads(t, 4, topology.AtLeastOnce, slowCounter{delay: 10 * time.Millisecond}, 1440, 0, 10)
	})
	t.Run("slow punctuations exactly_once", func(t *testing.T) {
		// Every task's punctuation comes due at once, and one round
		// of them takes 12 × 250ms = 3s: one cycle each.
		runSlow(t, topology.ExactlyOnce, slowCounter{every: 300 * time.Millisecond, block: 250 * time.Millisecond, blockCalls: 1}, 2000, partitions, partitions)
	})
}

// runSlow processes n records with proc under guarantee g and a 2s
// transaction timeout, waits for wantBlocked blocking punctuations, and
// checks the output, the stores, the committed offsets and that at least
// wantCycles cycles committed and none aborted.
func runSlow(t *testing.T, g topology.Guarantee, proc slowCounter, n int, wantBlocked int64, wantCycles float64) {
	runSlowThreads(t, 1, g, proc, n, wantBlocked, wantCycles)
}

// runSlowThreads is runSlow with Config.Threads threads.
func runSlowThreads(t *testing.T, threads int, g topology.Guarantee, proc slowCounter, n int, wantBlocked int64, wantCycles float64) {
	h := newHarness(t, false)
	proc.share()
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	rt, err := topology.NewRuntime(slowCounting(proc), topology.Config{
		App:                app,
		Brokers:            h.brokers,
		StateDir:           dir,
		Guarantee:          g,
		SessionTimeout:     3 * time.Second,
		RebalanceTimeout:   10 * time.Second,
		TransactionTimeout: slowTxnTimeout,
		Threads:            threads,
		Registerer:         reg,
		// Warnings and errors say why a cycle aborted.
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := runInBackground(rt)
	defer cancel()

	h.produce(0, n)
	h.awaitOutput(n)
	deadline := time.Now().Add(60 * time.Second)
	for proc.blockedDone.Load() < wantBlocked {
		if time.Now().After(deadline) {
			t.Fatalf("%d blocking punctuations ran in 60s, want %d", proc.blockedDone.Load(), wantBlocked)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
	h.awaitProgress(int64(n))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runtime stopped with %v (fenced?)", err)
	}
	checkStores(t, dir, n)
	h.checkCommittedOffsets()

	// The threads ran tasks at once, never more than threads of them,
	// and never one task on two of them.
	if most := proc.mostInflight.Load(); most > int64(threads) || threads > 1 && most < 2 {
		t.Errorf("at most %d records were processed at once, want 2 to %d", most, threads)
	}
	if proc.reentered.Load() {
		t.Error("a task processed two records at once")
	}
	// Cycles ended with records of a partition left, which later
	// records' tasks saw as a backlog; never more than were sent.
	if most := proc.mostBacklog.Load(); proc.delay > 0 && most <= 0 || most >= int64(n) {
		t.Errorf("the largest backlog a task saw was %d, want some and fewer than the %d records", most, n)
	}
	// Each thread that ran records counted its time.
	for i := range min(threads, 2) {
		if busy := counterValue(t, reg, "tessera_thread_busy_seconds_total", strconv.Itoa(i)); busy <= 0 {
			t.Errorf("thread %d was busy %vs, want some time", i, busy)
		}
	}

	// The counting processor reads each key before it writes it, so its
	// read cache saw reads and held writes back.
	for _, ev := range []string{"miss", "written_back"} {
		if n := counterValue(t, reg, "tessera_read_cache_total", ev); n <= 0 {
			t.Errorf("tessera_read_cache_total{event=%q} = %v, want some", ev, n)
		}
	}

	committed := counterValue(t, reg, "tessera_transactions_total", "committed")
	aborted := counterValue(t, reg, "tessera_transactions_total", "aborted")
	// A cycle without input whose first write to a topic franz-go
	// silently aborted (firstwrite.go) is caught by the transaction
	// check and aborts correctly; this test is about cycles that end
	// in time, so only other aborts count against it.
	checked := counterValue(t, reg, "tessera_transaction_checks_total", "aborted")
	if aborted != checked {
		t.Errorf("%v cycles aborted (%v of them found aborted by the transaction check), want none other", aborted, checked)
	}
	// Seconds of work in cycles of about 100ms: many commits, where
	// one poll or one round of punctuations used to be one.
	if committed < wantCycles {
		t.Errorf("%v cycles committed, want at least %v: the work cut into many", committed, wantCycles)
	}
	t.Logf("%v cycles committed, %v aborted", committed, aborted)
}

// checkCommittedOffsets checks that the group's committed offset of every
// input partition is its end offset: no record skipped, none left.
func (h *harness) checkCommittedOffsets() {
	h.t.Helper()
	adm := h.admin()
	defer adm.Close()
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, inTopic)
	if err != nil {
		h.t.Fatal(err)
	}
	offs, err := adm.FetchOffsets(ctx, app)
	if err != nil {
		h.t.Fatal(err)
	}
	ends.Each(func(lo kadm.ListedOffset) {
		got, ok := offs.Lookup(lo.Topic, lo.Partition)
		if !ok || got.At != lo.Offset {
			h.t.Errorf("%s[%d]: committed offset %d, want the end offset %d", lo.Topic, lo.Partition, got.At, lo.Offset)
		}
	})
}

// produceRounds produces rounds of perRound input records, each round
// once every output of the rounds before it is readable.
func (h *harness) produceRounds(rounds, perRound int) {
	h.t.Helper()
	for i := range rounds {
		h.produce(i*perRound, (i+1)*perRound)
		h.awaitOutput((i + 1) * perRound)
	}
}

// counterValue returns the value of counter name with the one label value.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	return seriesWith(t, reg, name, label).GetCounter().GetValue()
}

// histogramCount returns the observation count of histogram name's series
// with the one label value.
func histogramCount(t *testing.T, reg *prometheus.Registry, name, label string) uint64 {
	t.Helper()
	return seriesWith(t, reg, name, label).GetHistogram().GetSampleCount()
}

// seriesWith returns metric name's series with a label of value label; nil
// (whose getters return zeros) when there is none.
func seriesWith(t *testing.T, reg *prometheus.Registry, name, label string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m
				}
			}
		}
	}
	return nil
}

// TestCycleEndsWhenInputDrains: under exactly-once an output is readable
// only once its cycle commits. With a five-minute commit interval, the
// outputs of each of three rounds of input are still readable within
// awaitOutput's 90s, which only a cycle ending as its input drained
// (MinCommitInterval) can do; every round takes a commit of its own.
func TestCycleEndsWhenInputDrains(t *testing.T) {
	h := newHarness(t, false)
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	rt, err := topology.NewRuntime(counting(inTopic, outTopic, partitions), topology.Config{
		App:                app,
		Brokers:            h.brokers,
		StateDir:           dir,
		Guarantee:          topology.ExactlyOnce,
		CommitInterval:     5 * time.Minute,
		MinCommitInterval:  20 * time.Millisecond,
		TransactionTimeout: 10 * time.Minute,
		SessionTimeout:     3 * time.Second,
		RebalanceTimeout:   10 * time.Second,
		Registerer:         reg,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := runInBackground(rt)
	defer cancel()

	const rounds = 3
	h.produceRounds(rounds, 40)
	if got := counterValue(t, reg, "tessera_transactions_total", "committed"); got < rounds {
		t.Errorf("%v transactions committed, want at least one per round (%d)", got, rounds)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runtime stopped with %v", err)
	}
	h.checkCommittedOffsets()
}

// runInBackground runs rt until the returned cancel, sending Run's result
// on the returned channel.
func runInBackground(rt *topology.Runtime) (<-chan error, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	return done, cancel
}

// TestCommitSendsWhatLingers: with the longest producer linger, far
// longer than the test takes, outputs and changelog records reach the broker only because each
// commit sends what waits, under either guarantee.
func TestCommitSendsWhatLingers(t *testing.T) {
	for _, g := range []topology.Guarantee{topology.AtLeastOnce, topology.ExactlyOnce} {
		t.Run(fmt.Sprint(g), func(t *testing.T) {
			h := newHarness(t, false)
			cfg := childConfig(h.brokers, t.TempDir())
			cfg.Guarantee = g
			cfg.ProducerLinger = topology.MaxProducerLinger
			rt, err := topology.NewRuntime(counting(inTopic, outTopic, partitions), cfg)
			if err != nil {
				t.Fatal(err)
			}
			done, cancel := runInBackground(rt)
			defer cancel()
			h.produce(0, 200)
			// Well before the linger would send them by itself.
			h.awaitOutputWithin(200, topology.MaxProducerLinger/2)
			h.awaitProgress(200)
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("runtime stopped with %v", err)
			}
			if n := h.changelogRecords(); n < 1 {
				t.Errorf("the changelog holds %d records, want the counts", n)
			}
		})
	}
}

func TestConfigBoundsTheLinger(t *testing.T) {
	for _, linger := range []time.Duration{-time.Millisecond, topology.MaxProducerLinger + time.Millisecond} {
		cfg := childConfig([]string{"127.0.0.1:1"}, t.TempDir())
		cfg.ProducerLinger = linger
		if _, err := topology.NewRuntime(counting(inTopic, outTopic, partitions), cfg); err == nil || !strings.Contains(err.Error(), "ProducerLinger") {
			t.Errorf("NewRuntime with a linger of %v: %v, want an error naming ProducerLinger", linger, err)
		}
	}
}

// TestOffsetsCommittedWhenStopped: under either guarantee, every record
// processed has its offset committed by the time Run returns from a clean
// stop; and each commit phase of the guarantee is timed, and only those.
func TestOffsetsCommittedWhenStopped(t *testing.T) {
	for _, tc := range []struct {
		g            topology.Guarantee
		timed, never []string
	}{
		{topology.AtLeastOnce, []string{"produce_flush", "apply", "offset_commit"}, []string{"transaction_end"}},
		{topology.ExactlyOnce, []string{"transaction_end", "apply"}, []string{"produce_flush", "offset_commit"}},
	} {
		t.Run(fmt.Sprint(tc.g), func(t *testing.T) {
			h := newHarness(t, false)
			reg := prometheus.NewRegistry()
			cfg := childConfig(h.brokers, t.TempDir())
			cfg.Guarantee = tc.g
			cfg.CommitInterval = 20 * time.Millisecond
			cfg.Registerer = reg
			rt, err := topology.NewRuntime(counting(inTopic, outTopic, partitions), cfg)
			if err != nil {
				t.Fatal(err)
			}
			done, cancel := runInBackground(rt)
			defer cancel()
			h.produceRounds(3, 50)
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("runtime stopped with %v", err)
			}
			h.checkCommittedOffsets()
			for _, phase := range tc.timed {
				if n := histogramCount(t, reg, "tessera_commit_phase_seconds", phase); n == 0 {
					t.Errorf("phase %s: no commit timed", phase)
				}
			}
			for _, phase := range tc.never {
				if n := histogramCount(t, reg, "tessera_commit_phase_seconds", phase); n != 0 {
					t.Errorf("phase %s: %d commits timed, want none under %v", phase, n, tc.g)
				}
			}
		})
	}
}
