package predict

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
)

// Histogram counts customers by their model inputs, so that the fit costs
// one likelihood term per distinct input rather than per customer, and so
// that the histograms of many tasks merge into the population's. It keeps
// three counts:
//
//   - (frequency, recency days, age days) for BG/NBD;
//   - (frequency, mean spend in cents) of repeat customers for Gamma-Gamma;
//   - total spend in cents for RFM's monetary quintiles (recency and
//     frequency quintiles come from the first).
//
// Ages grow with time: every entry is as of the histogram's AsOf day, and
// Advance moves them all forward at once, so a task need not touch each
// profile every day. A task removes a profile's old Customer and adds its new
// one when a purchase arrives, both as of AsOf.
//
// The zero Histogram is empty and as of 1970-01-01. A Histogram is not safe
// for concurrent use.
type Histogram struct {
	asOf     Day
	n        int64
	cells    map[cell]int64
	spends   map[spendCell]int64
	monetary map[int64]int64
}

type cell struct{ x, recency, age int32 }

type spendCell struct {
	x     int32
	cents int64
}

// ErrNotInHistogram is returned by Remove when the histogram does not hold
// the customer.
var ErrNotInHistogram = errors.New("predict: customer not in histogram")

// NewHistogram returns an empty histogram as of asOf.
func NewHistogram(asOf Day) *Histogram { return &Histogram{asOf: asOf} }

// AsOf returns the day the histogram's ages are counted to.
func (h *Histogram) AsOf() Day { return h.asOf }

// Customers returns the number of customers in the histogram.
func (h *Histogram) Customers() int { return int(h.n) }

// Advance moves the histogram's as-of day forward to asOf, adding the days
// passed to every customer's age. A customer's purchases between the two days
// must be applied separately (Remove, then Add).
func (h *Histogram) Advance(asOf Day) error {
	if err := h.checkAdvance(asOf); err != nil {
		return err
	}
	if asOf == h.asOf {
		return nil
	}
	d := int32(asOf - h.asOf)
	h.asOf = asOf
	if len(h.cells) == 0 {
		return nil
	}
	old := h.cells
	h.cells = make(map[cell]int64, len(old))
	for k, v := range old {
		k.age += d
		h.cells[k] = v
	}
	return nil
}

// checkAdvance reports whether h can be advanced to asOf with every age
// staying within maxDays.
func (h *Histogram) checkAdvance(asOf Day) error {
	d := int64(asOf) - int64(h.asOf)
	if d < 0 {
		return fmt.Errorf("advancing histogram from %s back to %s", h.asOf, asOf)
	}
	for k := range h.cells {
		if int64(k.age)+d > maxDays {
			return fmt.Errorf("advancing histogram from %s to %s: ages out of range", h.asOf, asOf)
		}
	}
	return nil
}

func cents(v float64) int64 { return int64(math.Round(v * 100)) }

func (h *Histogram) init() {
	if h.cells == nil {
		h.cells = make(map[cell]int64)
		h.spends = make(map[spendCell]int64)
		h.monetary = make(map[int64]int64)
	}
}

func keys(c Customer) (cell, spendCell, int64, error) {
	if err := c.Validate(); err != nil {
		return cell{}, spendCell{}, 0, err
	}
	if c.AgeDays > maxDays || c.Frequency > maxDays {
		return cell{}, spendCell{}, 0, fmt.Errorf("%w: %d repeat purchases in %d days out of range", ErrInvalidCustomer, c.Frequency, c.AgeDays)
	}
	mean, total := cents(c.MeanSpend), cents(c.TotalSpend)
	if mean < -maxCents || mean > maxCents || total < -maxCents || total > maxCents {
		return cell{}, spendCell{}, 0, fmt.Errorf("%w: spends %v and %v out of range", ErrInvalidCustomer, c.MeanSpend, c.TotalSpend)
	}
	return cell{int32(c.Frequency), int32(c.RecencyDays), int32(c.AgeDays)}, spendCell{int32(c.Frequency), mean}, total, nil
}

// Add counts c, whose ages are as of AsOf.
func (h *Histogram) Add(c Customer) error {
	k, s, m, err := keys(c)
	if err != nil {
		return fmt.Errorf("adding to histogram: %w", err)
	}
	h.init()
	h.n++
	h.cells[k]++
	if k.x > 0 {
		h.spends[s]++
	}
	h.monetary[m]++
	return nil
}

// Remove uncounts c, which an earlier Add counted (with the same values as of
// AsOf). If the histogram does not hold c, Remove returns ErrNotInHistogram
// and changes nothing.
func (h *Histogram) Remove(c Customer) error {
	k, s, m, err := keys(c)
	if err != nil {
		return fmt.Errorf("removing from histogram: %w", err)
	}
	if h.cells[k] == 0 || h.monetary[m] == 0 || (k.x > 0 && h.spends[s] == 0) {
		return fmt.Errorf("removing %+v as of %s: %w", c, h.asOf, ErrNotInHistogram)
	}
	decr(h.cells, k)
	if k.x > 0 {
		decr(h.spends, s)
	}
	decr(h.monetary, m)
	h.n--
	return nil
}

func decr[K comparable](m map[K]int64, k K) {
	if m[k] == 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// Merge adds o's counts to h, leaving o unchanged. If the two are as of
// different days, the earlier one's ages are advanced to the later day (as
// Advance does), and h ends as of the later day. Merge fails, changing
// nothing, only if an age would exceed about 46,000 years (a corrupt as-of
// day).
func (h *Histogram) Merge(o *Histogram) error {
	later := max(h.asOf, o.asOf)
	if err := h.checkAdvance(later); err != nil {
		return fmt.Errorf("merging histograms: %w", err)
	}
	if err := o.checkAdvance(later); err != nil {
		return fmt.Errorf("merging histograms: %w", err)
	}
	_ = h.Advance(later) // checked above
	shift := int32(later - o.asOf)
	h.init()
	h.n += o.n
	for k, v := range o.cells {
		k.age += shift
		h.cells[k] += v
	}
	for k, v := range o.spends {
		h.spends[k] += v
	}
	for k, v := range o.monetary {
		h.monetary[k] += v
	}
	return nil
}

// Clone returns a deep copy of h.
func (h *Histogram) Clone() *Histogram {
	return &Histogram{asOf: h.asOf, n: h.n, cells: maps.Clone(h.cells), spends: maps.Clone(h.spends), monetary: maps.Clone(h.monetary)}
}

// Equal reports whether h and o hold the same counts as of the same day.
func (h *Histogram) Equal(o *Histogram) bool {
	return h.asOf == o.asOf && h.n == o.n && maps.Equal(h.cells, o.cells) &&
		maps.Equal(h.spends, o.spends) && maps.Equal(h.monetary, o.monetary)
}

// Cells yields each distinct (frequency, recency days, age days) with the
// number of customers who have it; the yielded Customer's spends are zero.
// The order is unspecified. The insights use it for the P(alive)
// distribution.
func (h *Histogram) Cells() iter.Seq2[Customer, int] {
	return func(yield func(Customer, int) bool) {
		for k, v := range h.cells {
			if !yield(Customer{Frequency: int(k.x), RecencyDays: int(k.recency), AgeDays: int(k.age)}, int(v)) {
				return
			}
		}
	}
}

// histogramVersion is the first byte of MarshalBinary's output.
const histogramVersion = 1

// Bounds on decoded values, far above any real history, so that sums and
// differences cannot overflow.
const (
	maxDays  = 1 << 24 // days, about 46,000 years
	maxCents = 1 << 52 // exactly representable as a float64
	maxCount = 1 << 40
)

// MarshalBinary encodes h compactly and canonically (equal histograms
// encode to equal bytes, and a decodable input is its histogram's only
// encoding). Each section lists its cells in ascending key order, each key
// as the difference from the previous one, so the common small steps take a
// byte:
//
//	byte     version (1)
//	varint   as-of day
//	uvarint  number of BG/NBD cells, ordered by (frequency, recency, age);
//	         per cell:
//	           uvarint frequency − previous frequency
//	           uvarint recency days − previous recency, if the frequency is
//	                   the previous one's, else recency days
//	           uvarint age days − previous age − 1, if frequency and recency
//	                   are the previous one's, else age days − recency days
//	           uvarint count − 1
//	uvarint  number of spend cells, ordered by (frequency, cents); per cell:
//	           uvarint frequency − previous frequency (the first: frequency)
//	           uvarint cents − previous cents − 1, if the frequency is the
//	                   previous one's, else varint mean spend in cents
//	           uvarint count − 1
//	uvarint  number of monetary cells, ordered by cents; per cell:
//	           varint total spend in cents for the first, then uvarint
//	           cents − previous cents − 1
//	           uvarint count − 1
//
// The first cell of a section takes its previous frequency as 0 and shares
// nothing else with it.
func (h *Histogram) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 16+4*len(h.cells)+4*len(h.spends)+3*len(h.monetary))
	b = append(b, histogramVersion)
	b = binary.AppendVarint(b, int64(h.asOf))

	cs := slices.SortedFunc(maps.Keys(h.cells), compareCells)
	b = binary.AppendUvarint(b, uint64(len(cs)))
	var prev cell
	for i, k := range cs {
		b = binary.AppendUvarint(b, uint64(k.x-prev.x))
		switch {
		case i == 0 || k.x != prev.x:
			b = binary.AppendUvarint(b, uint64(k.recency))
			b = binary.AppendUvarint(b, uint64(k.age-k.recency))
		case k.recency != prev.recency:
			b = binary.AppendUvarint(b, uint64(k.recency-prev.recency))
			b = binary.AppendUvarint(b, uint64(k.age-k.recency))
		default:
			b = binary.AppendUvarint(b, 0)
			b = binary.AppendUvarint(b, uint64(k.age-prev.age-1))
		}
		b = binary.AppendUvarint(b, uint64(h.cells[k]-1))
		prev = k
	}

	ss := slices.SortedFunc(maps.Keys(h.spends), compareSpendCells)
	b = binary.AppendUvarint(b, uint64(len(ss)))
	var prevS spendCell
	for i, k := range ss {
		b = binary.AppendUvarint(b, uint64(k.x-prevS.x))
		if i > 0 && k.x == prevS.x {
			b = binary.AppendUvarint(b, uint64(k.cents-prevS.cents-1))
		} else {
			b = binary.AppendVarint(b, k.cents)
		}
		b = binary.AppendUvarint(b, uint64(h.spends[k]-1))
		prevS = k
	}

	ms := slices.Sorted(maps.Keys(h.monetary))
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for i, k := range ms {
		if i == 0 {
			b = binary.AppendVarint(b, k)
		} else {
			b = binary.AppendUvarint(b, uint64(k-ms[i-1]-1))
		}
		b = binary.AppendUvarint(b, uint64(h.monetary[k]-1))
	}
	return b, nil
}

func compareCells(a, b cell) int {
	return cmp.Or(cmp.Compare(a.x, b.x), cmp.Compare(a.recency, b.recency), cmp.Compare(a.age, b.age))
}

func compareSpendCells(a, b spendCell) int {
	return cmp.Or(cmp.Compare(a.x, b.x), cmp.Compare(a.cents, b.cents))
}

// ErrCorruptHistogram is returned (wrapped) by UnmarshalBinary when the input
// is not a histogram MarshalBinary wrote.
var ErrCorruptHistogram = errors.New("predict: corrupt histogram")

// UnmarshalBinary replaces h with the histogram MarshalBinary encoded in
// data. It checks the input fully (it comes from Kafka) and leaves h
// unchanged on error.
func (h *Histogram) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != histogramVersion {
		return fmt.Errorf("decoding histogram: %w: version %d, want %d", ErrCorruptHistogram, v, histogramVersion)
	}
	asOf := d.varint()
	if asOf < -maxDays || asOf > maxDays {
		d.fail("as-of day %d out of range", asOf)
	}
	out := Histogram{asOf: Day(asOf), cells: map[cell]int64{}, spends: map[spendCell]int64{}, monetary: map[int64]int64{}}

	var k cell
	var repeat int64 // customers with a repeat purchase, from the cells
	for i, n := 0, d.length(4); i < n && d.err == nil; i++ {
		dx := d.bounded(maxDays)
		switch v, w := d.bounded(maxDays), d.bounded(maxDays); {
		case i == 0 || dx > 0:
			k = cell{x: k.x + int32(dx), recency: int32(v)}
			k.age = k.recency + int32(w)
		case v > 0:
			k.recency += int32(v)
			k.age = k.recency + int32(w)
		default:
			k.age += int32(w) + 1
		}
		c := d.count()
		switch {
		case k.x > maxDays || k.age > maxDays:
			d.fail("frequency or age out of range")
		case k.x == 0 && k.recency != 0:
			d.fail("recency %d days without a repeat purchase", k.recency)
		}
		out.cells[k] = c
		if out.n += c; out.n > maxCount {
			d.fail("more than %d customers", int64(maxCount))
		}
		if k.x > 0 {
			repeat += c
		}
	}

	var s spendCell
	var spenders int64
	for i, n := 0, d.length(3); i < n && d.err == nil; i++ {
		dx := d.bounded(maxDays)
		if i == 0 || dx > 0 {
			s = spendCell{x: s.x + int32(dx), cents: d.varint()}
		} else {
			s.cents += d.bounded(maxCents) + 1
		}
		c := d.count()
		switch {
		case s.x == 0:
			d.fail("spend cell without a repeat purchase")
		case s.x > maxDays || s.cents < -maxCents || s.cents > maxCents:
			d.fail("spend cell out of range")
		}
		out.spends[s] = c
		if spenders += c; spenders > maxCount {
			d.fail("more than %d customers", int64(maxCount))
		}
	}

	var m, all int64
	for i, n := 0, d.length(2); i < n && d.err == nil; i++ {
		if i == 0 {
			m = d.varint()
		} else {
			m += d.bounded(maxCents) + 1
		}
		if m < -maxCents || m > maxCents {
			d.fail("total spend out of range")
		}
		c := d.count()
		out.monetary[m] = c
		if all += c; all > maxCount {
			d.fail("more than %d customers", int64(maxCount))
		}
	}

	switch {
	case d.err != nil:
	case len(d.b) != 0:
		d.fail("%d bytes after the end", len(d.b))
	case all != out.n:
		d.fail("%d customers in the monetary cells, %d in the BG/NBD cells", all, out.n)
	case spenders != repeat:
		d.fail("%d customers in the spend cells, %d repeat customers in the BG/NBD cells", spenders, repeat)
	}
	if d.err != nil {
		return fmt.Errorf("decoding histogram: %w", d.err)
	}
	*h = out
	return nil
}

// decoder reads varints, keeping the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorruptHistogram, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || (n > 1 && d.b[n-1] == 0) { // a final 0 byte pads: not canonical
		d.fail("truncated or overlong varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 || (n > 1 && d.b[n-1] == 0) {
		d.fail("truncated or overlong varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bounded reads a uvarint of at most max.
func (d *decoder) bounded(max int64) int64 {
	v := d.uvarint()
	if d.err == nil && v > uint64(max) {
		d.fail("value %d out of range", v)
		return 0
	}
	return int64(v)
}

// count reads a count, encoded as count − 1.
func (d *decoder) count() int64 { return d.bounded(maxCount) + 1 }

// length reads a number of entries, each at least minBytes long, and checks
// that they can fit in what is left, so a corrupt length cannot make the
// decoder loop long.
func (d *decoder) length(minBytes int) int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)/minBytes) {
		d.fail("%d entries in %d bytes", v, len(d.b))
		return 0
	}
	return int(v)
}
