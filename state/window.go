package state

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Window is a windowed store: values kept per key and time bucket (a tile),
// so that an update touches one tile and a read over a window combines a few.
// Times are Unix milliseconds of the tile's start.
//
// The entry key is uvarint(len(key)) + key + big-endian(start), so the tiles
// of one key are contiguous and in time order, and no key is a prefix of
// another key's entries.
//
// The read cache keeps all the tiles of a key once one of them was read
// (cache.go), so that Get, Fetch and DeleteBefore of a recently read key
// open no Pebble iterator.
type Window struct {
	kv KeyValue
	// kbuf holds the Pebble key of the last tile addressed: the store's
	// prefix, the key's prefix, then 8 bytes of start.
	kbuf []byte
	// hbuf holds the upper bound of the scan that loads a key's tiles, and
	// iopts that scan's options (Pebble copies them).
	hbuf  []byte
	iopts pebble.IterOptions
}

// Name returns the store's name.
func (w *Window) Name() string { return w.kv.name }

// tileKey returns the Pebble key of (key, start); its first len-8 bytes
// are the Pebble prefix of key's tiles.
// INVARIANT: valid until the next call.
func (w *Window) tileKey(key []byte, start int64) []byte {
	w.kbuf = append(w.kbuf[:0], w.kv.prefix...)
	w.kbuf = binary.AppendUvarint(w.kbuf, uint64(len(key)))
	w.kbuf = append(w.kbuf, key...)
	return binary.BigEndian.AppendUint64(w.kbuf, uint64(start))
}

// Get returns a copy of the tile of key starting at start, or nil. The
// caller owns the copy.
func (w *Window) Get(key []byte, start int64) ([]byte, error) {
	if w.kv.db.pdb == nil {
		return nil, ErrClosed
	}
	full := w.tileKey(key, start)
	c := w.kv.cache()
	if c == nil {
		v, err := getFrom(w.kv.reader(), full)
		if err != nil {
			return nil, fmt.Errorf("getting %q from %s: %w", full[len(w.kv.prefix):], w.kv.name, err)
		}
		return v, nil
	}
	e, err := w.tiles(c, full[:len(full)-8])
	if err != nil {
		return nil, err
	}
	if e == nil {
		v, err := getFrom(w.kv.reader(), full)
		if err != nil {
			return nil, fmt.Errorf("getting %q from %s: %w", full[len(w.kv.prefix):], w.kv.name, err)
		}
		return v, nil
	}
	if i, ok := c.search(e, start); ok {
		return bytes.Clone(tileValue(c.bufOf(e), c.tilesOf(e)[i])), nil
	}
	return nil, nil
}

// Put sets the tile of key starting at start; a nil value deletes it. Put
// does not keep value.
func (w *Window) Put(key []byte, start int64, value []byte) error {
	full := w.tileKey(key, start)
	prefix := full[:len(full)-8]
	var e *cacheEntry
	c := w.kv.cache()
	if c != nil {
		e = c.find(true, prefix)
	}
	// present: the key had tiles, so its prefix is in the store's
	// absent-key filter already (see KeyValue.holdBack).
	present := e != nil && e.ntiles > 0
	if e != nil && value != nil {
		// Held back until DB.Flush (cache.go). A committed view has
		// no cache, so e is nil for it.
		if w.kv.db.pdb == nil {
			return ErrClosed
		}
		if c.putTile(e, start, value, true) {
			c.stats.Absorbed++
		}
		c.markDirty(e, w.kv.name, len(w.kv.prefix))
		c.resized(e)
	} else {
		if err := w.kv.write(full, value); err != nil {
			return err
		}
		if e != nil {
			c.putTile(e, start, nil, false)
			c.resized(e)
		}
	}
	if value != nil && !present {
		w.kv.written(prefix)
	}
	return nil
}

// write sets the Pebble key full to value (nil: deletes it) in the pending
// batch and logs the change; it leaves the read cache to the caller.
func (s *KeyValue) write(full, value []byte) error {
	if s.db.pdb == nil {
		return ErrClosed
	}
	if s.committed {
		return errReadOnly
	}
	key := full[len(s.prefix):]
	if value == nil {
		if err := s.db.pending.Delete(full, nil); err != nil {
			return fmt.Errorf("deleting %q from %s: %w", key, s.name, err)
		}
	} else if err := s.db.pending.Set(full, value, nil); err != nil {
		return fmt.Errorf("putting %q into %s: %w", key, s.name, err)
	}
	if s.db.logger != nil {
		s.db.logger.LogChange(s.name, key, value)
	}
	return nil
}

// Fetch calls fn for each tile of key with from <= start < to, in time
// order. The value passed to fn is only valid during the call and must not
// be modified. Writes made by fn are not seen by the running Fetch.
func (w *Window) Fetch(key []byte, from, to int64, fn func(start int64, value []byte) error) error {
	if w.kv.db.pdb == nil {
		return ErrClosed
	}
	c := w.kv.cache()
	if c == nil {
		return w.fetch(key, from, to, fn)
	}
	full := w.tileKey(key, from)
	e, err := w.tiles(c, full[:len(full)-8])
	if err != nil {
		return err
	}
	if e == nil {
		return w.fetch(key, from, to, fn)
	}
	i, _ := c.search(e, from)
	// INVARIANT: while iterating is not zero, writes to e replace its
	// tiles rather than changing them, leave the bytes of its buf alone
	// (cacheEntry.tiles), and the chunks released wait: so these slices
	// stay as they are.
	tiles, buf := c.tilesOf(e), c.bufOf(e)
	c.startIteration(e)
	defer c.endIteration(e)
	for ; i < len(tiles) && startCmp(tiles[i].start, to) < 0; i++ {
		if err := fn(tiles[i].start, tileValue(buf, tiles[i])); err != nil {
			return err
		}
	}
	return nil
}

// fetch is Fetch without the read cache: one Pebble iterator.
func (w *Window) fetch(key []byte, from, to int64, fn func(start int64, value []byte) error) error {
	// The bounds are local: a committed view may be used on several
	// goroutines, and fn may Fetch again.
	b := make([]byte, 0, 2*(binary.MaxVarintLen64+len(key)+8))
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	p := len(b)
	b = binary.BigEndian.AppendUint64(b, uint64(from))
	lo := b[:len(b):len(b)]
	b = append(b, b[:p]...)
	hi := binary.BigEndian.AppendUint64(b, uint64(to))[len(lo):]
	return w.kv.Range(lo, hi, func(k, v []byte) error {
		return fn(int64(binary.BigEndian.Uint64(k[p:])), v)
	})
}

// tiles returns the cache entry of the tiles under the Pebble key prefix
// prefix, loading them with one scan of the pending batch on a miss. It
// returns nil when they are too many to keep (maxEntry): the caller then
// reads Pebble, since no write of theirs is held back.
func (w *Window) tiles(c *readCache, prefix []byte) (*cacheEntry, error) {
	if e := c.lookup(true, prefix); e != nil {
		return e, nil
	}
	if c.filters.of(w.kv.name, true, w.kv.prefix).absent(prefix) {
		c.filters.absents++
		e := c.newEntry(true, prefix, 0)
		if !c.insert(e) {
			return nil, nil
		}
		return e, nil
	}
	w.hbuf = appendPrefixEnd(w.hbuf[:0], prefix)
	w.iopts = pebble.IterOptions{LowerBound: prefix, UpperBound: w.hbuf}
	it, err := w.kv.db.pending.NewIter(&w.iopts)
	if err != nil {
		return nil, fmt.Errorf("iterating %s: %w", w.kv.name, err)
	}
	e := c.newEntry(true, prefix, 0)
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err == nil && len(it.Key()) != len(prefix)+8 {
			err = fmt.Errorf("tile key %q is not a key and a start", it.Key()[len(w.kv.prefix):])
		}
		if err != nil {
			it.Close()
			c.free(e)
			return nil, fmt.Errorf("iterating %s: %w", w.kv.name, err)
		}
		if int64(e.dlen) > c.maxEntry() {
			break // too large: insert gives it up
		}
		c.insertTile(e, e.ntiles, c.appendTile(e, int64(binary.BigEndian.Uint64(it.Key()[len(prefix):])), v, false))
	}
	if err := it.Close(); err != nil {
		c.free(e)
		return nil, fmt.Errorf("iterating %s: %w", w.kv.name, err)
	}
	if int64(e.dlen) > c.maxEntry() {
		c.free(e)
		return nil, nil
	}
	if !c.insert(e) {
		return nil, nil
	}
	return e, nil
}

// DeleteBefore deletes the tiles of key that start before t, logging a
// tombstone for each, and returns how many it deleted.
func (w *Window) DeleteBefore(key []byte, t int64) (int, error) {
	if w.kv.db.pdb == nil {
		return 0, ErrClosed
	}
	c := w.kv.cache()
	if c == nil {
		return w.deleteBefore(key, t)
	}
	full := w.tileKey(key, t)
	e, err := w.tiles(c, full[:len(full)-8])
	if err != nil {
		return 0, err
	}
	if e == nil {
		return w.deleteBefore(key, t)
	}
	n, _ := c.search(e, t)
	ts := c.tilesOf(e)
	for i := range n {
		// The deletion goes to the batch; a held-back value of the
		// tile must never follow it there.
		ts[i].dirty = false
	}
	for _, tile := range ts[:n] {
		binary.BigEndian.PutUint64(full[len(full)-8:], uint64(tile.start))
		if err := w.kv.write(full, nil); err != nil {
			// Some deletes reached the batch, so the entry no
			// longer matches it.
			c.drop(e)
			return 0, fmt.Errorf("expiring tiles of %q: %w", key, err)
		}
	}
	if n > 0 {
		c.deleteTiles(e, 0, n)
		c.resized(e)
	}
	return n, nil
}

// deleteBefore is DeleteBefore without the read cache.
func (w *Window) deleteBefore(key []byte, t int64) (int, error) {
	p := binary.AppendUvarint(nil, uint64(len(key)))
	p = append(p, key...)
	hi := binary.BigEndian.AppendUint64(append([]byte(nil), p...), uint64(t))
	var doomed [][]byte
	err := w.kv.Range(p, hi, func(k, _ []byte) error {
		doomed = append(doomed, append([]byte(nil), k...))
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range doomed {
		if err := w.kv.Delete(k); err != nil {
			return 0, fmt.Errorf("expiring tiles of %q: %w", key, err)
		}
	}
	return len(doomed), nil
}
