package state

import (
	"encoding/binary"
	"fmt"
)

// Window is a windowed store: values kept per key and time bucket (a tile),
// so that an update touches one tile and a read over a window combines a few.
// Times are Unix milliseconds of the tile's start.
//
// The entry key is uvarint(len(key)) + key + big-endian(start), so the tiles
// of one key are contiguous and in time order, and no key is a prefix of
// another key's entries.
type Window struct {
	kv   KeyValue
	kbuf []byte
}

// Name returns the store's name.
func (w *Window) Name() string { return w.kv.name }

// entryKey returns the store-local key of (key, start).
// INVARIANT: valid until the next call.
func (w *Window) entryKey(key []byte, start int64) []byte {
	w.kbuf = binary.AppendUvarint(w.kbuf[:0], uint64(len(key)))
	w.kbuf = append(w.kbuf, key...)
	return binary.BigEndian.AppendUint64(w.kbuf, uint64(start))
}

func keyPrefix(key []byte) []byte {
	p := binary.AppendUvarint(nil, uint64(len(key)))
	return append(p, key...)
}

// Get returns a copy of the tile of key starting at start, or nil.
func (w *Window) Get(key []byte, start int64) ([]byte, error) {
	return w.kv.Get(w.entryKey(key, start))
}

// Put sets the tile of key starting at start; a nil value deletes it.
func (w *Window) Put(key []byte, start int64, value []byte) error {
	return w.kv.Put(w.entryKey(key, start), value)
}

// Fetch calls fn for each tile of key with from <= start < to, in time order.
func (w *Window) Fetch(key []byte, from, to int64, fn func(start int64, value []byte) error) error {
	p := keyPrefix(key)
	lo := binary.BigEndian.AppendUint64(append([]byte(nil), p...), uint64(from))
	hi := binary.BigEndian.AppendUint64(append([]byte(nil), p...), uint64(to))
	return w.kv.Range(lo, hi, func(k, v []byte) error {
		return fn(int64(binary.BigEndian.Uint64(k[len(p):])), v)
	})
}

// DeleteBefore deletes the tiles of key that start before t, logging a
// tombstone for each, and returns how many it deleted.
func (w *Window) DeleteBefore(key []byte, t int64) (int, error) {
	p := keyPrefix(key)
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
