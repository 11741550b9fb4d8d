package topology

// logSlab holds the keys and values of the changelog records that a task
// produces in one commit cycle, in chunks that the next cycles reuse.
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
// A slab is its task's, used by the thread running the task and, between
// cycles, by the loop; it has no lock.
type logSlab struct {
	// chunks are the chunks handed out from since the last reset, the
	// last being filled from off; free are chunks to reuse.
	chunks [][]byte
	off    int
	free   [][]byte
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
)

// alloc returns n bytes that stay the caller's until the next reset.
func (s *logSlab) alloc(n int) []byte {
	if n > logChunkBytes/4 {
		return make([]byte, n)
	}
	if len(s.chunks) == 0 || s.off+n > logChunkBytes {
		var c []byte
		if k := len(s.free); k > 0 {
			c, s.free[k-1] = s.free[k-1], nil
			s.free = s.free[:k-1]
		} else {
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

// reset makes every chunk free for reuse: the caller guarantees that
// nothing refers to the bytes handed out any longer (INVARIANT above).
func (s *logSlab) reset() {
	for i, c := range s.chunks {
		if len(s.free) < logSlabKeep {
			s.free = append(s.free, c)
		}
		s.chunks[i] = nil
	}
	s.chunks = s.chunks[:0]
	s.off = 0
}
