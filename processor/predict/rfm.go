package predict

import (
	"cmp"
	"maps"
	"slices"
)

// RFMBins are the quintile boundaries of a population's recency, frequency
// and monetary value: each array holds the 20th, 40th, 60th and 80th
// percentiles, by the nearest-rank method (the value of the ⌈kN/5⌉-th
// smallest of N customers). The measures are a Customer's:
//
//   - recency: days since the last purchase (DaysSinceLastPurchase);
//   - frequency: repeat purchase days (Frequency);
//   - monetary: spend over all purchase days (TotalSpend), as in Hughes'
//     RFM.
type RFMBins struct {
	Recency   [4]int     `json:"recency_days"`
	Frequency [4]int     `json:"frequency"`
	Monetary  [4]float64 `json:"monetary"`
}

// NewRFMBins returns the quintile boundaries of a population given as three
// slices (each in any order, not necessarily of one length).
func NewRFMBins(recencyDays, frequency []int, monetary []float64) RFMBins {
	ones := func(n int) []int64 {
		w := make([]int64, n)
		for i := range w {
			w[i] = 1
		}
		return w
	}
	return RFMBins{
		Recency:   quintiles(recencyDays, ones(len(recencyDays))),
		Frequency: quintiles(frequency, ones(len(frequency))),
		Monetary:  quintiles(monetary, ones(len(monetary))),
	}
}

// RFMBins returns the quintile boundaries of the histogram's customers, the
// same as NewRFMBins over them (up to the cents monetary values are rounded
// to).
func (h *Histogram) RFMBins() RFMBins {
	rec, freq := map[int]int64{}, map[int]int64{}
	for k, v := range h.cells {
		rec[int(k.age-k.recency)] += v
		freq[int(k.x)] += v
	}
	mon := make(map[float64]int64, len(h.monetary))
	for k, v := range h.monetary {
		mon[float64(k)/100] += v
	}
	return RFMBins{
		Recency:   weightedQuintiles(rec),
		Frequency: weightedQuintiles(freq),
		Monetary:  weightedQuintiles(mon),
	}
}

func weightedQuintiles[T cmp.Ordered](counts map[T]int64) [4]T {
	vs := slices.Sorted(maps.Keys(counts))
	ws := make([]int64, len(vs))
	for i, v := range vs {
		ws[i] = counts[v]
	}
	return quintiles(vs, ws)
}

// quintiles returns the nearest-rank 20th..80th percentiles of values, each
// counted weights[i] times. Empty input gives zeros.
func quintiles[T cmp.Ordered](values []T, weights []int64) [4]T {
	idx := make([]int, len(values))
	var n int64
	for i := range idx {
		idx[i] = i
		n += weights[i]
	}
	var q [4]T
	if n == 0 {
		return q
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(values[a], values[b]) })
	var seen int64
	k := 0
	for _, i := range idx {
		seen += weights[i]
		// The ⌈kN/5⌉-th value is the first whose running count reaches it.
		for k < 4 && seen*5 >= int64(k+1)*n {
			q[k] = values[i]
			k++
		}
	}
	return q
}

// rank returns 1 + the number of boundaries strictly below v: 1..5.
func rank[T cmp.Ordered](bounds [4]T, v T) int {
	r := 1
	for _, b := range bounds {
		if v > b {
			r++
		}
	}
	return r
}

// Score returns a customer's RFM scores, each 1 (worst) to 5 (best): r is 5
// for the most recent purchases (fewest days since the last), f and m are 5
// for the most repeat purchases and the highest spend. A value scores
// 1 + the number of boundaries it exceeds (for recency, 5 − that number), so
// the customers at a boundary take the lower quintile; where many customers
// share a value (most have no repeat purchase) a quintile may be empty.
func (b RFMBins) Score(recencyDays, frequency int, monetary float64) (r, f, m int) {
	return 6 - rank(b.Recency, recencyDays), rank(b.Frequency, frequency), rank(b.Monetary, monetary)
}

// ScoreCustomer returns the RFM scores of c.
func (b RFMBins) ScoreCustomer(c Customer) (r, f, m int) {
	return b.Score(c.DaysSinceLastPurchase(), c.Frequency, c.TotalSpend)
}

// The RFM segments, as Segment names them.
const (
	SegmentChampions          = "Champions"
	SegmentLoyal              = "Loyal"
	SegmentPotentialLoyalists = "Potential loyalists"
	SegmentNewCustomers       = "New customers"
	SegmentPromising          = "Promising"
	SegmentNeedAttention      = "Need attention"
	SegmentAboutToSleep       = "About to sleep"
	SegmentAtRisk             = "At risk"
	SegmentCantLoseThem       = "Can't lose them"
	SegmentHibernating        = "Hibernating"
	SegmentLost               = "Lost"
)

// Segments returns the names of the RFM segments, best first: the order the
// insights list them in.
func Segments() []string {
	return []string{
		SegmentChampions, SegmentLoyal, SegmentPotentialLoyalists, SegmentNewCustomers,
		SegmentPromising, SegmentNeedAttention, SegmentAboutToSleep, SegmentAtRisk,
		SegmentCantLoseThem, SegmentHibernating, SegmentLost,
	}
}

// segmentGrid is the segment of each (r, fm) pair, segmentGrid[r-1][fm-1].
var segmentGrid = [5][5]string{
	// Rows r = 1..5, columns fm = 1..5.
	/* r1 */ {SegmentLost, SegmentHibernating, SegmentAtRisk, SegmentAtRisk, SegmentCantLoseThem},
	/* r2 */ {SegmentHibernating, SegmentHibernating, SegmentAtRisk, SegmentAtRisk, SegmentCantLoseThem},
	/* r3 */ {SegmentAboutToSleep, SegmentAboutToSleep, SegmentNeedAttention, SegmentLoyal, SegmentLoyal},
	/* r4 */ {SegmentPromising, SegmentPotentialLoyalists, SegmentPotentialLoyalists, SegmentLoyal, SegmentLoyal},
	/* r5 */ {SegmentNewCustomers, SegmentPotentialLoyalists, SegmentPotentialLoyalists, SegmentChampions, SegmentChampions},
}

// Segment returns the named segment of RFM scores (each 1..5; out-of-range
// scores are clamped). It combines frequency and monetary value into
// fm = ⌈(f+m)/2⌉ and looks (r, fm) up in this table:
//
//	r \ fm   1               2                    3                    4           5
//	5        New customers   Potential loyalists  Potential loyalists  Champions   Champions
//	4        Promising       Potential loyalists  Potential loyalists  Loyal       Loyal
//	3        About to sleep  About to sleep       Need attention       Loyal       Loyal
//	2        Hibernating     Hibernating          At risk              At risk     Can't lose them
//	1        Lost            Hibernating          At risk              At risk     Can't lose them
//
// The table is the recency × frequency segment map in common use (Putler's
// RFM segments, and the "seg_map" of the usual RFM recipes), with two
// changes: the frequency axis is the mean of the frequency and monetary
// scores, so that big spenders count as valuable, and the lowest cell is
// named Lost, the eleventh of Putler's segments, apart from the rest of
// Hibernating.
func Segment(r, f, m int) string {
	clamp := func(v int) int { return min(max(v, 1), 5) }
	r, f, m = clamp(r), clamp(f), clamp(m)
	return segmentGrid[r-1][(f+m+1)/2-1]
}
