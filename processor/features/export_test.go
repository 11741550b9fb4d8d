package features

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/tessera-cdp/tessera/state"
)

// ToFirstLayout rewrites the tiles of s's features in w as a version
// before the second store layout wrote them, and deletes the layout mark:
// a store as an upgrade finds it.
func ToFirstLayout(s *Set, w *state.Window) error {
	type tile struct {
		key   []byte
		start int64
		value []byte
	}
	var tiles []tile
	err := w.Scan(nil, func(key []byte, start int64, value []byte) error {
		tiles = append(tiles, tile{bytes.Clone(key), start, bytes.Clone(value)})
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range tiles {
		if len(t.key) == 0 {
			if err := w.Put(nil, 0, nil); err != nil {
				return err
			}
			continue
		}
		n, m := binary.Uvarint(t.key)
		split := m + int(n)
		i := indexOfID(s.features, t.key[split:])
		if i < 0 {
			return fmt.Errorf("no feature has the id of key %q", t.key)
		}
		legacy := append(bytes.Clone(t.key[:split]), s.features[i].suffix...)
		if err := w.Put(legacy, t.start, t.value); err != nil {
			return err
		}
		if err := w.Put(t.key, t.start, nil); err != nil {
			return err
		}
	}
	return nil
}

func indexOfID(fs []*feature, id []byte) int {
	for i, f := range fs {
		if bytes.Equal(f.id, id) {
			return i
		}
	}
	return -1
}
