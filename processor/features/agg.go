package features

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// aggKind is an aggregation.
type aggKind uint8

const (
	aggCount aggKind = iota + 1
	aggSum
	aggMin
	aggMax
	aggAvg
	aggCountDistinct
	aggFirst
	aggLast
	aggMostFrequent
)

var aggNames = map[string]aggKind{
	"count": aggCount, "sum": aggSum, "min": aggMin, "max": aggMax, "avg": aggAvg,
	"count_distinct": aggCountDistinct, "first": aggFirst, "last": aggLast,
	"most_frequent": aggMostFrequent,
}

// numeric reports whether the aggregation takes numbers.
func (k aggKind) numeric() bool {
	return k == aggSum || k == aggMin || k == aggMax || k == aggAvg
}

// Tile tags: the first byte of every tile, one per encoding, so a tile is
// never decoded as another aggregation's. A new encoding takes a new tag.
const (
	tagCount         byte = 0x10
	tagSum           byte = 0x11
	tagMin           byte = 0x12
	tagMax           byte = 0x13
	tagAvg           byte = 0x14
	tagFirst         byte = 0x15
	tagLast          byte = 0x16
	tagMostFrequent  byte = 0x17
	tagDistinctExact byte = 0x18
	tagDistinctHLL   byte = 0x19
)

// input is what one event contributes to a feature.
type input struct {
	ts    int64   // event time, Unix ms
	x     float64 // numeric aggregations
	canon []byte  // first, last, most_frequent: the canonical value
	hash  uint64  // count_distinct: the hash of the canonical value
}

// scratch holds the buffers tile operations reuse.
type scratch struct {
	entries, others []mfEntry
}

// apply appends to dst tile old (nil when empty) with in folded in, and
// reports whether it changed; when it did not, the result is nil and
// nothing need be written.
func (f *feature) apply(sc *scratch, dst, old []byte, in *input, distinctBound, frequentCap int) ([]byte, bool, error) {
	if old != nil && len(old) == 0 {
		return nil, false, fmt.Errorf("empty tile: %w", ErrCorruptTile)
	}
	switch f.agg {
	case aggCount:
		var n uint64
		if old != nil {
			var err error
			if n, err = decodeCount(old); err != nil {
				return nil, false, err
			}
		}
		return binary.AppendUvarint(append(dst, tagCount), n+1), true, nil
	case aggSum, aggMin, aggMax:
		tag := floatTag(f.agg)
		x := in.x
		if old != nil {
			o, err := decodeFloat(old, tag)
			if err != nil {
				return nil, false, err
			}
			switch f.agg {
			case aggSum:
				x += o
			case aggMin:
				x = min(x, o)
			case aggMax:
				x = max(x, o)
			}
			if math.Float64bits(x) == math.Float64bits(o) {
				return nil, false, nil
			}
		}
		return binary.LittleEndian.AppendUint64(append(dst, tag), math.Float64bits(x)), true, nil
	case aggAvg:
		var s float64
		var n uint64
		if old != nil {
			var err error
			if s, n, err = decodeAvg(old); err != nil {
				return nil, false, err
			}
		}
		return appendAvg(dst, s+in.x, n+1), true, nil
	case aggFirst, aggLast:
		tag := tagFirst
		if f.agg == aggLast {
			tag = tagLast
		}
		if old != nil {
			ts, canon, err := decodeEdge(old, tag)
			if err != nil {
				return nil, false, err
			}
			c := cmp.Compare(in.ts, ts)
			if c == 0 {
				c = bytes.Compare(in.canon, canon)
			}
			if (f.agg == aggFirst && c >= 0) || (f.agg == aggLast && c <= 0) {
				return nil, false, nil
			}
		}
		return append(binary.AppendVarint(append(dst, tag), in.ts), in.canon...), true, nil
	case aggMostFrequent:
		return applyFrequent(sc, dst, old, in.canon, frequentCap)
	case aggCountDistinct:
		return applyDistinct(dst, old, in.hash, distinctBound)
	}
	return nil, false, fmt.Errorf("aggregation %d has no tile", f.agg)
}

// merge appends to dst the tile that holds both a and b, two tiles of the
// same feature and start (Merge, Import).
func (f *feature) merge(sc *scratch, dst, a, b []byte, distinctBound, frequentCap int) ([]byte, error) {
	if len(a) == 0 || len(b) == 0 {
		return nil, fmt.Errorf("empty tile: %w", ErrCorruptTile)
	}
	switch f.agg {
	case aggCount:
		na, err := decodeCount(a)
		if err != nil {
			return nil, err
		}
		nb, err := decodeCount(b)
		if err != nil {
			return nil, err
		}
		return binary.AppendUvarint(append(dst, tagCount), na+nb), nil
	case aggSum, aggMin, aggMax:
		tag := floatTag(f.agg)
		xa, err := decodeFloat(a, tag)
		if err != nil {
			return nil, err
		}
		xb, err := decodeFloat(b, tag)
		if err != nil {
			return nil, err
		}
		x := xa + xb
		switch f.agg {
		case aggMin:
			x = min(xa, xb)
		case aggMax:
			x = max(xa, xb)
		}
		return binary.LittleEndian.AppendUint64(append(dst, tag), math.Float64bits(x)), nil
	case aggAvg:
		sa, na, err := decodeAvg(a)
		if err != nil {
			return nil, err
		}
		sb, nb, err := decodeAvg(b)
		if err != nil {
			return nil, err
		}
		return appendAvg(dst, sa+sb, na+nb), nil
	case aggFirst, aggLast:
		tag := tagFirst
		if f.agg == aggLast {
			tag = tagLast
		}
		ta, ca, err := decodeEdge(a, tag)
		if err != nil {
			return nil, err
		}
		tb, cb, err := decodeEdge(b, tag)
		if err != nil {
			return nil, err
		}
		c := cmp.Compare(tb, ta)
		if c == 0 {
			c = bytes.Compare(cb, ca)
		}
		if (f.agg == aggFirst && c < 0) || (f.agg == aggLast && c > 0) {
			return append(dst, b...), nil
		}
		return append(dst, a...), nil
	case aggMostFrequent:
		return mergeFrequent(sc, dst, a, b, frequentCap)
	case aggCountDistinct:
		return mergeDistinct(dst, a, b, distinctBound)
	}
	return nil, fmt.Errorf("aggregation %d has no tile", f.agg)
}

// floatTag returns the tag of sum, min and max tiles, which are one float64.
func floatTag(k aggKind) byte {
	switch k {
	case aggMin:
		return tagMin
	case aggMax:
		return tagMax
	}
	return tagSum
}

func decodeCount(t []byte) (uint64, error) {
	if t[0] != tagCount {
		return 0, fmt.Errorf("count tile tag %#x: %w", t[0], ErrCorruptTile)
	}
	n, k := binary.Uvarint(t[1:])
	if k <= 0 || 1+k != len(t) {
		return 0, fmt.Errorf("count tile of %d bytes: %w", len(t), ErrCorruptTile)
	}
	return n, nil
}

func decodeFloat(t []byte, tag byte) (float64, error) {
	if t[0] != tag || len(t) != 9 {
		return 0, fmt.Errorf("tile tag %#x, %d bytes, want tag %#x and 9: %w", t[0], len(t), tag, ErrCorruptTile)
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(t[1:])), nil
}

func appendAvg(dst []byte, sum float64, n uint64) []byte {
	dst = binary.LittleEndian.AppendUint64(append(dst, tagAvg), math.Float64bits(sum))
	return binary.AppendUvarint(dst, n)
}

func decodeAvg(t []byte) (float64, uint64, error) {
	if t[0] != tagAvg || len(t) < 10 {
		return 0, 0, fmt.Errorf("avg tile tag %#x, %d bytes: %w", t[0], len(t), ErrCorruptTile)
	}
	n, k := binary.Uvarint(t[9:])
	if k <= 0 || 9+k != len(t) {
		return 0, 0, fmt.Errorf("avg tile of %d bytes: %w", len(t), ErrCorruptTile)
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(t[1:])), n, nil
}

// decodeEdge decodes a first or last tile: the event time and the
// canonical value, which aliases t.
func decodeEdge(t []byte, tag byte) (int64, []byte, error) {
	if t[0] != tag {
		return 0, nil, fmt.Errorf("tile tag %#x, want %#x: %w", t[0], tag, ErrCorruptTile)
	}
	ts, k := binary.Varint(t[1:])
	if k <= 0 || 1+k >= len(t) {
		return 0, nil, fmt.Errorf("first/last tile of %d bytes: %w", len(t), ErrCorruptTile)
	}
	return ts, t[1+k:], nil
}

// mfEntry is a value of a most_frequent tile and its count.
type mfEntry struct {
	count uint64
	value []byte // canonical; aliases the tile it was decoded from
}

// decodeFrequent appends t's entries to into and returns them with the
// tile's decrement total (the bound on how low its counts may be).
func decodeFrequent(into []mfEntry, t []byte) ([]mfEntry, uint64, error) {
	if t[0] != tagMostFrequent {
		return nil, 0, fmt.Errorf("most_frequent tile tag %#x: %w", t[0], ErrCorruptTile)
	}
	p := t[1:]
	dec, k := binary.Uvarint(p)
	if k <= 0 {
		return nil, 0, fmt.Errorf("most_frequent tile header: %w", ErrCorruptTile)
	}
	p = p[k:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)) {
		return nil, 0, fmt.Errorf("most_frequent tile header: %w", ErrCorruptTile)
	}
	p = p[k:]
	for i := uint64(0); i < n; i++ {
		c, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, 0, fmt.Errorf("most_frequent entry %d: %w", i, ErrCorruptTile)
		}
		p = p[k:]
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return nil, 0, fmt.Errorf("most_frequent entry %d: %w", i, ErrCorruptTile)
		}
		into = append(into, mfEntry{count: c, value: p[k : k+int(l)]})
		p = p[k+int(l):]
	}
	if len(p) != 0 {
		return nil, 0, fmt.Errorf("most_frequent tile: %d trailing bytes: %w", len(p), ErrCorruptTile)
	}
	return into, dec, nil
}

func appendFrequent(dst []byte, dec uint64, es []mfEntry) []byte {
	dst = binary.AppendUvarint(append(dst, tagMostFrequent), dec)
	dst = binary.AppendUvarint(dst, uint64(len(es)))
	for _, e := range es {
		dst = binary.AppendUvarint(dst, e.count)
		dst = binary.AppendUvarint(dst, uint64(len(e.value)))
		dst = append(dst, e.value...)
	}
	return dst
}

// applyFrequent counts v in a Misra–Gries summary of at most limit values:
// a value not in a full summary decrements every count instead of being
// added, which keeps each count within dec of the truth.
func applyFrequent(sc *scratch, dst, old, v []byte, limit int) ([]byte, bool, error) {
	es := sc.entries[:0]
	var dec uint64
	if old != nil {
		var err error
		if es, dec, err = decodeFrequent(es, old); err != nil {
			return nil, false, err
		}
	}
	found := false
	for i := range es {
		if bytes.Equal(es[i].value, v) {
			es[i].count++
			found = true
			break
		}
	}
	switch {
	case found:
	case len(es) < limit:
		es = append(es, mfEntry{count: 1, value: v})
	default:
		dec++
		kept := es[:0]
		for _, e := range es {
			if e.count > 1 {
				e.count--
				kept = append(kept, e)
			}
		}
		es = kept
	}
	sc.entries = es[:0]
	return appendFrequent(dst, dec, es), true, nil
}

// mergeFrequent merges two Misra–Gries summaries: counts add, and if more
// than limit values remain, the (limit+1)-th largest count is taken from
// every count, which keeps the error bound additive.
func mergeFrequent(sc *scratch, dst, a, b []byte, limit int) ([]byte, error) {
	merged, da, err := decodeFrequent(sc.entries[:0], a)
	if err != nil {
		return nil, err
	}
	others, db, err := decodeFrequent(sc.others[:0], b)
	if err != nil {
		return nil, err
	}
	for _, e := range others {
		i := slices.IndexFunc(merged, func(m mfEntry) bool { return bytes.Equal(m.value, e.value) })
		if i >= 0 {
			merged[i].count += e.count
		} else {
			merged = append(merged, e)
		}
	}
	dec := da + db
	if len(merged) > limit {
		slices.SortFunc(merged, func(x, y mfEntry) int {
			if c := cmp.Compare(y.count, x.count); c != 0 {
				return c
			}
			return bytes.Compare(x.value, y.value)
		})
		cut := merged[limit].count
		dec += cut
		kept := merged[:0]
		for _, e := range merged {
			if e.count > cut {
				e.count -= cut
				kept = append(kept, e)
			}
		}
		merged = kept
	}
	sc.entries, sc.others = merged[:0], others[:0]
	return appendFrequent(dst, dec, merged), nil
}

// acc combines the tiles of one feature's window for Values.
type acc struct {
	n        uint64
	x        float64        // sum, min, max, avg's sum
	has      bool           // min, max, first, last: a tile was added
	ts       int64          // first, last
	canon    []byte         // first, last: a copy of the best value
	freq     map[string]int // most_frequent: value → index in counts
	counts   []uint64
	distinct distinctAcc
	entries  []mfEntry
	key      []byte // Values' key buffer
}

func (a *acc) reset() {
	a.n, a.x, a.has, a.ts = 0, 0, false, 0
	a.canon = a.canon[:0]
	clear(a.freq)
	a.counts = a.counts[:0]
	a.distinct.reset()
}

// add folds one tile of f into a. The tile is only valid during the call.
func (a *acc) add(f *feature, t []byte) error {
	if len(t) == 0 {
		return fmt.Errorf("empty tile: %w", ErrCorruptTile)
	}
	switch f.agg {
	case aggCount:
		n, err := decodeCount(t)
		if err != nil {
			return err
		}
		a.n += n
	case aggSum, aggMin, aggMax:
		x, err := decodeFloat(t, floatTag(f.agg))
		if err != nil {
			return err
		}
		switch {
		case f.agg == aggSum:
			a.x += x
		case !a.has:
			a.x = x
		case f.agg == aggMin:
			a.x = min(a.x, x)
		default:
			a.x = max(a.x, x)
		}
		a.has = true
	case aggAvg:
		s, n, err := decodeAvg(t)
		if err != nil {
			return err
		}
		a.x += s
		a.n += n
	case aggFirst, aggLast:
		tag := tagFirst
		if f.agg == aggLast {
			tag = tagLast
		}
		ts, canon, err := decodeEdge(t, tag)
		if err != nil {
			return err
		}
		c := 0
		if a.has {
			if c = cmp.Compare(ts, a.ts); c == 0 {
				c = bytes.Compare(canon, a.canon)
			}
		}
		if !a.has || (f.agg == aggFirst && c < 0) || (f.agg == aggLast && c > 0) {
			a.has, a.ts, a.canon = true, ts, append(a.canon[:0], canon...)
		}
	case aggMostFrequent:
		es, _, err := decodeFrequent(a.entries[:0], t)
		if err != nil {
			return err
		}
		if a.freq == nil {
			a.freq = make(map[string]int)
		}
		for _, e := range es {
			// A look-up by string(bytes) does not allocate; only a value
			// seen for the first time costs its key.
			if i, ok := a.freq[string(e.value)]; ok {
				a.counts[i] += e.count
			} else {
				a.freq[string(e.value)] = len(a.counts)
				a.counts = append(a.counts, e.count)
			}
		}
		a.entries = es[:0]
	case aggCountDistinct:
		return a.distinct.add(t)
	default:
		return fmt.Errorf("aggregation %d has no tile", f.agg)
	}
	return nil
}

// value returns f's value from the tiles added (Values documents the types).
func (a *acc) value(f *feature) (any, error) {
	switch f.agg {
	case aggCount:
		return int64(a.n), nil
	case aggSum:
		return a.x, nil
	case aggMin, aggMax:
		if !a.has {
			return nil, nil
		}
		return a.x, nil
	case aggAvg:
		if a.n == 0 {
			return nil, nil
		}
		return a.x / float64(a.n), nil
	case aggFirst, aggLast:
		if !a.has {
			return nil, nil
		}
		return decodeCanonical(a.canon)
	case aggMostFrequent:
		var best string
		var bestN uint64
		for v, i := range a.freq {
			if n := a.counts[i]; n > bestN || (n == bestN && v < best) {
				best, bestN = v, n
			}
		}
		if bestN == 0 {
			return nil, nil
		}
		return decodeCanonical([]byte(best))
	case aggCountDistinct:
		return a.distinct.count(), nil
	}
	return nil, fmt.Errorf("aggregation %d has no value", f.agg)
}
