package state

import (
	"context"
	"errors"
	"fmt"

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
// Progress is committed into db with a checkpoint after every fetch, so an
// interrupted restore resumes where it stopped. Restore returns the number
// of records applied per store.
func Restore(ctx context.Context, db *DB, logs []Changelog, opts RestoreOptions) (map[string]int64, error) {
	restored := make(map[string]int64, len(logs))
	if len(logs) == 0 {
		return restored, nil
	}
	topics := make([]string, 0, len(logs))
	for _, l := range logs {
		topics = append(topics, l.Topic)
	}
	ends, err := opts.Admin.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("listing changelog end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("listing changelog end offsets: %w", err)
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
		restored[l.Store] = 0
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
		kgo.FetchMaxBytes(64<<20),
	)
	cl, err := kgo.NewClient(copts...)
	if err != nil {
		return nil, fmt.Errorf("creating restore consumer: %w", err)
	}
	defer cl.Close()

	prevLogger := db.logger
	db.logger = nil // replayed records are already in the changelog
	defer func() { db.logger = prevLogger }()

	remaining := len(byTopic)
	checkpoints := make(map[string]int64, len(byTopic))
	for remaining > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			db.Discard()
			return restored, err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = errors.Join(ferr, fmt.Errorf("fetching %s[%d]: %w", t, p, err))
			}
		})
		if ferr != nil {
			db.Discard()
			return restored, ferr
		}
		clear(checkpoints)
		var applyErr error
		fetches.EachRecord(func(r *kgo.Record) {
			c := byTopic[r.Topic]
			if c == nil || applyErr != nil || c.pos >= c.end || r.Offset >= c.end {
				return
			}
			if !r.Attrs.IsControl() {
				applyErr = db.applyRestored(c.prefix, r.Key, r.Value)
				restored[c.log.Store]++
			}
			c.pos = r.Offset + 1
			checkpoints[c.log.Store] = c.pos
		})
		if applyErr != nil {
			db.Discard()
			return restored, fmt.Errorf("applying changelog record: %w", applyErr)
		}
		if err := db.Commit(checkpoints); err != nil {
			return restored, fmt.Errorf("committing restored records: %w", err)
		}
		remaining = 0
		for _, c := range byTopic {
			if c.pos < c.end {
				remaining++
			}
			if opts.Progress != nil {
				opts.Progress(c.log.Store, restored[c.log.Store], max(c.end-c.pos, 0))
			}
		}
	}
	return restored, nil
}
