package topology_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/topology"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkPassThrough compares the engine running a no-op topology (source
// → forwarding processor → sink) with a bare franz-go consume→produce loop
// over the same records on the same embedded broker, under at-least-once
// and exactly-once. The engine/bare ratio of the records/s metrics is the
// engine's overhead (target ≤ 1.5×, DESIGN.md §9):
//
//	go test -run '^$' -bench PassThrough -benchtime 3x ./topology/
func BenchmarkPassThrough(b *testing.B) {
	const n = 1_000_000
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	defer adm.Close()
	if _, err := adm.CreateTopic(context.Background(), partitions, 1, nil, "in"); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 200)
	for i := 0; i < n; i++ {
		cl.Produce(context.Background(), &kgo.Record{Topic: "in", Key: keyOf(i), Value: value}, nil)
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}

	run := 0
	next := func() string { run++; return fmt.Sprintf("run%d", run) }
	for _, eos := range []bool{false, true} {
		name := "at_least_once"
		if eos {
			name = "exactly_once"
		}
		b.Run("bare/"+name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				out := next()
				if _, err := adm.CreateTopic(context.Background(), partitions, 1, nil, out); err != nil {
					b.Fatal(err)
				}
				bareLoop(b, brokers, out, n, eos)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
		b.Run("engine/"+name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				engineLoop(b, brokers, next(), n, eos)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// bareLoop is the baseline: a group consumer that produces each record it
// reads to out, committing every poll (in a transaction under eos).
func bareLoop(b *testing.B, brokers []string, out string, n int, eos bool) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(out), kgo.ConsumeTopics("in"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ProducerLinger(0),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DisableAutoCommit(),
		kgo.MaxBufferedRecords(1_000_000),
	}
	ctx := context.Background()
	seen := 0
	if eos {
		sess, err := kgo.NewGroupTransactSession(append(opts, kgo.TransactionalID(out))...)
		if err != nil {
			b.Fatal(err)
		}
		defer sess.Close()
		for seen < n {
			fs := sess.PollRecords(ctx, 10_000)
			if err := sess.Begin(); err != nil {
				b.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				seen++
				sess.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value}, nil)
			})
			if _, err := sess.End(ctx, kgo.TryCommit); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for seen < n {
		fs := cl.PollRecords(ctx, 10_000)
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			cl.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value}, nil)
		})
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// engineLoop runs the no-op topology until it has processed n records,
// then stops it, which commits the last cycle.
func engineLoop(b *testing.B, brokers []string, app string, n int, eos bool) {
	var seen atomic.Int64
	topo, err := topology.NewBuilder().
		AddSource("in", "in", partitions).
		AddProcessor("forward", func() topology.Processor {
			return topology.ProcessorFunc(func(ctx *topology.Context, r topology.Record) error {
				seen.Add(1)
				return ctx.Forward(r)
			})
		}, "in").
		AddSink("out", app+".out", "forward").
		Build()
	if err != nil {
		b.Fatal(err)
	}
	g := topology.AtLeastOnce
	if eos {
		g = topology.ExactlyOnce
	}
	rt, err := topology.NewRuntime(topo, topology.Config{
		App: app, Brokers: brokers, StateDir: b.TempDir(), Guarantee: g,
		SessionTimeout: 3 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	for seen.Load() < int64(n) {
		select {
		case err := <-done:
			b.Fatalf("runtime stopped early: %v", err)
		case <-time.After(time.Millisecond): // polling a counter
		}
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
