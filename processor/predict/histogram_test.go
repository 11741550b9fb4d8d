package predict

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// randomPurchases returns a random customer's purchases: a first day within
// [0, asOf], a few repeat days, some on the same day, spends in cents.
func randomPurchases(rng *rand.Rand, asOf Day) ([]Day, []float64) {
	first := Day(rng.IntN(int(asOf) + 1))
	days, spends := []Day{first}, []float64{float64(rng.IntN(10000)) / 100}
	for range rng.IntN(4) {
		days = append(days, first+Day(rng.IntN(int(asOf-first)+1)))
		spends = append(spends, float64(rng.IntN(10000))/100)
	}
	return days, spends
}

func randomCustomers(seed uint64, n int, asOf Day) []Customer {
	rng := rand.New(rand.NewPCG(seed, 0))
	cs := make([]Customer, n)
	for i := range cs {
		days, spends := randomPurchases(rng, asOf)
		cs[i], _ = FromPurchases(days, spends, asOf)
	}
	return cs
}

func histogramOf(tb testing.TB, asOf Day, cs []Customer) *Histogram {
	tb.Helper()
	h := NewHistogram(asOf)
	for _, c := range cs {
		if err := h.Add(c); err != nil {
			tb.Fatal(err)
		}
	}
	return h
}

func TestHistogramRemoveUndoesAdd(t *testing.T) {
	const asOf = 400
	cs := randomCustomers(1, 500, asOf)
	h := histogramOf(t, asOf, cs)
	before := h.Clone()
	extra := randomCustomers(2, 50, asOf)
	for _, c := range extra {
		if err := h.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range extra {
		if err := h.Remove(c); err != nil {
			t.Fatal(err)
		}
	}
	if !h.Equal(before) {
		t.Error("adding and removing 50 customers changed the histogram")
	}
	for _, c := range cs {
		if err := h.Remove(c); err != nil {
			t.Fatal(err)
		}
	}
	if !h.Equal(NewHistogram(asOf)) || h.Customers() != 0 {
		t.Errorf("removing every customer leaves %d customers", h.Customers())
	}
}

func TestHistogramRemoveAbsent(t *testing.T) {
	c := Customer{Frequency: 2, RecencyDays: 10, AgeDays: 20, MeanSpend: 12.5, TotalSpend: 40}
	tests := []struct {
		name   string
		remove Customer
	}{
		{"another cell", Customer{Frequency: 1, RecencyDays: 10, AgeDays: 20, MeanSpend: 12.5, TotalSpend: 40}},
		{"another mean spend", Customer{Frequency: 2, RecencyDays: 10, AgeDays: 20, MeanSpend: 12.51, TotalSpend: 40}},
		{"another total spend", Customer{Frequency: 2, RecencyDays: 10, AgeDays: 20, MeanSpend: 12.5, TotalSpend: 41}},
	}
	for _, tt := range tests {
		h := histogramOf(t, 20, []Customer{c})
		before := h.Clone()
		if err := h.Remove(tt.remove); !errors.Is(err, ErrNotInHistogram) {
			t.Errorf("%s: Remove = %v, want ErrNotInHistogram", tt.name, err)
		}
		if !h.Equal(before) {
			t.Errorf("%s: a failed Remove changed the histogram", tt.name)
		}
	}
	if err := NewHistogram(0).Add(Customer{Frequency: -1}); !errors.Is(err, ErrInvalidCustomer) {
		t.Errorf("Add of an invalid customer = %v, want ErrInvalidCustomer", err)
	}
}

func TestHistogramMerge(t *testing.T) {
	const asOf = 300
	cs := randomCustomers(3, 900, asOf)
	all := histogramOf(t, asOf, cs)
	parts := []*Histogram{histogramOf(t, asOf, cs[:100]), histogramOf(t, asOf, cs[100:600]), histogramOf(t, asOf, cs[600:])}
	merged := NewHistogram(asOf)
	for _, p := range parts {
		if err := merged.Merge(p); err != nil {
			t.Fatal(err)
		}
	}
	if !merged.Equal(all) {
		t.Error("merging three parts differs from the whole")
	}
	if parts[0].Customers() != 100 {
		t.Errorf("Merge changed its argument: %d customers, want 100", parts[0].Customers())
	}
}

// TestHistogramAsOf checks Advance and merging histograms as of different
// days against recomputing every customer at the later day.
func TestHistogramAsOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 0))
	const early, late = 200, 260
	type purchases struct {
		days   []Day
		spends []float64
	}
	ps := make([]purchases, 400)
	for i := range ps {
		ps[i].days, ps[i].spends = randomPurchases(rng, early)
	}
	at := func(asOf Day, ps []purchases) *Histogram {
		h := NewHistogram(asOf)
		for _, p := range ps {
			c, _ := FromPurchases(p.days, p.spends, asOf)
			if err := h.Add(c); err != nil {
				t.Fatal(err)
			}
		}
		return h
	}
	want := at(late, ps)

	h := at(early, ps)
	if err := h.Advance(late); err != nil {
		t.Fatal(err)
	}
	if !h.Equal(want) {
		t.Error("advancing differs from recomputing at the later day")
	}
	if err := h.Advance(early); err == nil {
		t.Error("advancing backwards succeeded")
	}
	// A histogram as of a corrupt day far in the past must not push ages
	// beyond what the encoding carries.
	before := h.Clone()
	if err := h.Merge(at(-maxDays+100, nil)); err != nil {
		t.Errorf("merging an empty histogram as of a distant day: %v", err)
	}
	ancient := NewHistogram(-maxDays + 100)
	if err := ancient.Add(Customer{AgeDays: 1}); err != nil {
		t.Fatal(err)
	}
	if err := h.Merge(ancient); err == nil {
		t.Error("merging a histogram as of a distant day succeeded")
	}
	if !h.Equal(before) {
		t.Error("a failed Merge changed the histogram")
	}

	for _, order := range []string{"earlier into later", "later into earlier"} {
		a, b := at(early, ps[:150]), at(late, ps[150:])
		if order == "later into earlier" {
			a, b = at(late, ps[:150]), at(early, ps[150:])
		}
		if err := a.Merge(b); err != nil {
			t.Fatal(err)
		}
		if !a.Equal(want) || a.AsOf() != late {
			t.Errorf("merging %s: differs from the whole at the later day", order)
		}
	}
}

func TestHistogramCells(t *testing.T) {
	h := histogramOf(t, 100, randomCustomers(5, 300, 100))
	var n int
	for c, count := range h.Cells() {
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
		n += count
	}
	if n != 300 {
		t.Errorf("cells count %d customers, want 300", n)
	}
}

func TestHistogramMarshal(t *testing.T) {
	cdnow := cdnowHistogram(t)
	tests := []struct {
		name string
		h    *Histogram
	}{
		{"empty", NewHistogram(0)},
		{"zero value", &Histogram{}},
		{"negative as-of and spends", histogramOf(t, -5, []Customer{{Frequency: 1, RecencyDays: 3, AgeDays: 4, MeanSpend: -2.5, TotalSpend: -1}})},
		{"random", histogramOf(t, 500, randomCustomers(6, 2000, 500))},
		{"CDNOW", cdnow},
	}
	for _, tt := range tests {
		b, err := tt.h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Histogram
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !got.Equal(tt.h) {
			t.Errorf("%s: round trip differs", tt.name)
		}
		// Equal histograms encode to equal bytes, whatever their history.
		again := NewHistogram(tt.h.AsOf())
		if err := again.Merge(tt.h); err != nil {
			t.Fatal(err)
		}
		if b2, _ := again.MarshalBinary(); !bytes.Equal(b, b2) {
			t.Errorf("%s: two encodings of one histogram differ", tt.name)
		}
		if tt.name == "CDNOW" {
			t.Logf("CDNOW: %d customers in %d bytes", tt.h.Customers(), len(b))
		}
	}
}

func TestHistogramUnmarshalCorrupt(t *testing.T) {
	valid, err := histogramOf(t, 100, randomCustomers(7, 50, 100)).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for i := range valid {
		if err := new(Histogram).UnmarshalBinary(valid[:i]); !errors.Is(err, ErrCorruptHistogram) {
			t.Fatalf("truncated to %d of %d bytes: %v, want ErrCorruptHistogram", i, len(valid), err)
		}
	}
	// The fields, all uvarints here (a varint of 0 is a uvarint 0): version,
	// as-of, BG/NBD cells (count, then per cell Δfrequency, recency, age −
	// recency, count − 1), spend cells (count, then per cell Δfrequency,
	// cents, count − 1), monetary cells (count, then per cell cents,
	// count − 1). Keys are deltas, so they cannot be out of order.
	tests := []struct {
		name string
		data []byte
	}{
		{"trailing byte", append(append([]byte(nil), valid...), 0)},
		{"unknown version", append([]byte{2}, valid[1:]...)},
		{"as-of out of range", binary.AppendVarint([]byte{1}, 1<<40)},
		{"age out of range", uvarints(1, 0, 1, 0, 0, 1<<25, 0, 0, 1, 0, 0)},
		{"count out of range", uvarints(1, 0, 1, 0, 0, 5, 1<<41, 0, 1, 0, 0)},
		{"recency without repeat purchase", uvarints(1, 0, 1, 0, 3, 5, 0, 0, 1, 0, 0)},
		{"monetary count differs", uvarints(1, 0, 1, 0, 0, 5, 1, 0, 1, 0, 0)},
		{"spend count differs", uvarints(1, 0, 1, 1, 2, 3, 0, 0, 1, 0, 0)},
		{"spend cell without repeat purchase", uvarints(1, 0, 1, 0, 0, 5, 0, 1, 0, 10, 0, 1, 0, 0)},
		{"huge length", uvarints(1, 0, 1<<34)},
	}
	if err := new(Histogram).UnmarshalBinary(uvarints(1, 0, 1, 0, 0, 5, 0, 0, 1, 0, 0)); err != nil {
		t.Fatalf("the corrupt cases' valid base: %v", err)
	}
	for _, tt := range tests {
		h := histogramOf(t, 7, []Customer{{AgeDays: 3}})
		before := h.Clone()
		err := h.UnmarshalBinary(tt.data)
		t.Logf("%s: %v", tt.name, err)
		if !errors.Is(err, ErrCorruptHistogram) {
			t.Errorf("%s: %v, want ErrCorruptHistogram", tt.name, err)
		}
		if !h.Equal(before) {
			t.Errorf("%s: a failed UnmarshalBinary changed the histogram", tt.name)
		}
	}
}

func uvarints(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// FuzzUnmarshalHistogram feeds UnmarshalBinary arbitrary bytes (histograms
// arrive from Kafka): it must not panic, and whatever it accepts must be a
// consistent histogram whose encoding is the input (the encoding is
// canonical).
func FuzzUnmarshalHistogram(f *testing.F) {
	for _, h := range []*Histogram{NewHistogram(0), histogramOf(f, 100, randomCustomers(8, 20, 100))} {
		b, _ := h.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Histogram
		if err := h.UnmarshalBinary(data); err != nil {
			return
		}
		b, err := h.MarshalBinary()
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("re-encoding %x gives %x, %v", data, b, err)
		}
		for c := range h.Cells() {
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
