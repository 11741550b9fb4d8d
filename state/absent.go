package state

import (
	"fmt"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/cockroachdb/pebble/v2"
)

// absentFilter says which window keys of a store surely have no tiles.
//
// A read cache's misses are nearly all reads of window keys that have no
// tiles: in `tessera bench --mode throughput --events 100000`, 189,806 of
// 190,401 loads of a key's tiles found none (a feature a new customer has
// not used yet). Each such load was a Pebble iterator, whose memtable seek
// costs as much for nothing as for something. An absentFilter answers
// "no tiles" for most of them without Pebble.
//
// The filter holds the Pebble prefix of every window key that has, or
// ever had since the filter was built, a tile in the task's DB: the
// committed data (scanned when the filter is built) and the pending
// writes (added by Window.Put). It is never wrong when it says absent: a
// Bloom filter has no false negatives, and
//
// INVARIANT: every path that writes a tile while the filter exists adds
// its prefix (Window.Put; DeleteBefore only deletes), and every path that
// writes tiles around the store's handle (a restore) drops the filter
// with the read cache (readCache.clear), so the next read builds it again
// from what Pebble holds.
//
// Whatever clears the read cache (a restore, Discard after an aborted
// cycle) drops the filter too, and the next read of a window key scans
// the store's keys to build it again: a cost per abort, which is rare. A
// prefix whose tiles were all deleted stays in the filter and costs only
// a needless scan. The filter is the task goroutine's, like the read
// cache; committed views do not use it.
type absentFilter struct {
	// filters are Bloom filters of growing capacity: a prefix is added to
	// the last one, and may be present if any says so. A full filter is
	// followed by one of twice its capacity rather than rebuilt, so the
	// filter never rescans the store while it grows.
	filters []*bloom.BloomFilter
	// capacity is the last filter's, and room how many more prefixes it
	// takes at its false positive rate.
	capacity, room uint
}

const (
	// absentFalsePositive is each filter's false positive rate: the
	// share of absent prefixes that still cost a scan.
	absentFalsePositive = 0.01
	// absentMinCapacity is the capacity of a filter built on an empty or
	// small store (about 120 KiB at 1 %).
	absentMinCapacity = 100_000
)

// newAbsentFilter builds the filter of the window store prefixed by prefix
// from what r holds: one scan of the store's keys.
func newAbsentFilter(r reader, prefix []byte) (*absentFilter, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("scanning %q for its key filter: %w", prefix, err)
	}
	f := &absentFilter{}
	f.grow(absentMinCapacity)
	var last []byte
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) < len(prefix)+8 {
			continue // not a tile; Window.tiles reports it when read
		}
		p := k[:len(k)-8]
		if string(p) == string(last) {
			continue // the same key's next tile
		}
		last = append(last[:0], p...)
		f.add(p)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("scanning %q for its key filter: %w", prefix, err)
	}
	return f, nil
}

// grow appends a filter of the given capacity.
func (f *absentFilter) grow(capacity uint) {
	f.filters = append(f.filters, bloom.NewWithEstimates(capacity, absentFalsePositive))
	f.capacity, f.room = capacity, capacity
}

// add records that the window key of Pebble prefix p has tiles.
func (f *absentFilter) add(p []byte) {
	if f.room == 0 {
		f.grow(2 * f.capacity)
	}
	f.filters[len(f.filters)-1].Add(p)
	f.room--
}

// absent reports whether the window key of Pebble prefix p surely has no
// tiles.
func (f *absentFilter) absent(p []byte) bool {
	for _, b := range f.filters {
		if b.Test(p) {
			return false
		}
	}
	return true
}
