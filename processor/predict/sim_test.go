package predict

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/stat/distuv"
)

// simulateBGNBD draws n customers from the BG/NBD m, with spends from the
// Gamma-Gamma gg (if gg.P > 0), first purchases spread uniformly over the
// maxAgeDays days before the histogram's as-of day, and returns their
// histogram. Continuous purchase times fall on whole days, so a few
// purchases share a day, as in real data.
func simulateBGNBD(m BGNBD, n, maxAgeDays int, seed uint64) *Histogram {
	return simulate(m, GammaGamma{}, n, maxAgeDays, seed)
}

func simulate(m BGNBD, gg GammaGamma, n, maxAgeDays int, seed uint64) *Histogram {
	src := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	rng := rand.New(src)
	rates := distuv.Gamma{Alpha: m.R, Beta: m.Alpha, Src: src}
	dropouts := distuv.Beta{Alpha: m.A, Beta: m.B, Src: src}
	asOf := Day(maxAgeDays)
	h := NewHistogram(asOf)
	var days []Day
	var spends []float64
	for range n {
		lambda, p := rates.Rand(), dropouts.Rand()
		var spend distuv.Gamma
		if gg.P > 0 {
			nu := distuv.Gamma{Alpha: gg.Q, Beta: gg.Gamma, Src: src}.Rand()
			spend = distuv.Gamma{Alpha: gg.P, Beta: nu, Src: src}
		}
		first := Day(rng.IntN(maxAgeDays + 1))
		T := float64(asOf-first) / DaysPerWeek
		days, spends = append(days[:0], first), append(spends[:0], 1)
		if gg.P > 0 {
			spends[0] = spend.Rand()
		}
		for t := 0.0; ; {
			t += rng.ExpFloat64() / lambda
			if t > T {
				break
			}
			days = append(days, first+Day(math.Floor(t*DaysPerWeek)))
			s := 1.0
			if gg.P > 0 {
				s = spend.Rand()
			}
			spends = append(spends, s)
			if rng.Float64() < p {
				break
			}
		}
		c, _ := FromPurchases(days, spends, asOf)
		if err := h.Add(c); err != nil {
			panic(err)
		}
	}
	return h
}
