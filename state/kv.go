package state

import (
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
// the task's uncommitted writes.
func (s *KeyValue) Get(key []byte) ([]byte, error) {
	if s.db.pdb == nil {
		return nil, ErrClosed
	}
	v, err := getFrom(s.reader(), s.key(key))
	if err != nil {
		return nil, fmt.Errorf("getting %q from %s: %w", key, s.name, err)
	}
	return v, nil
}

// Put sets key to value and logs the change. A nil value deletes.
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
	if err := s.db.pending.Set(s.key(key), value, nil); err != nil {
		return fmt.Errorf("putting %q into %s: %w", key, s.name, err)
	}
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
	if err := s.db.pending.Delete(s.key(key), nil); err != nil {
		return fmt.Errorf("deleting %q from %s: %w", key, s.name, err)
	}
	if s.db.logger != nil {
		s.db.logger.LogChange(s.name, key, nil)
	}
	return nil
}

// Range calls fn for each entry with start <= key < end in key order (a nil
// end means no upper bound), stopping at the first error fn returns. The
// slices passed to fn are only valid during the call. Writes made by fn are
// not seen by the running iteration.
func (s *KeyValue) Range(start, end []byte, fn func(key, value []byte) error) error {
	if s.db.pdb == nil {
		return ErrClosed
	}
	lower := append(append([]byte(nil), s.prefix...), start...)
	var upper []byte
	if end != nil {
		upper = append(append([]byte(nil), s.prefix...), end...)
	} else {
		upper = prefixEnd(s.prefix)
	}
	it, err := s.reader().NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("iterating %s: %w", s.name, err)
	}
	n := len(s.prefix)
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("iterating %s: %w", s.name, err)
		}
		if err := fn(it.Key()[n:], v); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("iterating %s: %w", s.name, err)
	}
	return nil
}

// Prefix calls fn for every entry whose key starts with prefix.
func (s *KeyValue) Prefix(prefix []byte, fn func(key, value []byte) error) error {
	return s.Range(prefix, prefixEnd(prefix), fn)
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
