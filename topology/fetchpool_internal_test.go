package topology

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// forwarder forwards each record's key as it is, without copying, and its
// value copied into the task's scratch bytes: the bytes of its outputs are
// its inputs' and the scratch's until the producer is done with them,
// which is what recycling the inputs and reusing the scratch must wait
// for.
type forwarder struct{}

func (forwarder) Init(*Context) error { return nil }
func (forwarder) Process(ctx *Context, r Record) error {
	v := ctx.Scratch(len(r.Value))
	copy(v, r.Value)
	return ctx.Forward(Record{Key: r.Key, Value: v, Timestamp: r.Timestamp})
}

// pooledValue is record i's value: about 1 KB, distinct, and compressible,
// so that the producer compresses its batches and the consumer decompresses
// them into the pool's buffers.
func pooledValue(i int) []byte {
	return fmt.Appendf(nil, "%06d|%s", i, bytes.Repeat(fmt.Appendf(nil, "%06d", i), 170))
}

// TestFetchPoolRecyclesAfterCommit runs a topology whose outputs share
// their inputs' bytes and the task's scratch bytes, under both
// guarantees, over rounds of compressed input, and checks that every
// output is exactly its input although the consumer decompressed later
// fetches into the buffers of earlier ones and the scratch was reused:
// the pool lent buffers it had taken back, so the loop recycled records,
// and it did so only once the outputs that refer to them were flushed.
func TestFetchPoolRecyclesAfterCommit(t *testing.T) {
	for _, g := range []Guarantee{AtLeastOnce, ExactlyOnce} {
		t.Run(g.String(), func(t *testing.T) {
			const (
				parts    = 4
				rounds   = 6
				perRound = 1500
			)
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			brokers := cluster.ListenAddrs()
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond),
				kgo.ProducerBatchCompression(kgo.SnappyCompression()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if _, err := kadm.NewClient(cl).CreateTopics(ctx, parts, 1, nil, "in", "out"); err != nil {
				t.Fatal(err)
			}
			topo, err := NewBuilder().
				AddSource("in", "in", parts).
				AddProcessor("fwd", func() Processor { return forwarder{} }, "in").
				AddSink("out", "out", "fwd").
				Build()
			if err != nil {
				t.Fatal(err)
			}
			r, err := NewRuntime(topo, Config{
				App: "pool", Brokers: brokers, StateDir: t.TempDir(), Guarantee: g,
				CommitInterval: 50 * time.Millisecond,
				Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			ran := make(chan error, 1)
			go func() { ran <- r.Run(runCtx) }()

			out, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			seen := make(map[string]bool)
			for round := range rounds {
				for i := round * perRound; i < (round+1)*perRound; i++ {
					cl.Produce(ctx, &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", i), Value: pooledValue(i)}, nil)
				}
				if err := cl.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				for len(seen) < (round+1)*perRound {
					fs := out.PollFetches(ctx)
					if ctx.Err() != nil {
						t.Fatalf("round %d: %d outputs, want %d", round, len(seen), (round+1)*perRound)
					}
					fs.EachRecord(func(rec *kgo.Record) {
						var i int
						if _, err := fmt.Sscanf(string(rec.Key), "k%d", &i); err != nil {
							t.Fatalf("output key %q: %v", rec.Key, err)
						}
						if want := pooledValue(i); !bytes.Equal(rec.Value, want) {
							t.Fatalf("output of k%d at %s[%d]@%d is %.40q…, want %.40q…", i, rec.Topic, rec.Partition, rec.Offset, rec.Value, want)
						}
						seen[string(rec.Key)] = true
					})
				}
			}
			stop()
			if err := <-ran; err != nil {
				t.Fatal(err)
			}
			st := r.fetches.counts()
			t.Logf("pool: %+v", st)
			if st.returned == 0 || st.reused == 0 {
				t.Errorf("the pool lent %d buffers, of which %d reused, and took back %d: want buffers taken back and lent again", st.lent, st.reused, st.returned)
			}
		})
	}
}

// TestFetchPoolClasses checks the size classes against their definition,
// over every size up to past the largest class: a request's class holds
// it with at most a quarter to spare, a capacity's class holds no more
// than it, and each class's own size files back under it.
func TestFetchPoolClasses(t *testing.T) {
	largest := classSize(fetchPoolClasses - 1)
	if largest != 1<<18 {
		t.Fatalf("the largest class has %d units, want 2^18", largest)
	}
	for n := 0; n <= largest+100; n++ {
		class, ok := classOf(n)
		if ok != (n <= largest) {
			t.Fatalf("classOf(%d): ok %v, largest class %d units", n, ok, largest)
		}
		if ok {
			size := classSize(class)
			if size < n || n > 1<<fetchPoolMinExp && 4*size > 5*n+4 {
				t.Fatalf("classOf(%d) = %d of %d units: want at least %d and at most a quarter more", n, class, size, n)
			}
			if class > 0 && classSize(class-1) >= n {
				t.Fatalf("classOf(%d) = %d, but class %d of %d units holds it", n, class, class-1, classSize(class-1))
			}
		}
		below, ok := classBelow(n)
		if ok != (n >= 1<<fetchPoolMinExp) {
			t.Fatalf("classBelow(%d): ok %v", n, ok)
		}
		if ok && (classSize(below) > n || below < fetchPoolClasses-1 && classSize(below+1) <= n) {
			t.Fatalf("classBelow(%d) = %d of %d units: want the largest class not above it", n, below, classSize(below))
		}
	}
	for class := range fetchPoolClasses {
		if got, _ := classBelow(classSize(class)); got != class {
			t.Errorf("classBelow(classSize(%d) = %d) = %d", class, classSize(class), got)
		}
		if got, _ := classOf(classSize(class)); got != class {
			t.Errorf("classOf(classSize(%d) = %d) = %d", class, classSize(class), got)
		}
	}
}

// TestFetchPoolLends checks what the pool lends and keeps: a buffer taken
// back serves requests its class holds, a snappy block gets its stated
// length, and the pool keeps no more than its bound.
func TestFetchPoolLends(t *testing.T) {
	var p fetchPool
	// A grown buffer of an odd capacity (12.5 KiB) goes to the class
	// below it (12 KiB), and serves requests of that class, not above.
	odd := 50 * bytesUnit
	p.PutDecompressBytes(make([]byte, 0, odd))
	if b := p.GetDecompressBytes(make([]byte, 3200), kgo.CodecLz4); cap(b) == odd {
		t.Errorf("a request for 12,800 bytes got the buffer of %d filed as 12 KiB", odd)
	}
	if b := p.GetDecompressBytes(make([]byte, 3000), kgo.CodecLz4); cap(b) != odd {
		t.Errorf("a request for 12,000 bytes got a buffer of %d, want the one of %d taken back", cap(b), odd)
	}
	src := binary.AppendUvarint(nil, 100_000) // a snappy block's stated length
	if b := p.GetDecompressBytes(src, kgo.CodecSnappy); cap(b) < 100_000 || cap(b) > 125_000 {
		t.Errorf("a snappy block of 100,000 bytes got a buffer of %d", cap(b))
	}
	// The bound: buffers coming back beyond it are dropped.
	big := bytesUnit << (fetchPoolMinExp + 10)
	for range 2 * fetchPoolMaxBytes / big {
		p.PutDecompressBytes(make([]byte, 0, big))
	}
	p.PutRecords(make([]kgo.Record, 0, 1024))
	if p.held > fetchPoolMaxBytes {
		t.Errorf("the pool holds %d bytes, above its bound %d", p.held, fetchPoolMaxBytes)
	}
	kept := 0
	for _, c := range p.bytes {
		for _, b := range c {
			kept += cap(b)
		}
	}
	for _, c := range p.records {
		for _, rs := range c {
			kept += cap(rs) * recordBytes
		}
	}
	if kept != p.held {
		t.Errorf("the pool keeps %d bytes but counts %d", kept, p.held)
	}
}
