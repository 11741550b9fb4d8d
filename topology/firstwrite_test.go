package topology_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/state"
	"github.com/tessera-cdp/tessera/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTransactionWithoutInputIsChecked: an idle hub's wall-clock
// punctuations write to a store, so the first transactions hold no
// offsets and the producer's first write to the store's changelog, which
// the Kafka client can report committed after aborting (firstwrite.go).
// The runtime reads back how each ended, and what the stores keep is
// exactly what the changelog committed.
func TestTransactionWithoutInputIsChecked(t *testing.T) {
	h := newHarness(t, false)
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	proc := slowCounter{every: 100 * time.Millisecond, blockCalls: 1}
	proc.share()
	rt, err := topology.NewRuntime(slowCounting(proc), topology.Config{
		App:              app,
		Brokers:          h.brokers,
		StateDir:         dir,
		Guarantee:        topology.ExactlyOnce,
		SessionTimeout:   3 * time.Second,
		RebalanceTimeout: 10 * time.Second,
		Registerer:       reg,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := runInBackground(rt)
	defer cancel()
	checks := func() float64 {
		return counterValue(t, reg, "tessera_transaction_checks_total", "committed") +
			counterValue(t, reg, "tessera_transaction_checks_total", "aborted")
	}
	deadline := time.Now().Add(60 * time.Second)
	for proc.blockedDone.Load() < partitions || checks() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("in 60s %d of %d tasks ticked and %v transactions were checked", proc.blockedDone.Load(), partitions, checks())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runtime stopped with %v", err)
	}
	t.Logf("checks: %v committed, %v aborted", counterValue(t, reg, "tessera_transaction_checks_total", "committed"),
		counterValue(t, reg, "tessera_transaction_checks_total", "aborted"))

	// The ticks the changelog committed (read_committed)…
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(topology.ChangelogTopic(app, ticksStore)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	logged := map[int32]bool{}
	ctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { logged[r.Partition] = true })
	}
	// …are exactly those the stores hold.
	for p := int32(0); p < partitions; p++ {
		db, err := state.Open(filepath.Join(dir, topology.TaskID{Partition: p}.String()), state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := db.KeyValue(ticksStore).Get([]byte("tick"))
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if (v != nil) != logged[p] {
			t.Errorf("task %d: the store holds a tick: %v; the changelog committed one: %v", p, v != nil, logged[p])
		}
	}
}
