package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestWindowEntryTilesMatchAMap runs random tile writes and deletions on
// one window entry against a map, with and without a Fetch iterating
// (cacheEntry.iterating), and checks after each step that the entry holds
// the map's tiles in order, that its garbage counts exactly the bytes of
// buf no tile refers to, and that a snapshot of tiles and buf taken while
// iterating (as Fetch takes it) still reads what it read when taken.
// Writes to a second entry in the same arenas take whatever chunks are
// released, so a chunk given back while the snapshot reads it would show.
func TestWindowEntryTilesMatchAMap(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			c := newReadCache(1 << 30)
			e := c.newEntry(true, []byte("key"), 0)
			other := c.newEntry(true, []byte("other"), 0)
			model := map[int64][]byte{}
			type snapshot struct {
				tiles []cachedTile
				buf   []byte
				want  [][]byte
			}
			var snap *snapshot
			for step := range 600 {
				if snap == nil && rng.IntN(20) == 0 {
					snap = &snapshot{tiles: c.tilesOf(e), buf: c.bufOf(e)}
					for _, tl := range snap.tiles {
						snap.want = append(snap.want, bytes.Clone(tileValue(snap.buf, tl)))
					}
					c.startIteration(e)
				} else if snap != nil && rng.IntN(10) == 0 {
					c.endIteration(e)
					snap = nil
				}
				start := int64(rng.IntN(24)) * 86400
				var v []byte
				switch rng.IntN(6) {
				case 0: // a deletion
				case 1:
					v = []byte{}
				case 2:
					v = bytes.Repeat([]byte{byte('a' + step%26)}, 50+rng.IntN(400))
				default:
					v = fmt.Appendf(nil, "%d", rng.IntN(1<<rng.IntN(30)))
				}
				c.putTile(e, start, v, rng.IntN(2) == 0)
				c.putTile(other, start, bytes.Repeat([]byte{'z'}, rng.IntN(500)), false)
				if v == nil {
					delete(model, start)
				} else {
					model[start] = v
				}

				starts := make([]int64, 0, len(model))
				for s := range model {
					starts = append(starts, s)
				}
				slices.Sort(starts)
				live := 0
				tiles, buf := c.tilesOf(e), c.bufOf(e)
				if len(tiles) != len(starts) {
					t.Fatalf("step %d: %d tiles, model %d", step, len(tiles), len(starts))
				}
				if !bytes.Equal(c.keyOf(e), []byte("key")) {
					t.Fatalf("step %d: key %q", step, c.keyOf(e))
				}
				for i, tl := range tiles {
					got := tileValue(buf, tl)
					if tl.start != starts[i] || !bytes.Equal(got, model[tl.start]) || got == nil {
						t.Fatalf("step %d: tile %d is %d=%q, model %d=%q", step, i, tl.start, got, starts[i], model[starts[i]])
					}
					live += tl.n
				}
				if e.garbage != len(buf)-live || e.garbage < 0 {
					t.Fatalf("step %d: garbage %d, buf %d, live %d", step, e.garbage, len(buf), live)
				}
				if e.garbage >= minCompact && 2*e.garbage >= len(buf) {
					t.Fatalf("step %d: garbage %d of a %d-byte buf was not compacted", step, e.garbage, len(buf))
				}
				if snap != nil {
					for i, tl := range snap.tiles {
						if got := tileValue(snap.buf, tl); !bytes.Equal(got, snap.want[i]) {
							t.Fatalf("step %d: a Fetch's tile %d changed under it: %q, was %q", step, i, got, snap.want[i])
						}
					}
				}
			}
		})
	}
}
