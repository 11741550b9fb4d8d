package state

import (
	"cmp"
	"slices"
	"strings"
)

// The read cache keeps recently read entries of a DB's stores in memory so
// that the hot reads of the processing loop (a profile's feature tiles, its
// record, its identities) do not ask Pebble. Pebble's reads of the pending
// indexed batch are costly here for a reason of their own: every update of
// a tile rewrites it, and an iterator over the batch and the memtable steps
// over all of those versions (bench/README.md, Profiling, item 3).
//
// It is a write-back cache. A write of a value to a key whose entry is
// cached (a key-value entry, or the window entry holding the tile) changes
// the entry only and marks the value dirty; DB.Flush, which the engine
// calls after each poll's records of the task and before it ends a cycle's
// transaction, writes each dirty value to the pending batch and the
// changelog once. So a key written many times in a poll's records (a busy
// profile's record, its current tiles) costs one batch write, one memtable
// insertion and one changelog record, as with Kafka Streams' record
// caches, which flush at each commit. An entry leaving the cache (evicted,
// outgrown, its store no longer cached) is written first; a scan of a
// key-value store writes the dirty entries in its range first, since it
// reads the batch. Every other write goes to the pending batch and the
// changelog at once, and updates the cached entry if there is one: writes
// to keys not cached, and deletions of tiles (which take their tile, and
// its dirty value, out of the entry).
//
// Two kinds of entries share one byte budget and one CLOCK:
//
//   - a key-value entry: the value of one KeyValue key as the task sees it
//     (pending writes included), or its absence (a negative entry);
//   - a window entry: every tile of one Window key, sorted by start, loaded
//     with one scan of the key's prefix, so that a Fetch of any range is
//     served from memory. An entry with no tiles is the window's negative
//     entry.
//
// An entry is created by a read that missed (never by a write: write-only
// keys such as the timeline's would only push the read ones out). A write
// updates the entry when there is one.
//
// INVARIANT: every clean entry equals what a read of the pending batch
// would return for its key, and every dirty one what the read would return
// once the entry is written to the batch. Every write through a store
// handle keeps it so; whatever changes the batch or Pebble otherwise clears
// the cache, dirty entries included: Discard (the batch is dropped, and
// with it the cycle's writes), Restore (it writes Pebble directly), a
// failed Commit, and the use of one store as both a KeyValue and a Window
// (which writes the dirty entries of the store first).
//
// The cache belongs to the task's goroutine like the pending batch; the
// committed views, which other goroutines read, never use it.

// defaultReadCacheSize is Options.ReadCacheSize's default. It was 4 MiB:
// in `tessera bench` at 500,000 events, where the profiles outgrow the
// caches, 16 MiB took 17 % less of the hub's CPU (five alternated runs
// each, bench/README.md) for about 250 MiB more peak memory over 24
// tasks, and 64 MiB little more than 16.
const defaultReadCacheSize = 16 << 20

// Accounted overheads, in bytes, of the cache's own structures: an entry
// (the struct, its map slot and its ring slot) and one tile of a window
// entry (start and slice header). Rough, but they keep a cache of many
// small entries from going far past its bound.
const (
	entryOverhead = 160
	tileOverhead  = 40
)

// CacheStats counts what the read cache of a DB did since it was opened.
type CacheStats struct {
	// Hits counts reads served from memory, Misses those that read Pebble.
	Hits, Misses int64
	// Evictions counts entries dropped to stay within the bound.
	Evictions int64
	// Clears counts the times the whole cache was dropped (Discard,
	// Restore).
	Clears int64
	// Filtered counts the misses that the absent-key filters answered
	// without reading Pebble (absent.go).
	Filtered int64
	// Absorbed counts the writes that replaced a held-back value (of a
	// key or a tile): each saved a batch write and a changelog record.
	Absorbed int64
	// WrittenBack counts the held-back values written to the pending
	// batch and the changelog.
	WrittenBack int64
	// Bytes and Entries are what the cache holds now.
	Bytes   int64
	Entries int
}

// cachedTile is one tile of a window entry. Its value is n bytes at off in
// the entry's buf (tileValue). It holds no pointer, so the garbage
// collector does not walk an entry's tiles, and a tile costs no allocation
// of its own: a profile's feature with a month of daily tiles was 30 value
// allocations and a slice of pointers, and is now two slices, which the
// collector's mark phases visit much faster (BenchmarkReadCacheCollection;
// the mark phases lined up with the latency's peaks, bench/README.md, "4
// December, late morning").
type cachedTile struct {
	start  int64
	off, n int
	// dirty says the value is not yet in the pending batch.
	dirty bool
}

// cacheEntry is one key-value or window entry.
type cacheEntry struct {
	key    string // the Pebble key (key-value) or key prefix (window)
	window bool
	// value is a key-value entry's value, nil when absent.
	value []byte
	// tiles are a window entry's tiles, sorted by start, without
	// duplicates; buf holds their values, and garbage counts the bytes of
	// buf that no tile refers to any longer (values replaced or deleted).
	//
	// INVARIANT: the bytes of buf[:len(buf)] that a tile refers to change
	// only in place of that tile's value (putTile, when no Fetch
	// iterates); everything else appends to buf or makes a new one
	// (compact). A Fetch that took tiles and buf at its start therefore
	// reads the values it started with, whatever is written meanwhile.
	tiles   []cachedTile
	buf     []byte
	garbage int
	size    int64 // accounted bytes
	slot    int   // index in readCache.ring
	ref     bool  // read since the CLOCK hand last passed
	// iterating counts the Fetches iterating over tiles: while it is not
	// zero, a write replaces tiles and the changed value rather than
	// changing them in place, so that the iteration goes on over what it
	// started with.
	iterating int
	// dirty says a key-value entry holds a write that neither the pending
	// batch nor the changelog has yet, or a window entry a dirty tile;
	// store names its store and plen is the length of its Pebble prefix,
	// for writing it back.
	dirty bool
	plen  int
	store string
}

// readCache is a DB's read cache. A nil *readCache is a disabled one.
type readCache struct {
	limit int64 // the bound, in accounted bytes
	size  int64
	kv    map[string]*cacheEntry
	win   map[string]*cacheEntry
	// ring holds every entry at its slot for the CLOCK; free lists the
	// empty slots.
	ring  []*cacheEntry
	free  []int
	hand  int
	stats CacheStats
	// filters are the stores' absent-key filters (absent.go); clear
	// drops them with the entries.
	filters filters
	// dirty lists the entries made dirty since the last flush, in the
	// order they were; an entry written back since has dirty unset.
	dirty []*cacheEntry
	// listed counts the entries of dirty by store, so that a scan of a
	// store with none (the timeline's, never cached) skips the walk.
	listed map[string]int
	// writeBack writes a dirty entry to the pending batch and the
	// changelog, and marks it clean (DB.writeBack).
	writeBack func(e *cacheEntry)
}

func newReadCache(limit int64) *readCache {
	if limit <= 0 {
		return nil
	}
	return &readCache{
		limit:   limit,
		kv:      make(map[string]*cacheEntry),
		win:     make(map[string]*cacheEntry),
		listed:  make(map[string]int),
		filters: filters{m: make(map[string]*storeFilter)},
	}
}

// maxEntry is the largest entry the cache keeps: a larger one would evict
// too much for one key.
func (c *readCache) maxEntry() int64 { return c.limit / 8 }

// lookup returns the entry of key in m and counts a hit or a miss.
func (c *readCache) lookup(m map[string]*cacheEntry, key []byte) *cacheEntry {
	e := m[string(key)]
	if e == nil {
		c.stats.Misses++
		return nil
	}
	c.stats.Hits++
	e.ref = true
	return e
}

// insert adds e (whose key, kind and content are set) unless it is larger
// than maxEntry, evicting other entries as needed. It returns whether e is
// in the cache.
func (c *readCache) insert(e *cacheEntry) bool {
	e.size = e.computeSize()
	if e.size > c.maxEntry() {
		e.slot = -1
		return false
	}
	c.evictFor(e.size)
	if n := len(c.free); n > 0 {
		e.slot = c.free[n-1]
		c.free = c.free[:n-1]
		c.ring[e.slot] = e
	} else {
		e.slot = len(c.ring)
		c.ring = append(c.ring, e)
	}
	if e.window {
		c.win[e.key] = e
	} else {
		c.kv[e.key] = e
	}
	c.size += e.size
	return true
}

// resized accounts for a change of e's content, evicting other entries, or
// e itself when it outgrew maxEntry. An entry not in the cache (a load too
// large to keep) is left alone.
func (c *readCache) resized(e *cacheEntry) {
	if e.slot < 0 {
		return
	}
	n := e.computeSize()
	c.size += n - e.size
	e.size = n
	if n > c.maxEntry() {
		c.remove(e)
		c.stats.Evictions++
		return
	}
	e.ref = true // evictFor must not pick the entry being written
	c.evictFor(0)
}

// evictFor evicts entries until need more bytes fit under the bound. The
// CLOCK hand clears the ref bit of an entry read since it last passed and
// evicts one that was not: entries read once (a sweep over every profile)
// leave first, and a hit costs only setting a bit.
func (c *readCache) evictFor(need int64) {
	// Two turns of the hand clear every ref bit and then evict, so the
	// loop ends; the bound on steps keeps a bug from spinning.
	for steps := 2*len(c.ring) + 1; c.size+need > c.limit && c.size > 0 && steps > 0; steps-- {
		if c.hand >= len(c.ring) {
			c.hand = 0
		}
		e := c.ring[c.hand]
		c.hand++
		switch {
		case e == nil:
		case e.ref:
			e.ref = false
		default:
			c.remove(e)
			c.stats.Evictions++
		}
	}
}

// drop removes e from the cache if it is there.
func (c *readCache) drop(e *cacheEntry) {
	if e.slot >= 0 {
		c.remove(e)
	}
}

// markDirty records that e, an entry of store (whose Pebble prefix is
// plen bytes long), holds a write that is not yet written back.
func (c *readCache) markDirty(e *cacheEntry, store string, plen int) {
	if e.dirty {
		return
	}
	e.dirty, e.store, e.plen = true, store, plen
	c.dirty = append(c.dirty, e)
	c.listed[store]++
}

// flush writes back the dirty entries whose keys lie in [lo, hi) (a nil
// hi: no upper bound), or every dirty entry when lo is nil too.
func (c *readCache) flush(lo, hi []byte) {
	all := lo == nil && hi == nil
	kept := c.dirty[:0]
	for _, e := range c.dirty {
		if e.dirty && !all && (e.key < string(lo) || hi != nil && e.key >= string(hi)) {
			kept = append(kept, e)
			continue
		}
		c.listed[e.store]--
		if e.dirty {
			c.writeBack(e)
		}
	}
	clear(c.dirty[len(kept):])
	c.dirty = kept
}

// remove drops e from the cache, writing it back first if it is dirty.
// REQUIRES: e is in the cache.
func (c *readCache) remove(e *cacheEntry) {
	if e.dirty {
		c.writeBack(e)
	}
	if e.window {
		delete(c.win, e.key)
	} else {
		delete(c.kv, e.key)
	}
	c.ring[e.slot] = nil
	c.free = append(c.free, e.slot)
	c.size -= e.size
	e.slot = -1
}

// clear drops every entry.
func (c *readCache) clear() {
	if c == nil {
		return
	}
	for _, e := range c.ring {
		if e != nil {
			e.slot = -1 // a Fetch or a write may still hold it
			e.dirty = false
		}
	}
	clear(c.dirty)
	c.dirty = c.dirty[:0]
	clear(c.listed)
	clear(c.kv)
	clear(c.win)
	c.filters.drop()
	clear(c.ring)
	c.ring = c.ring[:0]
	c.free = c.free[:0]
	c.hand = 0
	c.size = 0
	c.stats.Clears++
}

// dropPrefix drops the entries whose key begins with prefix: a store's,
// when it stops being cached.
func (c *readCache) dropPrefix(prefix string) {
	for _, e := range c.ring {
		if e != nil && strings.HasPrefix(e.key, prefix) {
			c.remove(e)
		}
	}
}

func (e *cacheEntry) computeSize() int64 {
	return int64(entryOverhead+len(e.key)+cap(e.value)+cap(e.buf)) + int64(len(e.tiles))*tileOverhead
}

// tileValue returns tile t's value in buf, the buf of t's entry (or the
// one a Fetch took with its tiles). The slice's capacity ends with the
// value, so appending to it cannot touch the next one. It is never nil:
// Pebble reads an empty value back as empty, not as absent.
func tileValue(buf []byte, t cachedTile) []byte {
	if t.n == 0 {
		return []byte{}
	}
	return buf[t.off : t.off+t.n : t.off+t.n]
}

// appendTile appends value to e.buf and returns the tile of start that
// refers to it.
func (e *cacheEntry) appendTile(start int64, value []byte, dirty bool) cachedTile {
	t := cachedTile{start: start, off: len(e.buf), n: len(value), dirty: dirty}
	e.buf = append(e.buf, value...)
	return t
}

// deleteTiles removes tiles [i, j) of window entry e, their values
// becoming garbage. While a Fetch iterates over e.tiles, it leaves that
// slice as it is and makes e.tiles a new one.
func (e *cacheEntry) deleteTiles(i, j int) {
	for _, t := range e.tiles[i:j] {
		e.garbage += t.n
	}
	if e.iterating > 0 {
		e.tiles = slices.Concat(e.tiles[:i], e.tiles[j:])
	} else {
		e.tiles = slices.Delete(e.tiles, i, j)
	}
	e.compact()
}

// minCompact is the least garbage, in bytes, that makes a write compact a
// window entry's buf: below it, the copy would cost more than the bytes it
// frees.
const minCompact = 256

// compact copies the live values of window entry e into a new buf once
// garbage is most of the old one. It never writes the old buf, which a
// Fetch may still be reading.
func (e *cacheEntry) compact() {
	if e.garbage < minCompact || 2*e.garbage < len(e.buf) {
		return
	}
	buf := make([]byte, 0, len(e.buf)-e.garbage)
	for i := range e.tiles {
		t := &e.tiles[i]
		v := tileValue(e.buf, *t)
		t.off = len(buf)
		buf = append(buf, v...)
	}
	e.buf, e.garbage = buf, 0
}

// setValue makes value (nil: absent) the value of key-value entry e.
func (e *cacheEntry) setValue(value []byte) {
	if value == nil {
		e.value = nil
		return
	}
	// Reused in place when it fits: Get hands out copies, never e.value.
	e.value = copyInto(e.value, value)
}

// copyInto returns a copy of value in buf when buf has room and is not
// much larger, else in a new slice. The result is never nil: Pebble reads
// an empty value back as empty, not as absent.
func copyInto(buf, value []byte) []byte {
	if buf == nil || cap(buf) < len(value) || cap(buf) > 2*len(value)+64 {
		buf = make([]byte, 0, len(value))
	}
	return append(buf[:0], value...)
}

// search returns the index of the first tile of e starting at or after
// start, and whether it starts at start.
func (e *cacheEntry) search(start int64) (int, bool) {
	return slices.BinarySearchFunc(e.tiles, start, func(t cachedTile, s int64) int {
		return startCmp(t.start, s)
	})
}

// startCmp compares tile starts as Pebble orders their keys: as big-endian
// unsigned integers, so a negative start sorts after every other one. No
// caller stores one (starts are aligned event times), but the cache must
// order tiles as a scan of Pebble would.
func startCmp(a, b int64) int {
	return cmp.Compare(uint64(a), uint64(b))
}

// putTile sets the tile at start of window entry e to a copy of value,
// dirty or not, or deletes it when value is nil. It reports whether the
// tile it replaced was dirty.
func (e *cacheEntry) putTile(start int64, value []byte, dirty bool) (wasDirty bool) {
	i, found := e.search(start)
	if found {
		wasDirty = e.tiles[i].dirty
	}
	if value == nil {
		if found {
			e.deleteTiles(i, i+1)
		}
		return wasDirty
	}
	// While a Fetch iterates over e.tiles, change a copy: the Fetch
	// goes on over the tiles and values it started with.
	shared := e.iterating > 0
	if shared {
		e.tiles = slices.Clone(e.tiles)
	}
	switch {
	case found && !shared && len(value) <= e.tiles[i].n:
		// In place: Window.Get hands out copies, and Fetch's values
		// are only valid during the call.
		t := &e.tiles[i]
		copy(e.buf[t.off:], value)
		e.garbage += t.n - len(value)
		t.n, t.dirty = len(value), dirty
	case found:
		e.garbage += e.tiles[i].n
		e.tiles[i] = e.appendTile(start, value, dirty)
	default:
		e.tiles = slices.Insert(e.tiles, i, e.appendTile(start, value, dirty))
	}
	e.compact()
	return wasDirty
}
