package state

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/cockroachdb/pebble/v2"
)

// Absent-key filters: a Bloom filter per store of a task that says which
// keys the store surely does not hold, so that reading such a key costs no
// Pebble lookup.
//
// Nearly all of a task's reads that miss the read cache are of keys that
// do not exist: in `tessera bench --mode throughput --events 100000`, every
// one of 100,000 dedupe reads (a new messageId), all 59,039 identity misses,
// 30,484 of 30,560 profile misses and 189,806 of 190,401 loads of a key's
// tiles (a feature a new customer has not used yet). Each was a Pebble Get
// or iterator, whose memtable seeks and, for a Get, per-level lookups cost
// as much for nothing as for something.
//
// A store's filter holds every key (for a window store, the Pebble prefix
// of every window key) that the store held when the filter was built, and
// every key written since. It is never wrong when it says absent: a Bloom
// filter has no false negatives, and
//
// INVARIANT: a filter in use (storeFilter.ready) contains every key of its
// store that the task's pending batch can read. A build scans the
// committed data from an iterator opened right after a Commit, when the
// pending batch is empty, so it sees every key; every write through a
// handle while a filter is ready or building adds its key to both
// (KeyValue.Put, Window.Put; deletes add nothing); and every path that
// writes around the handles (a restore) drops the filters with the read
// cache (readCache.clear), which also abandons the builds.
//
// Builds run on their own goroutine, so that the task never stops to scan
// a large store: a store's first read asks for a filter, the next Commit
// starts its build, and until the build is done the store's reads go to
// Pebble as they would without one. A store's deleted keys stay in its
// filter and cost only a needless lookup; to keep that waste bounded (the
// dedupe store deletes every messageId once its window has passed), a
// filter is built again once more keys were added to it than it was built
// from.
//
// The filters are the task goroutine's, like the read cache; committed
// views do not use them, and a store read both as a KeyValue and as a
// Window has none.

// absentFilter is a chain of Bloom filters of growing capacity: a key is
// added to the last one, and may be present if any says so. A full filter
// is followed by one of twice its capacity rather than rebuilt.
type absentFilter struct {
	filters []*bloom.BloomFilter
	// capacity is the last filter's, and room how many more keys it
	// takes at its false positive rate.
	capacity, room uint
	// n counts the keys added.
	n uint
}

const (
	// absentFalsePositive is each filter's false positive rate: the
	// share of absent keys that still cost a lookup.
	absentFalsePositive = 0.01
)

// absentMinCapacity is the capacity of a filter built on an empty or small
// store (about 120 KiB at 1 %), and the number of keys added that always
// waits before a rebuild. A variable so that tests can make rebuilds
// frequent.
var absentMinCapacity uint = 100_000

func newAbsentFilter(capacity uint) *absentFilter {
	f := &absentFilter{}
	f.grow(capacity)
	return f
}

// grow appends a filter of the given capacity.
func (f *absentFilter) grow(capacity uint) {
	f.filters = append(f.filters, bloom.NewWithEstimates(capacity, absentFalsePositive))
	f.capacity, f.room = capacity, capacity
}

// add records that key may be present.
func (f *absentFilter) add(key []byte) {
	if f.room == 0 {
		f.grow(2 * f.capacity)
	}
	f.filters[len(f.filters)-1].Add(key)
	f.room--
	f.n++
}

// absent reports whether key is surely not present.
func (f *absentFilter) absent(key []byte) bool {
	for _, b := range f.filters {
		if b.Test(key) {
			return false
		}
	}
	return true
}

// storeFilter is one store's filter and its build.
type storeFilter struct {
	// window says the store is a Window: its filter holds the Pebble
	// prefixes of window keys, not whole Pebble keys.
	window bool
	prefix []byte // the store's Pebble prefix
	// ready is the filter in use, nil until the first build is done.
	ready *absentFilter
	// building is the build in flight, if any.
	building *filterBuild
	// built is how many keys ready was built from, added how many were
	// added to it since.
	built, added uint
	// due asks for a build at the next Commit.
	due bool
}

// filterBuild is a build in flight: a goroutine scanning a store.
type filterBuild struct {
	// side holds the keys written while the scan runs, which its
	// iterator does not see; the task goroutine's.
	side *absentFilter
	// stop abandons the scan (the filters were dropped).
	stop atomic.Bool
	// done receives the scanned filter, or nil when the scan failed or
	// stopped; it has room for it, so the goroutine never blocks.
	done chan *scanned
}

// scanned is what a build's scan produced.
type scanned struct {
	f    *absentFilter
	keys uint
}

// filters are the absent-key filters of a DB, by store name.
type filters struct {
	m map[string]*storeFilter
	// builds counts the build goroutines running, which Close waits for:
	// each holds a Pebble iterator.
	builds sync.WaitGroup
	// absents counts the reads the filters answered (CacheStats).
	absents int64
}

// of returns the filter of store name, asking for it to be built if it is
// new.
func (fs *filters) of(name string, window bool, prefix []byte) *storeFilter {
	sf := fs.m[name]
	if sf == nil {
		sf = &storeFilter{window: window, prefix: prefix, due: true}
		fs.m[name] = sf
	}
	return sf
}

// drop abandons the builds and forgets the filters.
func (fs *filters) drop() {
	for _, sf := range fs.m {
		if sf.building != nil {
			sf.building.stop.Store(true)
		}
	}
	clear(fs.m)
}

// forget drops the filter of store name.
func (fs *filters) forget(name string) {
	if sf := fs.m[name]; sf != nil && sf.building != nil {
		sf.building.stop.Store(true)
	}
	delete(fs.m, name)
}

// start begins the builds that are due, over the committed data of db. It
// runs right after a Commit: the pending batch is empty, so the committed
// data is everything the stores hold.
func (fs *filters) start(db *pebble.DB) {
	for _, sf := range fs.m {
		if !sf.due || sf.building != nil {
			continue
		}
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: sf.prefix, UpperBound: prefixEnd(sf.prefix)})
		if err != nil {
			continue // still due: the next Commit tries again
		}
		sf.due = false
		// Sized for what the store held at the last build plus what
		// was added since: a guess at its keys, so the scan rarely
		// chains filters.
		capacity := max(absentMinCapacity, sf.built+sf.added)
		b := &filterBuild{side: newAbsentFilter(absentMinCapacity), done: make(chan *scanned, 1)}
		sf.building = b
		fs.builds.Add(1)
		go func() {
			defer fs.builds.Done()
			b.done <- scan(it, sf.window, len(sf.prefix), capacity, &b.stop)
		}()
	}
}

// scan builds a filter of the keys it iterates (of the prefixes of window
// keys, when window) and closes it; nil when stopped or failed.
func scan(it *pebble.Iterator, window bool, prefixLen int, capacity uint, stop *atomic.Bool) *scanned {
	f := newAbsentFilter(capacity)
	var last []byte
	stopped := false
	for valid := it.First(); valid; valid = it.Next() {
		if f.n%4096 == 0 && stop.Load() {
			stopped = true
			break
		}
		k := it.Key()
		if window {
			if len(k) < prefixLen+8 {
				continue // not a tile; Window.tiles reports it when read
			}
			k = k[:len(k)-8]
			if string(k) == string(last) {
				continue // the same key's next tile
			}
			last = append(last[:0], k...)
		}
		f.add(k)
	}
	if err := it.Close(); err != nil || stopped {
		return nil
	}
	return &scanned{f: f, keys: f.n}
}

// filter returns the filter in use, first taking the result of a build
// that has finished; nil when there is none yet.
func (sf *storeFilter) filter() *absentFilter {
	if b := sf.building; b != nil {
		select {
		case s := <-b.done:
			sf.building = nil
			if s == nil {
				sf.due = true
				break
			}
			// The scanned filter followed by the keys written
			// during the scan; new keys go to the latter's last
			// filter.
			f := s.f
			f.filters = append(f.filters, b.side.filters...)
			f.capacity, f.room = b.side.capacity, b.side.room
			sf.ready, sf.built, sf.added = f, s.keys, b.side.n
			// A rebuild asked for during the scan is this one.
			sf.due = false
		default:
		}
	}
	return sf.ready
}

// absent reports whether key (for a window store, a window key's Pebble
// prefix) is surely not in the store.
func (sf *storeFilter) absent(key []byte) bool {
	f := sf.filter()
	return f != nil && f.absent(key)
}

// add records a key written to the store, and asks for a rebuild once the
// filter has taken more keys than it was built from.
func (sf *storeFilter) add(key []byte) {
	if f := sf.filter(); f != nil {
		f.add(key)
		sf.added++
		if sf.added > max(sf.built, absentMinCapacity) {
			sf.due = true
		}
	}
	if b := sf.building; b != nil {
		b.side.add(key)
	}
}

// String describes the filter, for test failures.
func (sf *storeFilter) String() string {
	return fmt.Sprintf("filter{ready %v, building %v, built %d, added %d, due %v}", sf.ready != nil, sf.building != nil, sf.built, sf.added, sf.due)
}
