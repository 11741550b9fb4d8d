package topology

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The first writes to a topic.
//
// franz-go (v1.22.3) can end a transaction that consumed nothing (no
// offsets in it) with an abort, although its produces succeeded and the
// commit was asked for, and report the commit: it happens when the
// transaction holds the client's first produce to a topic, which races the
// client's learning of the topic. A long-lived client producing to a topic
// new to it in each of 200 transactions saw 3–7 of them end so, in four
// runs under the race detector; on a topic it knew, none in 600. The hub
// ends such transactions when a cycle's wall-clock punctuations wrote and
// no record came in: an idle hub's first sweep after a start. Reported
// committed, the cycle would apply its writes to the stores while their
// changelog records (and activations) were aborted.
//
// So the runtime notes, per partition, the last offset it wrote to a topic
// its producer had not written to before, and after a transaction without
// input that reports a commit, reads the marker that ended it in those
// partitions. It happens at most once per topic and process.

// firstWrites tracks the topics the producer has written to, and the
// writes of the open transaction to the others.
type firstWrites struct {
	// known is the set of topics written to before the open transaction,
	// replaced (never changed) when it grows: the promise of every record
	// reads it.
	known atomic.Pointer[map[string]struct{}]
	mu    sync.Mutex
	// open holds, per partition of a topic not in known, the last
	// write of the open transaction there. REQUIRES: mu.
	open map[topicPartition]lastWrite
}

// lastWrite is the offset of a record and its producer's id.
type lastWrite struct {
	offset, producerID int64
}

// note records a record produced in the open transaction; promises call it.
func (f *firstWrites) note(rec *kgo.Record) {
	if k := f.known.Load(); k != nil {
		if _, ok := (*k)[rec.Topic]; ok {
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tp := topicPartition{rec.Topic, rec.Partition}
	if last, ok := f.open[tp]; !ok || rec.Offset > last.offset {
		if f.open == nil {
			f.open = make(map[topicPartition]lastWrite)
		}
		f.open[tp] = lastWrite{rec.Offset, rec.ProducerID}
	}
}

// take returns the open transaction's first writes and makes their topics
// known. The loop calls it once the transaction has ended.
func (f *firstWrites) take() map[topicPartition]lastWrite {
	f.mu.Lock()
	defer f.mu.Unlock()
	open := f.open
	f.open = nil
	if len(open) == 0 {
		return nil
	}
	known := make(map[string]struct{})
	if k := f.known.Load(); k != nil {
		for t := range *k {
			known[t] = struct{}{}
		}
	}
	for tp := range open {
		known[tp.topic] = struct{}{}
	}
	f.known.Store(&known)
	return open
}

// endedCommitted reads, after the last record of each write, the marker
// that ended its transaction, and reports whether every one is a commit.
func endedCommitted(ctx context.Context, opts []kgo.Opt, writes map[topicPartition]lastWrite) (bool, error) {
	for tp, last := range writes {
		committed, err := markerAfter(ctx, opts, tp, last)
		if err != nil {
			return false, err
		}
		if !committed {
			return false, nil
		}
	}
	return true, nil
}

// markerAfter finds the first control record of last's producer after
// last in tp and reports whether it is a commit marker.
func markerAfter(ctx context.Context, opts []kgo.Opt, tp topicPartition, last lastWrite) (bool, error) {
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{tp.topic: {tp.partition: kgo.NewOffset().At(last.offset + 1)}}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.KeepControlRecords(),
		kgo.DisableClientMetrics(),
	)...)
	if err != nil {
		return false, fmt.Errorf("reading the end marker in %s[%d]: %w", tp.topic, tp.partition, err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("reading the end marker in %s[%d]: %w", tp.topic, tp.partition, err)
		}
		if err := fs.Err(); err != nil {
			return false, fmt.Errorf("reading the end marker in %s[%d]: %w", tp.topic, tp.partition, err)
		}
		for _, rec := range fs.Records() {
			// A control record's key is a version and a type, two
			// big-endian int16s: type 0 aborts, 1 commits.
			if rec.Attrs.IsControl() && rec.ProducerID == last.producerID && len(rec.Key) >= 4 {
				return binary.BigEndian.Uint16(rec.Key[2:4]) == 1, nil
			}
		}
	}
}
