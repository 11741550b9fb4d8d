package topology

import (
	"math/bits"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchPool lends the Kafka client the buffers that fetched record batches
// are decompressed into and the slices their records are decoded into
// (kgo.WithPools), so that each fetch reuses memory the last ones returned.
//
// Without it every fetched batch was a fresh allocation of its
// decompressed size: in `tessera bench --mode latency` (3,500 events/s,
// at-least-once) the decompressed batches were 13.5 % of the bytes the hub
// allocated, the largest single share (a heap profile); in throughput
// mode, the page faults of the fresh memory were 27 % of the
// hub's. A record's bytes are the batch's buffer, so the buffer comes back
// only once every record of the batch is recycled (kgo.Record.Recycle),
// which the loop does when nothing can refer to them any longer: after the
// cycle that processed them committed, its outputs flushed (cycle.recycle).
//
// Buffers are kept by size class, in quarter steps between powers of two
// (classSize), up to fetchPoolMaxBytes in all: a buffer coming back beyond that is left to the garbage
// collector. It is safe for concurrent use, as kgo requires.
type fetchPool struct {
	mu      sync.Mutex
	bytes   [fetchPoolClasses][][]byte       // guarded by mu
	records [fetchPoolClasses][][]kgo.Record // guarded by mu
	// held is the memory of the buffers and slices kept, in bytes.
	held  int            // guarded by mu
	stats fetchPoolStats // guarded by mu
}

// fetchPoolStats counts what a fetchPool did, for its tests.
type fetchPoolStats struct {
	// lent and reused count the buffers and record slices lent, and
	// those of them that were taken back before; returned counts those
	// taken back.
	lent, reused, returned int
}

const (
	// fetchPoolMinExp and fetchPoolClasses span the classes: 2^4 to 2^18
	// units, in four steps per power of two (classSize), so a buffer is
	// at most a quarter larger than the request it was made for. The
	// units are bytesUnit bytes (4 KiB to 64 MiB) or records (16 to
	// 262,144). A request beyond them is served by a fresh allocation
	// and not kept.
	fetchPoolMinExp  = 4
	fetchPoolClasses = 4*(18-fetchPoolMinExp) + 1
	// fetchPoolMaxBytes bounds the memory the pool keeps, about what a
	// busy cycle's fetches decompress to: what it keeps, the collector
	// counts as live, and grows the heap by twice that (GOGC=100).
	fetchPoolMaxBytes = 32 << 20
)

// recordBytes is the memory of one kgo.Record in a slice.
const recordBytes = int(unsafe.Sizeof(kgo.Record{}))

var (
	_ kgo.PoolDecompressBytes = (*fetchPool)(nil)
	_ kgo.PoolRecords         = (*fetchPool)(nil)
)

// classSize returns the size of a class, in units: class 4e+q, for q in
// 0..3, is 2^(e+fetchPoolMinExp) × (1 + q/4).
func classSize(class int) int {
	return (4 + class%4) << (class/4 + fetchPoolMinExp - 2)
}

// classOf returns the smallest class whose size is at least n units; ok is
// false when n is beyond the largest class.
func classOf(n int) (class int, ok bool) {
	if n <= 1<<fetchPoolMinExp {
		return 0, true
	}
	// 2^e < n <= 2^(e+1); q quarters of 2^e above it reach n, q in 1..4.
	e := bits.Len(uint(n-1)) - 1
	q := (n - 1<<e + 1<<(e-2) - 1) >> (e - 2)
	class = 4*(e-fetchPoolMinExp) + q
	return class, class < fetchPoolClasses
}

// classBelow returns the largest class whose size is at most n units (a
// buffer's capacity), and false when n is below the smallest class.
func classBelow(n int) (class int, ok bool) {
	if n < 1<<fetchPoolMinExp {
		return 0, false
	}
	// 2^e <= n < 2^(e+1); q whole quarters of 2^e above it, q in 0..3.
	e := bits.Len(uint(n)) - 1
	q := (n - 1<<e) >> (e - 2)
	return min(4*(e-fetchPoolMinExp)+q, fetchPoolClasses-1), true
}

// bytesUnit scales the byte classes: class 0 is 4 KiB.
const bytesUnit = 1 << 8

// GetDecompressBytes returns a buffer whose capacity holds src
// decompressed: exactly known for a snappy block, which states its
// length, estimated for the other codecs (kgo grows a buffer that is too
// small, and returns the grown one).
func (p *fetchPool) GetDecompressBytes(src []byte, codec kgo.CompressionCodecType) []byte {
	n := 4 * len(src)
	if codec == kgo.CodecSnappy {
		if l, err := s2.DecodedLen(src); err == nil {
			n = l
		}
	}
	class, ok := classOf((n + bytesUnit - 1) / bytesUnit)
	if !ok {
		return nil
	}
	return lend(p, &p.bytes, class, bytesUnit*classSize(class), 1)
}

// PutDecompressBytes takes back a buffer kgo has zeroed.
func (p *fetchPool) PutDecompressBytes(b []byte) {
	if class, ok := classBelow(cap(b) / bytesUnit); ok {
		keep(p, &p.bytes, class, b, 1)
	}
}

// GetRecords returns a slice of at least n records.
func (p *fetchPool) GetRecords(n int) []kgo.Record {
	class, ok := classOf(n)
	if !ok {
		return make([]kgo.Record, 0, n)
	}
	return lend(p, &p.records, class, classSize(class), recordBytes)
}

// PutRecords takes back a slice of records. kgo zeroed each record as it
// was recycled, so the slice refers to nothing.
func (p *fetchPool) PutRecords(rs []kgo.Record) {
	if class, ok := classBelow(cap(rs)); ok {
		keep(p, &p.records, class, rs, recordBytes)
	}
}

// lend returns a slice of class from free, one of p's lists of slices of
// elemBytes-byte elements, or a new one of size elements when the class
// has none.
func lend[T any](p *fetchPool, free *[fetchPoolClasses][][]T, class, size, elemBytes int) []T {
	p.mu.Lock()
	p.stats.lent++
	if s := pop(&free[class]); s != nil {
		p.held -= cap(s) * elemBytes
		p.stats.reused++
		p.mu.Unlock()
		return s[:0]
	}
	p.mu.Unlock()
	return make([]T, 0, size)
}

// keep files s under class in free, one of p's lists of slices of
// elemBytes-byte elements, unless that would take p past its bound.
func keep[T any](p *fetchPool, free *[fetchPoolClasses][][]T, class int, s []T, elemBytes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.returned++
	if n := cap(s) * elemBytes; p.held+n <= fetchPoolMaxBytes {
		p.held += n
		free[class] = append(free[class], s[:0])
	}
}

// counts returns what the pool did so far.
func (p *fetchPool) counts() fetchPoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}
