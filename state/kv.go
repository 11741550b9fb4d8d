package state

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// KeyValue is a key-value store of a task. Keys and values are opaque bytes;
// codecs live above the engine.
type KeyValue struct {
	db     *DB
	name   string
	prefix []byte
	kbuf   []byte // reused to build prefixed keys; see INVARIANT on key.
	// committed makes reads skip the pending writes and refuses writes:
	// a view that other goroutines may use while the task runs.
	committed bool
	// uncached keeps the handle's reads and writes away from the read
	// cache: NoCache, or the store also opened as the other kind (mixed).
	uncached bool
	// mixed says the store is also opened as the other kind of store,
	// whose writes this handle would not see: it has no read cache and no
	// absent-key filter.
	mixed bool
	// bounds holds Range's iterator bounds while ranging is false; a Range
	// inside a Range's fn allocates its own, since the running iterator
	// still reads them.
	bounds  []byte
	ranging bool
	iopts   pebble.IterOptions // see scan
}

// reader is what both a Pebble DB (committed data) and the pending indexed
// batch (committed data plus the cycle's writes) offer for reads.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func (s *KeyValue) reader() reader {
	if s.committed {
		return s.db.pdb
	}
	return s.db.pending
}

// cache returns the read cache for this handle: nil for a committed view
// (other goroutines read those), when the DB has none, or when the store
// is not cached.
func (s *KeyValue) cache() *readCache {
	c := s.db.cache
	if c == nil || s.committed || s.uncached {
		return nil
	}
	return c
}

// filters returns the DB's absent-key filters for this handle (absent.go):
// nil for a committed view, when the DB has no read cache, or when the
// store is mixed. A NoCache store has a filter: its keys are each read
// about once, and nearly all of those reads find nothing.
func (s *KeyValue) filters() *filters {
	c := s.db.cache
	if c == nil || s.committed || s.mixed {
		return nil
	}
	return &c.filters
}

// written adds k, a key (or for a window store a key's prefix) just
// written, to the store's filter, if it has one.
func (s *KeyValue) written(k []byte) {
	if fs := s.filters(); fs != nil {
		if sf := fs.m[s.name]; sf != nil {
			sf.add(k)
		}
	}
}

// errReadOnly is returned by writes to a committed view.
var errReadOnly = errors.New("state: committed views are read-only")

// Name returns the store's name.
func (s *KeyValue) Name() string { return s.name }

// key returns the Pebble key of key.
// INVARIANT: the result is only valid until the next call; Pebble copies keys
// into its batch, so reusing the buffer saves an allocation per access.
func (s *KeyValue) key(key []byte) []byte {
	s.kbuf = append(append(s.kbuf[:0], s.prefix...), key...)
	return s.kbuf
}

// Get returns a copy of the value of key, or nil when there is none. It sees
// the task's uncommitted writes. The caller owns the copy.
func (s *KeyValue) Get(key []byte) ([]byte, error) {
	v, shared, err := s.read(key)
	if shared {
		return bytes.Clone(v), err
	}
	return v, err
}

// View returns the value of key as Get does, but without a copy when the
// read cache holds it: the slice is the cache's. The caller must neither
// modify nor keep it, and must be done with it before its next call into
// the DB, which may write or drop the entry. It saves the copy of a
// value that is compared or decoded at once.
func (s *KeyValue) View(key []byte) ([]byte, error) {
	v, _, err := s.read(key)
	return v, err
}

// read returns the value of key for Get and View; shared says it is the
// read cache's slice, which Get copies.
func (s *KeyValue) read(key []byte) (v []byte, shared bool, err error) {
	if s.db.pdb == nil {
		return nil, false, ErrClosed
	}
	k := s.key(key)
	c := s.cache()
	if c != nil {
		if e := c.lookup(false, k); e != nil {
			return c.valueOf(e), true, nil
		}
	}
	if fs := s.filters(); fs != nil && fs.of(s.name, false, s.prefix).absent(k) {
		fs.absents++
		// Cached as absent, though the filter answers as fast: the
		// key is often written next (a new profile, a new
		// identifier), and with an entry that write waits in the
		// cache, where the key's next writes of the poll fold into it.
		if c != nil {
			c.insert(c.newValue(k, nil))
		}
		return nil, false, nil
	}
	v, err = getFrom(s.reader(), k)
	if err != nil {
		return nil, false, fmt.Errorf("getting %q from %s: %w", key, s.name, err)
	}
	if c != nil {
		c.insert(c.newValue(k, v)) // a copy: v is the caller's
	}
	return v, false, nil
}

// Has reports whether key is present, seeing the task's uncommitted
// writes as Get does. Unlike Get it makes no read-cache entry, copies no
// value and asks for no absent-key filter: it is for a store whose keys
// are written far more than read, such as a timeline, where entries would
// push out the keys that are read and a filter's builds would scan the
// whole store. A key's cache entry, if it has one, answers: it holds the
// writes held back.
func (s *KeyValue) Has(key []byte) (bool, error) {
	if s.db.pdb == nil {
		return false, ErrClosed
	}
	k := s.key(key)
	if c := s.cache(); c != nil {
		if e := c.find(false, k); e != nil {
			return !e.absent, nil
		}
	}
	_, closer, err := s.reader().Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up %q in %s: %w", key, s.name, err)
	}
	return true, closer.Close()
}

// Put sets key to value and logs the change. A nil value deletes. Put does
// not keep value.
func (s *KeyValue) Put(key, value []byte) error {
	if value == nil {
		return s.Delete(key)
	}
	if s.db.pdb == nil {
		return ErrClosed
	}
	if s.committed {
		return errReadOnly
	}
	k := s.key(key)
	if s.holdBack(k, value) {
		return nil
	}
	if err := s.db.pending.Set(k, value, nil); err != nil {
		return fmt.Errorf("putting %q into %s: %w", key, s.name, err)
	}
	// holdBack found no entry of k: the key may be new to the store's
	// absent-key filter.
	s.written(k)
	if s.db.logger != nil {
		s.db.logger.LogChange(s.name, key, value)
	}
	return nil
}

// Delete removes key and logs a tombstone.
func (s *KeyValue) Delete(key []byte) error {
	if s.db.pdb == nil {
		return ErrClosed
	}
	if s.committed {
		return errReadOnly
	}
	k := s.key(key)
	if s.holdBack(k, nil) {
		return nil
	}
	if err := s.db.pending.Delete(k, nil); err != nil {
		return fmt.Errorf("deleting %q from %s: %w", key, s.name, err)
	}
	if s.db.logger != nil {
		s.db.logger.LogChange(s.name, key, nil)
	}
	return nil
}

// NoCache keeps the store out of its DB's read cache from now on, for a
// store whose keys are each read about once, such as a set of message ids
// checked for duplicates: there an entry would cost a copy and a map
// insertion per key and serve no read. It holds for every handle of the
// store in the DB.
func (s *KeyValue) NoCache() { s.stopCaching() }

// stopCaching keeps this handle's store out of the read cache and drops
// its entries. A handle of the other kind that the DB makes later starts
// uncached (DB.replaceStore).
func (s *KeyValue) stopCaching() {
	if s.uncached {
		return
	}
	s.uncached = true
	if c := s.db.cache; c != nil {
		c.dropPrefix(string(s.prefix))
	}
}

// holdBack makes value (nil: deleted) the value of the Pebble key k in its
// cache entry, if k has one, leaving the write to the pending batch and
// the changelog to DB.Flush, which writes the entry back (cache.go). It
// reports whether it held the write back.
func (s *KeyValue) holdBack(k, value []byte) bool {
	c := s.cache()
	if c == nil {
		return false
	}
	e := c.find(false, k)
	if e == nil {
		return false
	}
	if e.absent && value != nil {
		// A key the entry held as present is in the store's
		// absent-key filter already, since every key the task can
		// read is (absent.go); one it held absent may not be.
		s.written(k)
	}
	if e.dirty {
		c.stats.Absorbed++
	}
	c.markDirty(e, s.name, len(s.prefix))
	c.setValue(e, value)
	c.resized(e)
	return true
}

// Range calls fn for each entry with start <= key < end in key order (a nil
// end means no upper bound), stopping at the first error fn returns. The
// slices passed to fn are only valid during the call and must not be
// modified. Writes made by fn are not seen by the running iteration. Range
// reads Pebble (the pending batch) whether or not the keys are cached:
// writes reach the batch either way.
func (s *KeyValue) Range(start, end []byte, fn func(key, value []byte) error) error {
	return s.scan(start, end, end == nil, false, fn)
}

// Prefix calls fn for every entry whose key starts with prefix, like Range.
func (s *KeyValue) Prefix(prefix []byte, fn func(key, value []byte) error) error {
	return s.scan(prefix, nil, false, true, fn)
}

// scan iterates from start to end, or to the end of the store (toStoreEnd),
// or over every key with prefix start (prefixed).
func (s *KeyValue) scan(start, end []byte, toStoreEnd, prefixed bool, fn func(key, value []byte) error) error {
	if s.db.pdb == nil {
		return ErrClosed
	}
	var bounds []byte
	own := !s.ranging && !s.committed
	if own {
		// Pebble reads the bounds until the iterator closes, so a scan
		// inside fn allocates its own. Committed views always do: they
		// may be used on several goroutines (a view each, but better
		// safe).
		bounds = s.bounds[:0]
		s.ranging = true
		defer func() { s.ranging = false }()
	}
	bounds = append(append(bounds, s.prefix...), start...)
	n := len(bounds)
	switch {
	case prefixed:
		bounds = appendPrefixEnd(bounds, bounds)
	case toStoreEnd:
		bounds = appendPrefixEnd(bounds, s.prefix)
	default:
		bounds = append(append(bounds, s.prefix...), end...)
	}
	if own {
		s.bounds = bounds
	}
	lower, upper := bounds[:n:n], bounds[n:]
	if len(upper) == 0 {
		upper = nil // no key is past the prefix: no upper bound
	}
	if c := s.cache(); c != nil && c.listed[s.name] > 0 {
		// The scan reads the batch, which lacks the dirty entries.
		c.flush(lower, upper)
	}
	// Pebble copies the options (not the bounds), so the handle's serve
	// nested scans too, and save an allocation per scan.
	opts := &s.iopts
	if s.committed {
		opts = new(pebble.IterOptions)
	}
	*opts = pebble.IterOptions{LowerBound: lower, UpperBound: upper}
	it, err := s.reader().NewIter(opts)
	if err != nil {
		return fmt.Errorf("iterating %s: %w", s.name, err)
	}
	k := len(s.prefix)
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("iterating %s: %w", s.name, err)
		}
		if err := fn(it.Key()[k:], v); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("iterating %s: %w", s.name, err)
	}
	return nil
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := appendPrefixEnd(nil, p)
	if len(end) == 0 {
		return nil
	}
	return end
}

// appendPrefixEnd appends to dst the smallest key greater than every key
// with prefix p, or nothing when there is none (p is all 0xff).
func appendPrefixEnd(dst, p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xff {
			dst = append(dst, p[:i+1]...)
			dst[len(dst)-1]++
			return dst
		}
	}
	return dst
}
