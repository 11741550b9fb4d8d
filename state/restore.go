package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Changelog names the changelog partition of one store of a task.
type Changelog struct {
	Store     string
	Topic     string
	Partition int32
}

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// Client sets the options of the consumer that reads the changelogs:
	// at least the seed brokers. Restore adds its own consume options.
	Client []kgo.Opt
	// Admin lists the changelogs' end offsets.
	Admin *kadm.Client
	// Progress, if non-nil, is called after each applied fetch with the
	// records restored so far and still remaining for a store.
	Progress func(store string, restored, remaining int64)
}

// RestoreResult is what Restore replayed into one store.
type RestoreResult struct {
	// Records counts the changelog records replayed, control records
	// left out; a record that a later one of the same key superseded
	// counts too, although only the later one is written.
	Records int64
	// Bytes counts the keys and values of those records.
	Bytes int64
}

// Fetch sizes of the restore consumer. A restore reads whole changelogs
// as fast as it can, so it asks for far more than franz-go's defaults
// (1 MiB per partition): fewer round trips, and a larger window in which a
// key's later write supersedes its earlier ones (see Restore). The
// consumer buffers about two fetches, which Config's restore concurrency
// in topology multiplies.
const (
	restoreFetchBytes          = 32 << 20
	restoreFetchPartitionBytes = 16 << 20
)

// Restore brings the stores of db up to the end of their changelogs,
// starting from each store's checkpoint (from the start of the changelog
// when there is none, as for a wiped or new state directory). It reads with
// read_committed, so writes of aborted transactions never come back.
//
// The end of a changelog is its last stable offset when Restore starts. A
// restore is done when the consumer's position reaches that offset, not
// when the last data record has been seen, because transaction markers
// occupy offsets too (KAFKA-12951); control records are therefore kept and
// only advance the position.
//
// Records are written in plain (unindexed) batches of bounded size, without
// sync, bypassing db's pending writes, which a restoring task has none of.
// Of the records of one partition that one fetch returns, only the last of
// each key is written: the earlier ones would be overwritten in the same
// batch anyway. Changelogs are compacted only now and then, and a store
// like the profiles rewrites a whole value per update, so most bytes are
// superseded; writing them cost Pebble a copy into the batch and the
// memtable and a flush each (and, while the DB had one, the WAL).
//
// A transaction still open on a changelog holds its last stable offset
// back, even once it is committed: the commit markers are written after
// EndTxn returns. Reading only to that offset would leave the task's store
// behind the input offsets the same transaction committed. Restore
// therefore reads to a stable end past everything written when it started
// (see stableEnds).
//
// Progress is committed into db with a checkpoint at the end of every
// fetch, so an interrupted restore resumes where it stopped. Batches
// written within a fetch carry no checkpoint: a restore interrupted there
// resumes from the previous checkpoint and replays those records again,
// which leaves the same values. Restore returns what it replayed per store.
func Restore(ctx context.Context, db *DB, logs []Changelog, opts RestoreOptions) (map[string]RestoreResult, error) {
	restored := make(map[string]RestoreResult, len(logs))
	if len(logs) == 0 {
		return restored, nil
	}
	if db.pdb == nil {
		return restored, ErrClosed
	}
	topics := make([]string, 0, len(logs))
	for _, l := range logs {
		topics = append(topics, l.Topic)
	}
	ends, err := stableEnds(ctx, opts.Admin, logs, topics)
	if err != nil {
		return nil, err
	}

	type cursor struct {
		log    Changelog
		prefix []byte
		pos    int64 // the next offset to read
		end    int64
	}
	byTopic := make(map[string]*cursor, len(logs))
	consume := make(map[string]map[int32]kgo.Offset)
	for _, l := range logs {
		lo, ok := ends.Lookup(l.Topic, l.Partition)
		if !ok {
			return nil, fmt.Errorf("listing end offset of %s[%d]: partition missing", l.Topic, l.Partition)
		}
		from, _, err := db.Checkpoint(l.Store)
		if err != nil {
			return nil, err
		}
		restored[l.Store] = RestoreResult{}
		if from >= lo.Offset {
			continue
		}
		byTopic[l.Topic] = &cursor{log: l, prefix: storePrefix(l.Store), pos: from, end: lo.Offset}
		consume[l.Topic] = map[int32]kgo.Offset{l.Partition: kgo.NewOffset().At(from)}
	}
	if len(byTopic) == 0 {
		return restored, nil
	}

	copts := append([]kgo.Opt{}, opts.Client...)
	copts = append(copts,
		kgo.ConsumePartitions(consume),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		// A checkpoint below the log start (compaction moved it) restarts
		// from the start: replaying a compacted log is idempotent.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(restoreFetchBytes),
		kgo.FetchMaxPartitionBytes(restoreFetchPartitionBytes),
		// The consumer lives for one restore pass, a task's every
		// restart and a standby's every second: a broker that
		// subscribes clients to metrics (KIP-714) gets little from
		// its pushes, and each costs compressing them (2.4 % of the
		// hub's CPU samples while it restored, on the final push at
		// Close).
		kgo.DisableClientMetrics(),
	)
	cl, err := kgo.NewClient(copts...)
	if err != nil {
		return nil, fmt.Errorf("creating restore consumer: %w", err)
	}
	defer cl.Close()

	// The writer bypasses the stores' handles, so the read cache would
	// go stale: drop it before the first write and after the last.
	db.cache.clear()
	w := db.newRestoreWriter()
	defer w.close()
	remaining := len(byTopic)
	checkpoints := make(map[string]int64, len(byTopic))
	seen := make(map[string]struct{})
	for remaining > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return restored, err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = errors.Join(ferr, fmt.Errorf("fetching %s[%d]: %w", t, p, err))
			}
		})
		if ferr != nil {
			return restored, ferr
		}
		clear(checkpoints)
		var applyErr error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			c := byTopic[fp.Topic]
			if c == nil || applyErr != nil || c.pos >= c.end {
				return
			}
			recs := fp.Records
			for len(recs) > 0 && recs[len(recs)-1].Offset >= c.end {
				recs = recs[:len(recs)-1]
			}
			for len(recs) > 0 && recs[0].Offset < c.pos {
				recs = recs[1:]
			}
			if len(recs) == 0 {
				return
			}
			// Newest first, writing each key once: its last value.
			res := restored[c.log.Store]
			clear(seen)
			for i := len(recs) - 1; i >= 0; i-- {
				r := recs[i]
				if r.Attrs.IsControl() {
					continue
				}
				res.Records++
				res.Bytes += int64(len(r.Key) + len(r.Value))
				if _, dup := seen[string(r.Key)]; dup {
					continue
				}
				seen[string(r.Key)] = struct{}{}
				if applyErr = w.write(c.prefix, r.Key, r.Value); applyErr != nil {
					return
				}
			}
			restored[c.log.Store] = res
			c.pos = recs[len(recs)-1].Offset + 1
			checkpoints[c.log.Store] = c.pos
		})
		if applyErr != nil {
			return restored, fmt.Errorf("applying changelog records: %w", applyErr)
		}
		if err := w.commit(checkpoints); err != nil {
			return restored, fmt.Errorf("committing restored records: %w", err)
		}
		remaining = 0
		for _, c := range byTopic {
			if c.pos < c.end {
				remaining++
			}
			if opts.Progress != nil {
				opts.Progress(c.log.Store, restored[c.log.Store].Records, max(c.end-c.pos, 0))
			}
		}
	}
	return restored, nil
}

// restoreWriter writes restored records into a DB in plain batches of
// bounded size. It is a restore's own: the DB's pending batch is indexed
// (reads see it), which costs every write an index insertion that a
// restore, reading nothing, does not need.
type restoreWriter struct {
	db    *DB
	b     *pebble.Batch
	limit int // commit the batch once it holds this many bytes
}

// newRestoreWriter returns a writer whose batches stay under a quarter of
// the memtable (at most 4 MiB): Pebble then keeps reusing the batch's
// buffer instead of growing a new one by copying, and applies the batch to
// the memtable rather than as a flushable batch of its own.
func (db *DB) newRestoreWriter() *restoreWriter {
	limit := int(min(4<<20, db.memTableSize/4))
	return &restoreWriter{
		db:    db,
		b:     db.pdb.NewBatchWithSize(limit+limit/2, pebble.WithMaxRetainedSizeBytes(4*limit)),
		limit: limit,
	}
}

// write adds a changelog record of the store with key prefix, a nil value
// being a tombstone, and commits the batch without a checkpoint once it is
// full.
func (w *restoreWriter) write(prefix, key, value []byte) error {
	var op *pebble.DeferredBatchOp
	if value == nil {
		op = w.b.DeleteDeferred(len(prefix) + len(key))
	} else {
		op = w.b.SetDeferred(len(prefix)+len(key), len(value))
		copy(op.Value, value)
	}
	copy(op.Key, prefix)
	copy(op.Key[len(prefix):], key)
	if err := op.Finish(); err != nil {
		return err
	}
	if w.b.Len() >= w.limit {
		return w.commit(nil)
	}
	return nil
}

// commit writes the checkpoints (store → next changelog offset) into the
// batch and commits it, without sync as the DB has no WAL (see Open): a
// crash loses what was not flushed, checkpoints included, which the next
// restore reads again from the checkpoint that survived.
func (w *restoreWriter) commit(checkpoints map[string]int64) error {
	if err := w.db.writeCheckpoints(w.b, checkpoints); err != nil {
		return err
	}
	if w.b.Empty() {
		return nil
	}
	if err := w.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("committing batch: %w", err)
	}
	w.b.Reset()
	return nil
}

// close drops what was not committed, and the DB's read cache.
func (w *restoreWriter) close() {
	w.b.Close()
	w.db.cache.clear()
}

// stableEnds returns, for every changelog partition of logs, an end offset
// that no open transaction holds back: a last stable offset at or past the
// high watermark listed first. Until then, a transaction that was open
// when Restore started is still deciding (or writing its markers); it ends
// within the transaction timeout, committed or aborted, since its producer
// either commits or is fenced. Transactions begun later hold the last
// stable offset only above that high watermark, so the wait is bounded.
func stableEnds(ctx context.Context, adm *kadm.Client, logs []Changelog, topics []string) (kadm.ListedOffsets, error) {
	high, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = high.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing changelog high watermarks: %w", err)
	}
	wait := 2 * time.Millisecond
	for {
		ends, err := adm.ListCommittedOffsets(ctx, topics...)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("listing changelog end offsets: %w", err)
		}
		stable := true
		for _, l := range logs {
			h, ok := high.Lookup(l.Topic, l.Partition)
			e, ok2 := ends.Lookup(l.Topic, l.Partition)
			if !ok || !ok2 {
				return nil, fmt.Errorf("listing end offset of %s[%d]: partition missing", l.Topic, l.Partition)
			}
			if e.Offset < h.Offset {
				stable = false
				break
			}
		}
		if stable {
			return ends, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}
