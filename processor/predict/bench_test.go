package predict

import (
	"testing"
)

// scoreProfile is what a task does for one profile and one horizon.
func scoreProfile(bg BGNBD, gg GammaGamma, c Customer, horizonWeeks, discount float64) (pAlive, purchases, clv float64) {
	x, tx, T := c.Weeks()
	pAlive = bg.PAlive(x, tx, T)
	purchases = bg.ExpectedPurchases(horizonWeeks, x, tx, T)
	clv = CLV(bg, gg, horizonWeeks, x, tx, T, c.MeanSpend, discount)
	return pAlive, purchases, clv
}

var benchCustomer = Customer{Frequency: 2, RecencyDays: 213, AgeDays: 272, MeanSpend: 22.345, TotalSpend: 74.02}

var sink float64

func TestScoreAllocations(t *testing.T) {
	for _, discount := range []float64{0, 0.001} {
		allocs := testing.AllocsPerRun(100, func() {
			p, e, c := scoreProfile(published, publishedGG, benchCustomer, 39, discount)
			sink += p + e + c
		})
		if allocs != 0 {
			t.Errorf("scoring a profile (discount %v) allocates %v times, want 0", discount, allocs)
		}
	}
}

// BenchmarkScore measures scoring one profile: P(alive), expected purchases
// and CLV over a horizon, as every task does for each profile it updates.
func BenchmarkScore(b *testing.B) {
	for _, bm := range []struct {
		name              string
		horizon, discount float64
	}{
		{"39w", 39, 0},
		{"365d", 365.0 / 7, 0},
		{"365d-discounted", 365.0 / 7, 0.0015},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, e, c := scoreProfile(published, publishedGG, benchCustomer, bm.horizon, bm.discount)
				sink += p + e + c
			}
		})
	}
}

// BenchmarkHistogramUpdate measures a task's histogram update when a
// profile buys: remove its old inputs, add the new.
func BenchmarkHistogramUpdate(b *testing.B) {
	h := cdnowHistogram(b)
	old := benchCustomer
	next := Customer{Frequency: 3, RecencyDays: 272, AgeDays: 272, MeanSpend: 25, TotalSpend: 100}
	if err := h.Add(old); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Remove(old); err != nil {
			b.Fatal(err)
		}
		if err := h.Add(next); err != nil {
			b.Fatal(err)
		}
		old, next = next, old
	}
}

// BenchmarkFitCDNOW measures fitting the CDNOW calibration histogram (2,357
// customers).
func BenchmarkFitCDNOW(b *testing.B) {
	h := cdnowHistogram(b)
	b.Run("BGNBD", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := FitBGNBD(h); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GammaGamma", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := FitGammaGamma(h); err != nil {
				b.Fatal(err)
			}
		}
	})
}
