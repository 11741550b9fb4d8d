package features

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/axiomhq/hyperloglog"
)

// HLLPrecision is the precision of count_distinct's HyperLogLog sketches:
// 2^14 registers, at most 16 KB a tile.
const HLLPrecision = 14

// HLLStandardError is the relative standard error of a count_distinct
// estimate once a sketch is involved: 1.04/√2^HLLPrecision ≈ 0.81 %.
var HLLStandardError = 1.04 / math.Sqrt(1<<HLLPrecision)

// HLLErrorBound is four standard errors (≈ 3.25 %): the relative error
// count_distinct estimates stay within but for about one in 16,000. The
// reference test holds every estimate to it.
var HLLErrorBound = 4 * HLLStandardError

// newSketch returns an empty sketch of HLLPrecision, sparse so that a tile
// that has just spilled stays small.
func newSketch() *hyperloglog.Sketch {
	sk, err := hyperloglog.NewSketch(HLLPrecision, true)
	if err != nil {
		panic(err) // HLLPrecision is a valid constant
	}
	return sk
}

// exactLen returns the number of hashes of an exact tile body.
func exactLen(body []byte) (int, error) {
	if len(body)%8 != 0 {
		return 0, fmt.Errorf("count_distinct set of %d bytes: %w", len(body), ErrCorruptTile)
	}
	return len(body) / 8, nil
}

// searchHash returns the index of h in the sorted exact body, or where it
// belongs, and whether it is there.
func searchHash(body []byte, h uint64) (int, bool) {
	n := len(body) / 8
	i := sort.Search(n, func(i int) bool { return binary.BigEndian.Uint64(body[i*8:]) >= h })
	return i, i < n && binary.BigEndian.Uint64(body[i*8:]) == h
}

// applyDistinct appends to dst the tile old (nil when empty) with hash h
// added, spilling to a sketch past bound hashes, and reports whether the
// tile changed.
func applyDistinct(dst, old []byte, h uint64, bound int) ([]byte, bool, error) {
	if old == nil {
		return binary.BigEndian.AppendUint64(append(dst, tagDistinctExact), h), true, nil
	}
	switch old[0] {
	case tagDistinctExact:
		body := old[1:]
		n, err := exactLen(body)
		if err != nil {
			return nil, false, err
		}
		i, found := searchHash(body, h)
		if found {
			return nil, false, nil
		}
		if n+1 > bound {
			sk := newSketch()
			for j := 0; j < n; j++ {
				sk.InsertHash(binary.BigEndian.Uint64(body[j*8:]))
			}
			sk.InsertHash(h)
			return appendSketch(dst, sk)
		}
		dst = append(dst, tagDistinctExact)
		dst = append(dst, body[:i*8]...)
		dst = binary.BigEndian.AppendUint64(dst, h)
		return append(dst, body[i*8:]...), true, nil
	case tagDistinctHLL:
		sk, err := loadSketch(old[1:])
		if err != nil {
			return nil, false, err
		}
		sk.InsertHash(h)
		out, _, err := appendSketch(dst, sk)
		if err != nil {
			return nil, false, err
		}
		return out, !bytes.Equal(out[len(dst):], old), nil
	}
	return nil, false, fmt.Errorf("count_distinct tile tag %#x: %w", old[0], ErrCorruptTile)
}

// mergeDistinct appends to dst the union of tiles a and b.
func mergeDistinct(dst, a, b []byte, bound int) ([]byte, error) {
	if a[0] == tagDistinctExact && b[0] == tagDistinctExact {
		na, err := exactLen(a[1:])
		if err != nil {
			return nil, err
		}
		nb, err := exactLen(b[1:])
		if err != nil {
			return nil, err
		}
		hs := make([]uint64, 0, na+nb)
		for j := 0; j < na; j++ {
			hs = append(hs, binary.BigEndian.Uint64(a[1+j*8:]))
		}
		for j := 0; j < nb; j++ {
			hs = append(hs, binary.BigEndian.Uint64(b[1+j*8:]))
		}
		slices.Sort(hs)
		hs = slices.Compact(hs)
		if len(hs) <= bound {
			dst = append(dst, tagDistinctExact)
			for _, h := range hs {
				dst = binary.BigEndian.AppendUint64(dst, h)
			}
			return dst, nil
		}
		sk := newSketch()
		for _, h := range hs {
			sk.InsertHash(h)
		}
		out, _, err := appendSketch(dst, sk)
		return out, err
	}
	var acc distinctAcc
	if err := acc.add(a); err != nil {
		return nil, err
	}
	if err := acc.add(b); err != nil {
		return nil, err
	}
	out, _, err := appendSketch(dst, acc.sketchAll())
	return out, err
}

func loadSketch(b []byte) (*hyperloglog.Sketch, error) {
	sk := new(hyperloglog.Sketch)
	if err := sk.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("decoding count_distinct sketch: %v: %w", err, ErrCorruptTile)
	}
	return sk, nil
}

func appendSketch(dst []byte, sk *hyperloglog.Sketch) ([]byte, bool, error) {
	out, err := sk.AppendBinary(append(dst, tagDistinctHLL))
	if err != nil {
		return nil, false, fmt.Errorf("encoding count_distinct sketch: %w", err)
	}
	return out, true, nil
}

// distinctAcc combines the count_distinct tiles of a window: the union of
// the exact sets, exact however large, unless a tile is a sketch, in which
// case everything is folded into one sketch and estimated.
type distinctAcc struct {
	hashes []uint64
	sketch *hyperloglog.Sketch
}

func (a *distinctAcc) reset() {
	a.hashes = a.hashes[:0]
	a.sketch = nil
}

func (a *distinctAcc) add(tile []byte) error {
	switch tile[0] {
	case tagDistinctExact:
		n, err := exactLen(tile[1:])
		if err != nil {
			return err
		}
		for j := 0; j < n; j++ {
			a.hashes = append(a.hashes, binary.BigEndian.Uint64(tile[1+j*8:]))
		}
		return nil
	case tagDistinctHLL:
		sk, err := loadSketch(tile[1:])
		if err != nil {
			return err
		}
		if a.sketch == nil {
			a.sketch = sk
			return nil
		}
		if err := a.sketch.Merge(sk); err != nil {
			return fmt.Errorf("merging count_distinct sketches: %v: %w", err, ErrCorruptTile)
		}
		return nil
	}
	return fmt.Errorf("count_distinct tile tag %#x: %w", tile[0], ErrCorruptTile)
}

// sketchAll returns a sketch of everything added.
func (a *distinctAcc) sketchAll() *hyperloglog.Sketch {
	sk := a.sketch
	if sk == nil {
		sk = newSketch()
	}
	for _, h := range a.hashes {
		sk.InsertHash(h)
	}
	return sk
}

// count returns the number of distinct values added: exact without a
// sketch, estimated with one.
func (a *distinctAcc) count() int64 {
	if a.sketch == nil {
		slices.Sort(a.hashes)
		return int64(len(slices.Compact(a.hashes)))
	}
	return int64(a.sketchAll().Estimate())
}
