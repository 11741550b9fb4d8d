package topology

import "github.com/twmb/franz-go/pkg/kgo"

// logSlab holds the records that a task produces in one commit cycle (the
// kgo.Record structs, and the keys and values of its changelog records),
// in chunks that the next cycles reuse.
//
// Each record used to be an allocation of its own, 11.5 % of the bytes the
// hub allocated in `tessera bench --mode latency` (3,500 events/s), for
// memory whose life is known exactly: the producer owns a record until it
// has been flushed, and every commit flushes (at-least-once) or ends the
// transaction (exactly-once) before it returns. So once a cycle has
// committed, the slab is free again (reset).
//
// INVARIANT: a chunk handed out since the last reset is not handed out
// again until the next one, and reset is called only when the producer
// holds none of the records whose bytes the slab handed out.
//
// The records themselves followed (5.6 % of the bytes allocated at the
// same rate, once the keys and values had moved here): franz-go is done
// with a record once its promise has returned, which is before a flush
// returns, so the same reset frees them.
//
// A slab is its task's, used by the thread running the task and, between
// cycles, by the loop; it has no lock.
type logSlab struct {
	// chunks are the chunks handed out from since the last reset, the
	// last being filled from off; free are chunks to reuse.
	chunks [][]byte
	off    int
	free   [][]byte
	// recs are the chunks of records handed out from since the last
	// reset, the last being filled from nrec; freeRecs are zeroed chunks
	// to reuse.
	recs     [][]kgo.Record
	nrec     int
	freeRecs [][]kgo.Record
}

const (
	// logChunkBytes is the size of a chunk. A record larger than a
	// quarter of it gets an allocation of its own, so that a chunk is
	// never mostly wasted.
	logChunkBytes = 64 << 10
	// logSlabKeep bounds the chunks a slab keeps across a reset: 512
	// KiB per task, over ten times what a profile task logs in a cycle
	// at 3,500 events/s over 12 partitions (about 30 KB: 350 events a
	// cycle, about 1 KB of changelog each in the bench's topics). A cycle that logs more allocates the
	// rest, as before the slab: memory kept is memory the collector
	// counts as live, and at 2 MiB per task the peak RSS of a throughput
	// run rose 11 %.
	logSlabKeep = 8
	// logRecordChunk is the number of records in a chunk (40 KiB), and
	// logRecordKeep bounds the chunks kept across a reset: 1,024 records
	// (160 KiB) per task, about ten times what a task produces in a cycle
	// at 3,500 events/s (about 90: 29 events, and per event about three
	// records, counted in the bench's topics: a profile task's timeline,
	// features and profile changes, a resolver task's dedupe, identity
	// changes and forwarded op).
	logRecordChunk = 256
	logRecordKeep  = 4
)

// alloc returns n bytes that stay the caller's until the next reset.
func (s *logSlab) alloc(n int) []byte {
	if n > logChunkBytes/4 {
		return make([]byte, n)
	}
	if len(s.chunks) == 0 || s.off+n > logChunkBytes {
		c := pop(&s.free)
		if c == nil {
			c = make([]byte, logChunkBytes)
		}
		s.chunks = append(s.chunks, c)
		s.off = 0
	}
	c := s.chunks[len(s.chunks)-1]
	b := c[s.off : s.off+n : s.off+n]
	s.off += n
	return b
}

// record returns a zeroed record that stays the caller's until the next
// reset.
func (s *logSlab) record() *kgo.Record {
	if len(s.recs) == 0 || s.nrec == logRecordChunk {
		c := pop(&s.freeRecs)
		if c == nil {
			c = make([]kgo.Record, logRecordChunk)
		}
		s.recs = append(s.recs, c)
		s.nrec = 0
	}
	r := &s.recs[len(s.recs)-1][s.nrec]
	s.nrec++
	return r
}

// reset makes every chunk free for reuse: the caller guarantees that
// nothing refers to the bytes or records handed out any longer
// (INVARIANT above).
func (s *logSlab) reset() {
	for i, c := range s.chunks {
		if len(s.free) < logSlabKeep {
			s.free = append(s.free, c)
		}
		s.chunks[i] = nil
	}
	s.chunks = s.chunks[:0]
	s.off = 0
	for i, c := range s.recs {
		if len(s.freeRecs) < logRecordKeep {
			// Zeroed, for record's callers, which set only some
			// fields (kgo stamps a zero Timestamp), and so that a
			// kept chunk holds no value or context alive.
			if i == len(s.recs)-1 {
				clear(c[:s.nrec])
			} else {
				clear(c)
			}
			s.freeRecs = append(s.freeRecs, c)
		}
		s.recs[i] = nil
	}
	s.recs = s.recs[:0]
	s.nrec = 0
}

// pop takes the last of free, or returns nil when there is none.
func pop[T any](free *[][]T) []T {
	k := len(*free)
	if k == 0 {
		return nil
	}
	c := (*free)[k-1]
	(*free)[k-1] = nil
	*free = (*free)[:k-1]
	return c
}
