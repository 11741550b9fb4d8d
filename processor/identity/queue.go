package identity

import (
	"encoding/binary"
	"fmt"

	"github.com/tessera-cdp/tessera/state"
)

// The queue.
//
// Ops that reach a profile while it is busy in the merge protocol (or
// before the event that creates it) wait in the profile stage's store
// "queue", one entry per op, keyed
//
//	uvarint(len(profile id)) + profile id + big-endian(sequence number)
//
// and the record keeps only where the queue starts and how long it is
// (record.QueueHead, record.Queued). Until version 6 the ops waited inside
// the record, so every op that joined a queue of n rewrote n others: while
// the merge protocol's answers waited behind a backlog, `tessera bench`
// (500,000 events) saw queues of up to 399 ops, records averaging 5.6 KB in
// its last 200,000 writes, and the copies, reads and changelog bytes grew
// with the square of a queue's length. A queue long enough would have
// outgrown the largest record the broker accepts.
//
// INVARIANT: a profile's queued ops have the sequence numbers QueueHead …
// QueueHead+Queued-1, oldest first, and numbers only grow. Under
// at-least-once a restore can leave the store ahead of the record (entries
// from QueueHead+Queued on, which the next enqueues write over) or behind
// it (numbers the record counts and the store lacks: dequeue skips them).

// queueKey returns the key of profile id's queued op number seq.
func queueKey(id string, seq uint64) []byte {
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(id)+8), uint64(len(id)))
	b = append(b, id...)
	return binary.BigEndian.AppendUint64(b, seq)
}

// queued returns how many ops wait for the profile: in the queue store,
// and inline in a record written before version 6 that no step has
// migrated yet (the sweep and the API read such records).
func (r *record) queued() int { return len(r.Queue) + r.Queued }

// queue is the step's access to the queue store.
func (s *step) queue() *state.KeyValue { return s.ctx.KeyValue(QueueStore) }

// enqueue makes op raw wait, after every op already waiting.
func (s *step) enqueue(raw []byte) error {
	if err := s.queue().Put(queueKey(s.id, s.r.QueueHead+uint64(s.r.Queued)), raw); err != nil {
		return fmt.Errorf("queueing an op: %w", err)
	}
	s.r.Queued++
	return nil
}

// dequeue removes and returns the oldest waiting op; ok is false when
// none waits.
// REQUIRES: the step's record holds no inline ops (Process migrates them
// before the first step).
func (s *step) dequeue() (raw []byte, ok bool, err error) {
	kv := s.queue()
	for s.r.Queued > 0 {
		key := queueKey(s.id, s.r.QueueHead)
		raw, err = kv.Get(key)
		if err != nil {
			return nil, false, fmt.Errorf("reading queued op %d of %s: %w", s.r.QueueHead, s.id, err)
		}
		s.r.QueueHead++
		s.r.Queued--
		if raw == nil {
			// Only a restore under at-least-once can get here: the
			// record's changelog entry made it and the op's did not,
			// in a cycle whose input offsets were therefore never
			// committed, so the op comes again and is queued anew.
			// Stopping here would stall the profile for good.
			continue
		}
		if err := kv.Delete(key); err != nil {
			return nil, false, fmt.Errorf("deleting queued op %d of %s: %w", s.r.QueueHead-1, s.id, err)
		}
		return raw, true, nil
	}
	return nil, false, nil
}

// migrateQueue moves the inline ops of a record written before version 6
// to the queue store, ahead of any op there (there is none: such a record
// counts none).
func (s *step) migrateQueue() error {
	if len(s.r.Queue) == 0 {
		return nil
	}
	if s.r.Queued != 0 {
		return fmt.Errorf("migrating the queue of %s: %d inline ops and %d stored", s.id, len(s.r.Queue), s.r.Queued)
	}
	inline := s.r.Queue
	s.r.Queue = nil
	for _, raw := range inline {
		if err := s.enqueue(raw); err != nil {
			return err
		}
	}
	return nil
}
