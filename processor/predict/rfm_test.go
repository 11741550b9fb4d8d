package predict

import (
	"slices"
	"testing"
)

func TestQuintiles(t *testing.T) {
	ones := func(n int) []int64 {
		w := make([]int64, n)
		for i := range w {
			w[i] = 1
		}
		return w
	}
	tests := []struct {
		name    string
		values  []int
		weights []int64
		want    [4]int
	}{
		{"empty", nil, nil, [4]int{}},
		{"one", []int{7}, []int64{1}, [4]int{7, 7, 7, 7}},
		{"1..10", []int{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, ones(10), [4]int{2, 4, 6, 8}},
		// Ranks ⌈N/5⌉ … ⌈4N/5⌉ of 1..7: 2, 3, 5, 6.
		{"1..7", []int{1, 2, 3, 4, 5, 6, 7}, ones(7), [4]int{2, 3, 5, 6}},
		// 60% without a repeat purchase: three boundaries at 0.
		{"ties", []int{0, 1, 2, 5}, []int64{60, 20, 15, 5}, [4]int{0, 0, 0, 1}},
		{"weights as repeats", []int{3, 1, 2}, []int64{1, 2, 2}, [4]int{1, 1, 2, 2}},
	}
	for _, tt := range tests {
		if got := quintiles(tt.values, tt.weights); got != tt.want {
			t.Errorf("%s: quintiles = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRFMScore(t *testing.T) {
	b := RFMBins{Recency: [4]int{10, 30, 60, 120}, Frequency: [4]int{0, 0, 1, 3}, Monetary: [4]float64{20, 40, 80, 200}}
	tests := []struct {
		recency, frequency int
		monetary           float64
		r, f, m            int
	}{
		{0, 0, 0, 5, 1, 1},
		{10, 1, 20, 5, 3, 1}, // at a boundary: the lower quintile
		{11, 2, 20.01, 4, 4, 2},
		{60, 3, 80, 3, 4, 3},
		{121, 4, 1000, 1, 5, 5},
		{120, 100, 200, 2, 5, 4},
	}
	for _, tt := range tests {
		r, f, m := b.Score(tt.recency, tt.frequency, tt.monetary)
		if r != tt.r || f != tt.f || m != tt.m {
			t.Errorf("Score(%d, %d, %v) = %d, %d, %d; want %d, %d, %d", tt.recency, tt.frequency, tt.monetary, r, f, m, tt.r, tt.f, tt.m)
		}
	}
	c := Customer{Frequency: 2, RecencyDays: 100, AgeDays: 111, MeanSpend: 50, TotalSpend: 120}
	if r, f, m := b.ScoreCustomer(c); r != 4 || f != 4 || m != 4 {
		t.Errorf("ScoreCustomer(%+v) = %d, %d, %d; want 4, 4, 4", c, r, f, m)
	}
}

// TestRFMBinsFromHistogram checks that the fitter, which sees only the
// merged histogram, gets the quintiles the whole population gives, and
// that on CDNOW they split the customers as quintiles should where values
// are distinct.
func TestRFMBinsFromHistogram(t *testing.T) {
	ids, days, spends := cdnowPurchases(t)
	var rec, freq []int
	var mon []float64
	var cs []Customer
	for _, id := range ids {
		c, _ := FromPurchases(days[id], spends[id], cdnowCalibrationEnd)
		cs = append(cs, c)
		rec = append(rec, c.DaysSinceLastPurchase())
		freq = append(freq, c.Frequency)
		mon = append(mon, float64(cents(c.TotalSpend))/100)
	}
	want := NewRFMBins(rec, freq, mon)
	got := cdnowHistogram(t).RFMBins()
	if got != want {
		t.Errorf("histogram's bins %+v, population's %+v", got, want)
	}
	t.Logf("CDNOW bins as of %s: %+v", cdnowCalibrationEnd, got)
	counts := make([]int, 6)
	for _, c := range cs {
		_, _, m := got.ScoreCustomer(c)
		counts[m]++
	}
	// Total spends are nearly all distinct: each quintile holds a fifth.
	for m := 1; m <= 5; m++ {
		if share := float64(counts[m]) / float64(len(cs)); share < 0.19 || share > 0.21 {
			t.Errorf("monetary score %d: %.3f of customers, want about 0.2", m, share)
		}
	}
}

func TestSegment(t *testing.T) {
	tests := []struct {
		r, f, m int
		want    string
	}{
		{5, 5, 5, SegmentChampions},
		{5, 4, 3, SegmentChampions}, // fm = ⌈3.5⌉ = 4
		{5, 1, 1, SegmentNewCustomers},
		{5, 2, 3, SegmentPotentialLoyalists},
		{4, 5, 4, SegmentLoyal},
		{3, 4, 4, SegmentLoyal},
		{4, 1, 1, SegmentPromising},
		{4, 2, 2, SegmentPotentialLoyalists},
		{3, 3, 3, SegmentNeedAttention},
		{3, 1, 2, SegmentAboutToSleep},
		{2, 3, 3, SegmentAtRisk},
		{1, 4, 4, SegmentAtRisk},
		{1, 5, 5, SegmentCantLoseThem},
		{2, 5, 4, SegmentCantLoseThem},
		{2, 1, 1, SegmentHibernating},
		{1, 2, 2, SegmentHibernating},
		{1, 1, 1, SegmentLost},
		{0, 9, -3, SegmentAtRisk}, // clamped to (1, 5, 1): fm = ⌈6/2⌉ = 3
	}
	for _, tt := range tests {
		if got := Segment(tt.r, tt.f, tt.m); got != tt.want {
			t.Errorf("Segment(%d, %d, %d) = %q, want %q", tt.r, tt.f, tt.m, got, tt.want)
		}
	}
	// Every score maps to a listed segment, and every segment is reached.
	reached := map[string]bool{}
	for r := 1; r <= 5; r++ {
		for f := 1; f <= 5; f++ {
			for m := 1; m <= 5; m++ {
				s := Segment(r, f, m)
				if !slices.Contains(Segments(), s) {
					t.Errorf("Segment(%d, %d, %d) = %q, not in Segments()", r, f, m, s)
				}
				reached[s] = true
			}
		}
	}
	if len(reached) != len(Segments()) {
		t.Errorf("%d of %d segments reached", len(reached), len(Segments()))
	}
}
