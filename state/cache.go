package state

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/cespare/xxhash/v2"
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
//
// Its memory is arenas (arena.go): an entry is a struct without pointers
// in a page of entries, found through a map from its key's hash to its id,
// and its key, value, tiles and tile values are chunks of two arenas. The
// collector thus finds nothing to mark in the cache but its pages, where
// it found several objects per entry. A caller may hold an entry across
// calls that evict it (its used flag is then unset): its id is not given
// to a new entry while a Fetch iterates, and a Fetch is the only caller
// that holds one across another call into the cache.

// defaultReadCacheSize is Options.ReadCacheSize's default. It was 4 MiB:
// in `tessera bench` at 500,000 events, where the profiles outgrow the
// caches, 16 MiB took 17 % less of the hub's CPU (five alternated runs
// each, bench/README.md) for about 250 MiB more peak memory over 24
// tasks, and 64 MiB little more than 16.
const defaultReadCacheSize = 16 << 20

// Accounted overheads, in bytes, of the cache's own structures: an entry
// (its 128-byte struct in a page, and its index slot) and one tile of a window
// entry. Rough, but they keep a cache of many small entries from going far
// past its bound.
const (
	entryOverhead = 160
	tileOverhead  = 32 // unsafe.Sizeof(cachedTile{})
)

// The arenas' shapes: byte chunks of 16 bytes to 64 KiB, tile chunks of 1
// to 2,048 tiles, both in pages of 64 KiB; entries in pages of 1,024.
const (
	byteMinShift, bytePageShift = 4, 16
	tileMinShift, tilePageShift = 0, 11
	entPageShift                = 10
)

// minRepackSlack is the least waste of the arenas (readCache.repack) that
// makes the cache copy its entries into new ones: a few pages per class.
const minRepackSlack = 2 << 20

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
	// Repacks counts the copies of the entries into new arenas
	// (readCache.maybeRepack).
	Repacks int64
	// Bytes and Entries are what the cache holds now.
	Bytes   int64
	Entries int
}

// cachedTile is one tile of a window entry. Its value is n bytes at off in
// the entry's buf (tileValue), the tile values after the key in the
// entry's data chunk.
type cachedTile struct {
	start  int64
	off, n int
	// dirty says the value is not yet in the pending batch.
	dirty bool
}

// cacheEntry is one key-value or window entry. It holds no pointer: its
// bytes are chunks of the cache's arenas.
type cacheEntry struct {
	// data holds the key (the Pebble key of a key-value entry, the key
	// prefix of a window entry), then the value of a key-value entry or
	// the tile values of a window entry (its buf); klen and dlen are the
	// lengths of the key and of all data holds.
	data       chunk
	klen, dlen int
	// absent says a key-value entry's key has no value (a negative
	// entry).
	absent bool
	window bool
	// tiles holds a window entry's ntiles tiles, sorted by start, without
	// duplicates; garbage counts the bytes of buf that no tile refers to
	// any longer (values replaced or deleted).
	//
	// INVARIANT: the bytes of buf that a tile refers to change only in
	// place of that tile's value (putTile, when no Fetch iterates);
	// everything else appends to buf or moves data to a new chunk, and
	// a chunk that a Fetch may read is released only once no Fetch
	// iterates. A Fetch that took tiles and buf at its start therefore
	// reads the values it started with, whatever is written meanwhile.
	tiles   chunk
	ntiles  int
	garbage int
	size    int64 // accounted bytes
	// id is the entry's index in readCache.ents; hash is its key's
	// (cacheHash), next the id of the next entry of the same hash, -1 for
	// none.
	id   int32
	next int32
	hash uint64
	// used says the entry is in the cache: a read made it and it was
	// neither evicted nor dropped since.
	used bool
	ref  bool // read since the CLOCK hand last passed
	// iterating counts the Fetches iterating over tiles: while it is not
	// zero, a write replaces tiles and the changed value rather than
	// changing them in place, so that the iteration goes on over what it
	// started with.
	iterating int
	// dirty says a key-value entry holds a write that neither the pending
	// batch nor the changelog has yet, or a window entry a dirty tile;
	// store indexes its store's name in readCache.stores and plen is the
	// length of its Pebble prefix, for writing it back.
	dirty bool
	plen  int
	store int32
}

// readCache is a DB's read cache. A nil *readCache is a disabled one.
type readCache struct {
	limit int64 // the bound, in accounted bytes
	size  int64
	// repackSlack is how far the arenas may outgrow the accounted bytes
	// before repack copies the entries into new ones.
	repackSlack int64
	bytes       *arena[byte]
	tileArena   *arena[cachedTile]
	// ents holds the entries by id, in pages that never move; ids below
	// n were handed out, and freeIDs lists those free again. The CLOCK
	// hand walks the ids.
	ents    [][]cacheEntry
	n       int32
	freeIDs []int32
	hand    int32
	// index maps a key's hash to the first entry of that hash.
	index   map[uint64]int32
	entries int
	stats   CacheStats
	// filters are the stores' absent-key filters (absent.go); clear
	// drops them with the entries.
	filters filters
	// dirty lists the ids of the entries made dirty since the last flush,
	// in the order they were. An id may be there for an entry written
	// back since, or twice when it was reused: flush skips those.
	dirty []int32
	// listed counts the dirty entries by store, so that a scan of a store
	// with none (the timeline's, never cached) skips the walk; held is
	// their number.
	listed map[string]int
	held   int
	// stores names the stores of the dirty entries, storeIDs the reverse.
	stores   []string
	storeIDs map[string]int32
	// writeBack writes a dirty entry to the pending batch and the
	// changelog (DB.writeBack).
	writeBack func(e *cacheEntry)
	// iterating counts the Fetches under way; while it is not zero the
	// chunks and ids released wait in the later lists.
	iterating              int
	laterBytes, laterTiles []chunk
	laterIDs               []int32
}

func newReadCache(limit int64) *readCache {
	if limit <= 0 {
		return nil
	}
	c := &readCache{
		limit:       limit,
		repackSlack: max(limit/2, minRepackSlack),
		listed:      make(map[string]int),
		storeIDs:    make(map[string]int32),
		filters:     filters{m: make(map[string]*storeFilter)},
	}
	c.reset()
	return c
}

// reset makes the cache empty, with new arenas: a Fetch under way may
// still read the old ones, which the Go heap keeps until it is done.
func (c *readCache) reset() {
	c.bytes = newArena[byte](byteMinShift, bytePageShift)
	c.tileArena = newArena[cachedTile](tileMinShift, tilePageShift)
	c.ents, c.n, c.freeIDs, c.hand = nil, 0, nil, 0
	c.index = make(map[uint64]int32)
	c.entries, c.size = 0, 0
	c.dirty = c.dirty[:0]
	clear(c.listed)
	c.held = 0
	c.laterBytes, c.laterTiles, c.laterIDs = nil, nil, nil
}

// maxEntry is the largest entry the cache keeps: a larger one would evict
// too much for one key.
func (c *readCache) maxEntry() int64 { return c.limit / 8 }

// windowSeed sets the hashes of window entries apart from those of
// key-value entries of the same key.
const windowSeed = 0x9e3779b97f4a7c15

func cacheHash(window bool, key []byte) uint64 {
	h := xxhash.Sum64(key)
	if window {
		h ^= windowSeed
	}
	return h
}

// entry returns the entry of id.
func (c *readCache) entry(id int32) *cacheEntry {
	return &c.ents[id>>entPageShift][id&(1<<entPageShift-1)]
}

// keyOf, valueOf, bufOf and tilesOf return e's key, value (nil when
// absent, never nil when present: Pebble reads an empty value back as
// empty, not as absent), tile values and tiles: slices of the arenas, valid
// until the next change of the cache.
func (c *readCache) keyOf(e *cacheEntry) []byte {
	return c.bytes.slice(e.data)[:e.klen:e.klen]
}

func (c *readCache) valueOf(e *cacheEntry) []byte {
	if e.absent {
		return nil
	}
	return c.bytes.slice(e.data)[e.klen:e.dlen:e.dlen]
}

func (c *readCache) bufOf(e *cacheEntry) []byte {
	return c.bytes.slice(e.data)[e.klen:e.dlen]
}

func (c *readCache) tilesOf(e *cacheEntry) []cachedTile {
	return c.tileArena.slice(e.tiles)[:e.ntiles]
}

// find returns the entry of key, nil if there is none.
func (c *readCache) find(window bool, key []byte) *cacheEntry {
	id, ok := c.index[cacheHash(window, key)]
	if !ok {
		return nil
	}
	for id >= 0 {
		e := c.entry(id)
		if e.window == window && bytes.Equal(c.keyOf(e), key) {
			return e
		}
		id = e.next
	}
	return nil
}

// lookup returns the entry of key as find does, and counts a hit or a
// miss.
func (c *readCache) lookup(window bool, key []byte) *cacheEntry {
	e := c.find(window, key)
	if e == nil {
		c.stats.Misses++
		return nil
	}
	c.stats.Hits++
	e.ref = true
	return e
}

// newEntry returns a new entry of key, not yet in the cache (insert), with
// room for extra bytes after the key.
func (c *readCache) newEntry(window bool, key []byte, extra int) *cacheEntry {
	var id int32
	if l := len(c.freeIDs); l > 0 {
		id = c.freeIDs[l-1]
		c.freeIDs = c.freeIDs[:l-1]
	} else {
		id = c.n
		c.n++
		if int(id>>entPageShift) == len(c.ents) {
			c.ents = append(c.ents, make([]cacheEntry, 1<<entPageShift))
		}
	}
	e := c.entry(id)
	*e = cacheEntry{
		id: id, next: -1, hash: cacheHash(window, key), window: window,
		klen: len(key), dlen: len(key), data: c.bytes.alloc(len(key) + extra), store: -1,
	}
	copy(c.bytes.slice(e.data), key)
	return e
}

// newValue returns a new key-value entry of key holding value, or its
// absence when value is nil.
func (c *readCache) newValue(key, value []byte) *cacheEntry {
	e := c.newEntry(false, key, len(value))
	c.setValue(e, value)
	return e
}

// insert adds e, a new entry, unless it is larger than maxEntry, evicting
// other entries as needed. It returns whether e is in the cache; if not,
// e is gone.
func (c *readCache) insert(e *cacheEntry) bool {
	e.size = c.computeSize(e)
	if e.size > c.maxEntry() {
		c.free(e)
		return false
	}
	c.evictFor(e.size)
	if head, ok := c.index[e.hash]; ok {
		e.next = head
	}
	c.index[e.hash] = e.id
	e.used = true
	c.entries++
	c.size += e.size
	c.maybeRepack()
	return true
}

// resized accounts for a change of e's content, evicting other entries, or
// e itself when it outgrew maxEntry.
func (c *readCache) resized(e *cacheEntry) {
	if !e.used {
		return
	}
	n := c.computeSize(e)
	c.size += n - e.size
	e.size = n
	if n > c.maxEntry() {
		c.remove(e)
		c.stats.Evictions++
		return
	}
	e.ref = true // evictFor must not pick the entry being written
	c.evictFor(0)
	c.maybeRepack()
}

// evictFor evicts entries until need more bytes fit under the bound. The
// CLOCK hand clears the ref bit of an entry read since it last passed and
// evicts one that was not: entries read once (a sweep over every profile)
// leave first, and a hit costs only setting a bit.
func (c *readCache) evictFor(need int64) {
	// Two turns of the hand clear every ref bit and then evict, so the
	// loop ends; the bound on steps keeps a bug from spinning.
	for steps := 2*int64(c.n) + 1; c.size+need > c.limit && c.size > 0 && steps > 0; steps-- {
		if c.hand >= c.n {
			c.hand = 0
		}
		e := c.entry(c.hand)
		c.hand++
		switch {
		case !e.used:
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
	if e.used {
		c.remove(e)
	}
}

// storeID returns the index of store's name in c.stores.
func (c *readCache) storeID(store string) int32 {
	id, ok := c.storeIDs[store]
	if !ok {
		id = int32(len(c.stores))
		c.stores = append(c.stores, store)
		c.storeIDs[store] = id
	}
	return id
}

// markDirty records that e, an entry of store (whose Pebble prefix is
// plen bytes long), holds a write that is not yet written back.
func (c *readCache) markDirty(e *cacheEntry, store string, plen int) {
	if e.dirty {
		return
	}
	e.dirty, e.store, e.plen = true, c.storeID(store), plen
	c.dirty = append(c.dirty, e.id)
	c.listed[store]++
	c.held++
}

// clean writes dirty entry e back and marks it clean.
func (c *readCache) clean(e *cacheEntry) {
	e.dirty = false
	c.listed[c.stores[e.store]]--
	c.held--
	c.writeBack(e)
}

// flush writes back the dirty entries whose keys lie in [lo, hi) (a nil
// hi: no upper bound), or every dirty entry when lo is nil too.
func (c *readCache) flush(lo, hi []byte) {
	all := lo == nil && hi == nil
	kept := c.dirty[:0]
	for _, id := range c.dirty {
		e := c.entry(id)
		if !e.used || !e.dirty {
			continue
		}
		if !all {
			k := c.keyOf(e)
			if bytes.Compare(k, lo) < 0 || hi != nil && bytes.Compare(k, hi) >= 0 {
				kept = append(kept, id)
				continue
			}
		}
		c.clean(e)
	}
	c.dirty = kept
}

// remove drops e from the cache, writing it back first if it is dirty.
// REQUIRES: e is in the cache.
func (c *readCache) remove(e *cacheEntry) {
	if e.dirty {
		c.clean(e)
	}
	if c.index[e.hash] == e.id {
		if e.next < 0 {
			delete(c.index, e.hash)
		} else {
			c.index[e.hash] = e.next
		}
	} else {
		p := c.entry(c.index[e.hash])
		for p.next != e.id {
			p = c.entry(p.next)
		}
		p.next = e.next
	}
	e.used = false
	c.entries--
	c.size -= e.size
	c.free(e)
}

// free gives back e's chunks and id, once no Fetch iterates.
func (c *readCache) free(e *cacheEntry) {
	c.releaseBytes(e.data)
	c.releaseTiles(e.tiles)
	if c.iterating > 0 {
		c.laterIDs = append(c.laterIDs, e.id)
	} else {
		c.freeIDs = append(c.freeIDs, e.id)
	}
	e.data, e.tiles, e.klen, e.dlen, e.ntiles = chunk{}, chunk{}, 0, 0, 0
}

// releaseBytes and releaseTiles give back a chunk that its entry no
// longer uses, once no Fetch iterates.
func (c *readCache) releaseBytes(ch chunk) {
	if c.iterating > 0 {
		c.laterBytes = append(c.laterBytes, ch)
		return
	}
	c.bytes.release(ch)
}

func (c *readCache) releaseTiles(ch chunk) {
	if c.iterating > 0 {
		c.laterTiles = append(c.laterTiles, ch)
		return
	}
	c.tileArena.release(ch)
}

// startIteration and endIteration bracket a Fetch's iteration over e.
func (c *readCache) startIteration(e *cacheEntry) {
	e.iterating++
	c.iterating++
}

func (c *readCache) endIteration(e *cacheEntry) {
	e.iterating--
	c.iterating--
	if c.iterating > 0 {
		return
	}
	for _, ch := range c.laterBytes {
		c.bytes.release(ch)
	}
	for _, ch := range c.laterTiles {
		c.tileArena.release(ch)
	}
	c.freeIDs = append(c.freeIDs, c.laterIDs...)
	c.laterBytes, c.laterTiles, c.laterIDs = c.laterBytes[:0], c.laterTiles[:0], c.laterIDs[:0]
}

// clear drops every entry.
func (c *readCache) clear() {
	if c == nil {
		return
	}
	for id := range c.n {
		e := c.entry(id)
		e.used, e.dirty = false, false // a Fetch or a write may still hold it
	}
	c.filters.drop()
	c.reset()
	c.stats.Clears++
}

// dropPrefix drops the entries whose key begins with prefix: a store's,
// when it stops being cached.
func (c *readCache) dropPrefix(prefix string) {
	p := []byte(prefix)
	for id := range c.n {
		if e := c.entry(id); e.used && bytes.HasPrefix(c.keyOf(e), p) {
			c.remove(e)
		}
	}
}

// maybeRepack copies the entries into new arenas once the pages hold
// repackSlack more bytes than the entries account for. Pages stay with the
// class they were first carved for (arena.go), so a cache whose entries
// change sizes would otherwise keep pages of every size it ever needed;
// the copy costs at most the cache's bound, and frees the waste at once.
// Never while a Fetch iterates: it reads the old chunks.
func (c *readCache) maybeRepack() {
	if c.iterating > 0 || c.bytes.held+c.tileArena.held*tileOverhead <= c.size+c.repackSlack {
		return
	}
	nb := newArena[byte](byteMinShift, bytePageShift)
	nt := newArena[cachedTile](tileMinShift, tilePageShift)
	for id := range c.n {
		e := c.entry(id)
		if !e.used {
			continue
		}
		d := nb.alloc(e.dlen)
		copy(nb.slice(d), c.bytes.slice(e.data)[:e.dlen])
		e.data = d
		t := nt.alloc(e.ntiles)
		copy(nt.slice(t), c.tilesOf(e))
		e.tiles = t
		n := c.computeSize(e)
		c.size += n - e.size
		e.size = n
	}
	c.bytes, c.tileArena = nb, nt
	c.stats.Repacks++
}

func (c *readCache) computeSize(e *cacheEntry) int64 {
	return entryOverhead + int64(e.data.cap) + int64(e.tiles.cap)*tileOverhead
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

// reserve makes room in e's data for need bytes in all, moving it to a
// chunk twice as large when it has not: appends then cost amortised
// constant time. The old chunk keeps its bytes for a Fetch reading them.
func (c *readCache) reserve(e *cacheEntry, need int) {
	if need <= int(e.data.cap) {
		return
	}
	nd := c.bytes.alloc(max(need, 2*int(e.data.cap)))
	copy(c.bytes.slice(nd), c.bytes.slice(e.data)[:e.dlen])
	c.releaseBytes(e.data)
	e.data = nd
}

// appendTile appends value to e's buf and returns the tile of start that
// refers to it.
func (c *readCache) appendTile(e *cacheEntry, start int64, value []byte, dirty bool) cachedTile {
	c.reserve(e, e.dlen+len(value))
	t := cachedTile{start: start, off: e.dlen - e.klen, n: len(value), dirty: dirty}
	copy(c.bytes.slice(e.data)[e.dlen:], value)
	e.dlen += len(value)
	return t
}

// setTiles makes a copy of ts (which may be e's tiles) e's tiles, in a
// chunk of its own. It leaves the old chunk as it was, for a Fetch reading
// it.
func (c *readCache) setTiles(e *cacheEntry, ts []cachedTile) {
	nt := c.tileArena.alloc(len(ts))
	copy(c.tileArena.slice(nt), ts)
	c.releaseTiles(e.tiles)
	e.tiles, e.ntiles = nt, len(ts)
}

// insertTile inserts t at index i of e's tiles.
func (c *readCache) insertTile(e *cacheEntry, i int, t cachedTile) {
	ts := c.tilesOf(e)
	if e.iterating > 0 || e.ntiles+1 > int(e.tiles.cap) {
		nt := c.tileArena.alloc(max(e.ntiles+1, 2*int(e.tiles.cap)))
		s := c.tileArena.slice(nt)
		copy(s, ts[:i])
		s[i] = t
		copy(s[i+1:], ts[i:])
		c.releaseTiles(e.tiles)
		e.tiles = nt
		e.ntiles++
		return
	}
	ts = ts[:e.ntiles+1]
	copy(ts[i+1:], ts[i:e.ntiles])
	ts[i] = t
	e.ntiles++
}

// deleteTiles removes tiles [i, j) of window entry e, their values
// becoming garbage. While a Fetch iterates over e's tiles, it leaves them
// as they are and gives e new ones.
func (c *readCache) deleteTiles(e *cacheEntry, i, j int) {
	ts := c.tilesOf(e)
	for _, t := range ts[i:j] {
		e.garbage += t.n
	}
	if e.iterating > 0 {
		nt := c.tileArena.alloc(len(ts) - (j - i))
		s := c.tileArena.slice(nt)
		copy(s[copy(s, ts[:i]):], ts[j:])
		c.releaseTiles(e.tiles)
		e.tiles, e.ntiles = nt, len(ts)-(j-i)
	} else {
		copy(ts[i:], ts[j:])
		e.ntiles -= j - i
	}
	c.compact(e)
}

// minCompact is the least garbage, in bytes, that makes a write compact a
// window entry's buf: below it, the copy would cost more than the bytes it
// frees.
const minCompact = 256

// compact copies the key and the live values of window entry e into a
// new chunk once garbage is most of its buf. It never writes the old
// chunk, which a Fetch may still be reading; it rewrites the tiles' offsets,
// which a Fetch does not share (putTile and deleteTiles gave e new tiles
// if one iterates).
func (c *readCache) compact(e *cacheEntry) {
	if e.garbage < minCompact || 2*e.garbage < e.dlen-e.klen {
		return
	}
	old := c.bytes.slice(e.data)
	nd := c.bytes.alloc(e.dlen - e.garbage)
	b := c.bytes.slice(nd)
	n := copy(b, old[:e.klen])
	buf := old[e.klen:e.dlen]
	ts := c.tilesOf(e)
	for i := range ts {
		t := &ts[i]
		v := tileValue(buf, *t)
		t.off = n - e.klen
		n += copy(b[n:], v)
	}
	c.releaseBytes(e.data)
	e.data, e.dlen, e.garbage = nd, n, 0
}

// setValue makes value (nil: absent) the value of key-value entry e. The
// chunk is reused when the value fits and the chunk is not much larger.
// No one reads e's value but the caller of View, until its next call.
func (c *readCache) setValue(e *cacheEntry, value []byte) {
	if value == nil {
		e.absent, e.dlen = true, e.klen
		return
	}
	need := e.klen + len(value)
	if int(e.data.cap) < need || int(e.data.cap) > 2*need+64 {
		nd := c.bytes.alloc(need)
		copy(c.bytes.slice(nd), c.keyOf(e))
		c.releaseBytes(e.data)
		e.data = nd
	}
	copy(c.bytes.slice(e.data)[e.klen:], value)
	e.absent, e.dlen = false, need
}

// search returns the index of the first tile of e starting at or after
// start, and whether it starts at start.
func (c *readCache) search(e *cacheEntry, start int64) (int, bool) {
	return slices.BinarySearchFunc(c.tilesOf(e), start, func(t cachedTile, s int64) int {
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
func (c *readCache) putTile(e *cacheEntry, start int64, value []byte, dirty bool) (wasDirty bool) {
	i, found := c.search(e, start)
	if found {
		wasDirty = c.tilesOf(e)[i].dirty
	}
	if value == nil {
		if found {
			c.deleteTiles(e, i, i+1)
		}
		return wasDirty
	}
	// While a Fetch iterates over e's tiles, change a copy: the Fetch
	// goes on over the tiles and values it started with.
	shared := e.iterating > 0
	switch {
	case found && !shared && len(value) <= c.tilesOf(e)[i].n:
		// In place: Window.Get hands out copies, and Fetch's values
		// are only valid during the call.
		t := &c.tilesOf(e)[i]
		copy(c.bufOf(e)[t.off:], value)
		e.garbage += t.n - len(value)
		t.n, t.dirty = len(value), dirty
	case found:
		e.garbage += c.tilesOf(e)[i].n
		t := c.appendTile(e, start, value, dirty)
		if shared {
			c.setTiles(e, c.tilesOf(e))
		}
		c.tilesOf(e)[i] = t
	default:
		c.insertTile(e, i, c.appendTile(e, start, value, dirty))
	}
	c.compact(e)
	return wasDirty
}
