package features

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tessera-cdp/tessera/state"
)

// Migration is the progress of moving one store's tiles from the first
// layout to the second (doc.go, Store layout): the caller keeps it between
// calls of Migrate.
type Migration struct {
	// from is where the next scan resumes; nil at the start of a pass.
	from []byte
	// checking says the pass reads the committed store to check that no
	// tile of the first layout is left, instead of moving them.
	checking bool
	// Scanned counts the tiles read, in either layout and either pass.
	Scanned int
	// Moved counts the tiles moved from the first layout to the second.
	Moved int
	// Dropped counts the tiles of the first layout deleted without being
	// moved: of a feature no longer defined whose tile the second layout
	// holds too, which cannot be merged without the definition.
	Dropped int
}

// errMigrateStop ends a Migrate scan early.
var errMigrateStop = errors.New("features: migrate slice done")

// legacyTile is a tile of the first layout that Migrate moves.
type legacyTile struct {
	key   []byte // the store key: uvarint(len(profile)) profile suffix
	split int    // where the suffix begins in key
	start int64
	value []byte
}

// Migrate moves the tiles that w holds in the first store layout (a store
// written before the second) to the second, a slice at a time while the
// task runs, and reports whether the store is done: it holds the mark that
// ends the combined reads of both layouts. Each call scans about limit
// tiles. A new store, or a migrated one, is done after a call or two.
//
// Moving a tile folds it into the second layout's tile of the same
// feature and start, which writes made since the upgrade may have made,
// then deletes it: reads, which combine both layouts until the mark,
// give the same values before and after. A pass that moved tiles is
// followed by one over the committed store, which writes the mark only if
// it finds none left: a tile moved in a cycle that was then aborted (and
// its moves discarded) is still there, and committed data gains no tile
// of the first layout, so a clean pass over it, in as many cycles as it
// takes, proves the store clean.
func (s *Set) Migrate(w *state.Window, m *Migration, limit int) (done bool, err error) {
	mixed, err := s.mixedLayouts(w)
	if err != nil || !mixed {
		return err == nil, err
	}
	if !m.checking {
		var found []legacyTile
		found, m.from, err = scanLegacy(w, m.from, limit, m, true)
		if err != nil {
			return false, err
		}
		for _, t := range found {
			if err := s.move(w, t, m); err != nil {
				return false, fmt.Errorf("migrating the features store: moving %q at %d: %w", t.key, t.start, err)
			}
		}
		m.checking = m.from == nil
		return false, nil
	}
	found, next, err := scanLegacy(w.Committed(), m.from, limit, m, false)
	if err != nil {
		return false, err
	}
	if len(found) > 0 {
		// Moves discarded, or not committed yet: move from there on,
		// then check again.
		m.from, m.checking = found[0].key, false
		return false, nil
	}
	if m.from = next; next != nil {
		return false, nil
	}
	if err := w.Put(nil, 0, layoutMark); err != nil {
		return false, fmt.Errorf("migrating the features store: marking it done: %w", err)
	}
	return true, nil
}

// scanLegacy scans w from key from over about limit tiles, whole keys at
// a time, and returns the tiles of the first layout it found (all of them
// when collect, else the first) and the key to resume at, nil at the end
// of the store.
func scanLegacy(w *state.Window, from []byte, limit int, m *Migration, collect bool) (found []legacyTile, next []byte, err error) {
	var last []byte
	n := 0
	err = w.Scan(from, func(key []byte, start int64, value []byte) error {
		if !bytes.Equal(key, last) {
			if n >= limit {
				// Whole keys per call: a key's tiles are read
				// by one scan, which sees all of them.
				next = bytes.Clone(key)
				return errMigrateStop
			}
			last = append(last[:0], key...)
		}
		n++
		split, ok := legacySplit(key)
		if !ok {
			return nil
		}
		found = append(found, legacyTile{bytes.Clone(key), split, start, bytes.Clone(value)})
		if !collect {
			next = nil
			return errMigrateStop
		}
		return nil
	})
	m.Scanned += n
	if err != nil && err != errMigrateStop {
		return nil, nil, fmt.Errorf("migrating the features store: %w", err)
	}
	return found, next, nil
}

// legacySplit returns where the suffix of key, a store key of the first
// layout, begins. It reports false for keys of the second layout, the
// layout mark, and keys that are neither.
func legacySplit(key []byte) (int, bool) {
	n, m := binary.Uvarint(key)
	if m <= 0 || n > uint64(len(key)-m) {
		return 0, false
	}
	split := m + int(n)
	suffix := key[split:]
	// name (at least a byte) 0x00 fingerprint(8)
	if len(suffix) < 10 || suffix[len(suffix)-9] != 0 {
		return 0, false
	}
	return split, true
}

// move folds tile t into the second layout and deletes it.
func (s *Set) move(w *state.Window, t legacyTile, m *Migration) error {
	suffix := t.key[t.split:]
	s.key = append(s.key[:0], t.key[:t.split]...)
	s.keyLen = t.split // as beginKey would: key[:keyLen] is the profile's
	s.key = append(s.key, idOf(suffix)...)
	target := s.key
	old, err := w.Get(target, t.start)
	if err != nil {
		return err
	}
	tile := t.value
	f := s.bySuffix[string(suffix)]
	switch {
	case old == nil:
	case f != nil:
		if tile, err = f.merge(&s.sc, s.tile[:0], old, tile, s.opts.DistinctExact, s.opts.FrequentCap); err != nil {
			return err
		}
		s.tile = tile[:0]
	default:
		tile = nil
		m.Dropped++
	}
	if tile != nil {
		if err := w.Put(target, t.start, tile); err != nil {
			return err
		}
		m.Moved++
	}
	return w.Put(t.key, t.start, nil)
}
