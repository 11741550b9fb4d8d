package predict

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"gonum.org/v1/gonum/mathext"
)

// BGNBD is a fitted BG/NBD model (Fader, Hardie and Lee 2005): while alive, a
// customer buys at a Poisson rate λ ~ Gamma(R, Alpha) per week; after each
// purchase they drop out with probability p ~ Beta(A, B).
type BGNBD struct {
	// R and Alpha are the shape and rate (per week) of the gamma
	// distribution of purchase rates.
	R, Alpha float64
	// A and B are the shapes of the beta distribution of dropout
	// probabilities.
	A, B float64
	// LogLikelihood is the fit's log-likelihood, with t_x and T in weeks
	// (it depends on the unit).
	LogLikelihood float64
	// Customers is the number of customers fitted.
	Customers int
}

// Errors returned (wrapped) by FitBGNBD and FitGammaGamma (see also
// ErrHeavyTail). A pipeline that gets one keeps the parameters it had.
var (
	// ErrNoCustomers means the histogram holds no customer the model can
	// use.
	ErrNoCustomers = errors.New("predict: no customers to fit")
	// ErrNotIdentified means the likelihood has its maximum at the edge of
	// the parameter space (a parameter tends to 0 or ∞), as with very few
	// customers or no repeat purchases: the data do not determine the model.
	ErrNotIdentified = errors.New("predict: data do not identify the model's parameters")
)

// bgnbdGroup is the histogram's cells of one frequency x, in weeks.
type bgnbdGroup struct {
	x      float64
	tx, T  []float64
	weight []float64
	n      float64 // sum of weight
}

// bgnbdData is a histogram prepared for the likelihood.
type bgnbdData struct {
	groups []bgnbdGroup
	n      float64
}

func newBGNBDData(h *Histogram) bgnbdData {
	var d bgnbdData
	// In a fixed order, so that a fit is reproducible bit for bit.
	for _, k := range slices.SortedFunc(maps.Keys(h.cells), compareCells) {
		if len(d.groups) == 0 || d.groups[len(d.groups)-1].x != float64(k.x) {
			d.groups = append(d.groups, bgnbdGroup{x: float64(k.x)})
		}
		g, w := &d.groups[len(d.groups)-1], float64(h.cells[k])
		g.tx = append(g.tx, float64(k.recency)/DaysPerWeek)
		g.T = append(g.T, float64(k.age)/DaysPerWeek)
		g.weight = append(g.weight, w)
		g.n += w
		d.n += w
	}
	return d
}

// logLikelihood returns the BG/NBD log-likelihood of the data at
// (r, α, a, b), and, if grad is not nil, stores in it the gradient with
// respect to (ln r, ln α, ln a, ln b).
//
// For one customer (the likelihood in the form of Fader, Hardie and Lee's
// Excel note, in logarithms):
//
//	ln L = A1 + A2 + ln(exp(A3) + [x > 0] exp(A4))
//	A1 = ln Γ(r+x) − ln Γ(r) + r ln α
//	A2 = ln Γ(a+b) + ln Γ(b+x) − ln Γ(b) − ln Γ(a+b+x)
//	A3 = −(r+x) ln(α+T)
//	A4 = ln a − ln(b+x−1) − (r+x) ln(α+t_x)
//
// The last term is a log-sum-exp, taken around the larger exponent.
func (d *bgnbdData) logLikelihood(r, alpha, a, b float64, grad []float64) float64 {
	lgR, _ := math.Lgamma(r)
	lgB, _ := math.Lgamma(b)
	lgAB, _ := math.Lgamma(a + b)
	lnAlpha, lnA := math.Log(alpha), math.Log(a)
	var psiR, psiB, psiAB float64
	if grad != nil {
		psiR, psiB, psiAB = mathext.Digamma(r), mathext.Digamma(b), mathext.Digamma(a+b)
	}
	var ll, dr, dalpha, da, db float64
	for gi := range d.groups {
		g := &d.groups[gi]
		x := g.x
		lgRX, _ := math.Lgamma(r + x)
		lgBX, _ := math.Lgamma(b + x)
		lgABX, _ := math.Lgamma(a + b + x)
		// A1 + A2 are the same for the whole group.
		ll += g.n * (lgRX - lgR + r*lnAlpha + lgAB + lgBX - lgB - lgABX)
		if grad != nil {
			psiABX := mathext.Digamma(a + b + x)
			dr += g.n * (mathext.Digamma(r+x) - psiR + lnAlpha)
			dalpha += g.n * r / alpha
			da += g.n * (psiAB - psiABX)
			db += g.n * (psiAB + mathext.Digamma(b+x) - psiB - psiABX)
		}
		rx := r + x
		if x == 0 {
			for j, T := range g.T {
				w, lnAT := g.weight[j], math.Log(alpha+T)
				ll -= w * rx * lnAT
				if grad != nil {
					dr -= w * lnAT
					dalpha -= w * rx / (alpha + T)
				}
			}
			continue
		}
		lnABX1 := lnA - math.Log(b+x-1)
		for j, T := range g.T {
			w, tx := g.weight[j], g.tx[j]
			lnAT, lnAtx := math.Log(alpha+T), math.Log(alpha+tx)
			a3 := -rx * lnAT
			a4 := lnABX1 - rx*lnAtx
			// ln(e^a3 + e^a4) = m + ln(1 + e^(−|a3−a4|)); w4 is the weight
			// of the second term, e^a4 / (e^a3 + e^a4).
			m, w4 := a3, 1/(1+math.Exp(a3-a4))
			if a4 > a3 {
				m = a4
			}
			ll += w * (m + math.Log1p(math.Exp(-math.Abs(a3-a4))))
			if grad != nil {
				w3 := 1 - w4
				dr -= w * (w3*lnAT + w4*lnAtx)
				dalpha -= w * rx * (w3/(alpha+T) + w4/(alpha+tx))
				da += w * w4 / a
				db -= w * w4 / (b + x - 1)
			}
		}
	}
	if grad != nil {
		// Chain rule into log space: ∂/∂ln θ = θ ∂/∂θ.
		grad[0], grad[1], grad[2], grad[3] = r*dr, alpha*dalpha, a*da, b*db
	}
	return ll
}

// FitBGNBD fits the BG/NBD model to the histogram by maximum likelihood,
// each distinct (x, t_x, T) weighted by its count. The parameters are
// optimised in log space, so they stay positive.
func FitBGNBD(h *Histogram) (BGNBD, error) {
	d := newBGNBDData(h)
	if d.n == 0 {
		return BGNBD{}, fmt.Errorf("fitting BG/NBD: %w", ErrNoCustomers)
	}
	// Dividing by the count keeps the objective's scale, and so the
	// convergence thresholds, independent of the population's size.
	ll := func(x, grad []float64) float64 {
		v := d.logLikelihood(math.Exp(x[0]), math.Exp(x[1]), math.Exp(x[2]), math.Exp(x[3]), grad)
		for i := range grad {
			grad[i] /= d.n
		}
		return v / d.n
	}
	x, err := fitLogSpace([]float64{0, 0, 0, 0}, ll)
	if err != nil {
		return BGNBD{}, fmt.Errorf("fitting BG/NBD to %d customers: %w", int(d.n), err)
	}
	m := BGNBD{R: math.Exp(x[0]), Alpha: math.Exp(x[1]), A: math.Exp(x[2]), B: math.Exp(x[3]), Customers: int(d.n)}
	m.LogLikelihood = d.logLikelihood(m.R, m.Alpha, m.A, m.B, nil)
	return m, nil
}

// PAlive returns the probability that a customer with x repeat purchases,
// the last t_x weeks after the first, and first purchase T weeks ago, is
// still alive (Fader, Hardie and Lee 2008):
//
//	P(alive) = 1 / (1 + [x > 0] a/(b+x−1) ((α+T)/(α+t_x))^(r+x))
//
// A customer without a repeat purchase cannot have dropped out (a dropout
// happens just after a purchase), so their P(alive) is 1.
func (m BGNBD) PAlive(x, tx, T float64) float64 {
	if x <= 0 {
		return 1
	}
	return 1 / (1 + math.Exp(m.logDeadOdds(x, tx, T)))
}

// logDeadOdds returns ln(a/(b+x−1) ((α+T)/(α+t_x))^(r+x)), the log of
// P(dead)/P(alive) for x > 0.
func (m BGNBD) logDeadOdds(x, tx, T float64) float64 {
	return math.Log(m.A/(m.B+x-1)) + (m.R+x)*math.Log1p((T-tx)/(m.Alpha+tx))
}

// ExpectedPurchases returns the expected number of purchases in the next t
// weeks of a customer with x repeat purchases, the last t_x weeks after the
// first, and first purchase T weeks ago: E[Y(t) | x, t_x, T], the paper's
// equation (10),
//
//	E = (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; z)]
//	    / (1 + [x > 0] a/(b+x−1) ((α+T)/(α+t_x))^(r+x)),   z = t/(α+T+t).
//
// Euler's transformation ₂F₁(A, B; C; z) = (1−z)^(C−A−B) ₂F₁(C−A, C−B; C; z)
// turns the bracket into 1 − (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z), whose
// parameters do not grow with x, so neither the power nor the series
// overflows for frequent buyers. ₂F₁ is gonum's mathext.Hypergeo (Cephes'
// hyp2f1), defined for |z| < 1, which always holds here: 0 ≤ z < 1.
//
// With x = t_x = T = 0 it is the paper's E[X(t)], the expected purchases
// in the first t weeks after a customer's first purchase.
//
// At a = 1, and at a + b = 1 for x = 0, the expression is 0/0 with a finite
// limit; within 1e-8 of either, ExpectedPurchases returns the mean of the
// values 1e-5 to each side, which is the limit to about 1e-10.
func (m BGNBD) ExpectedPurchases(t, x, tx, T float64) float64 {
	if t <= 0 {
		return 0
	}
	const near, step = 1e-8, 1e-5
	switch {
	case math.Abs(m.A-1) < near:
		lo, hi := m, m
		lo.A, hi.A = 1-step, 1+step
		return (lo.ExpectedPurchases(t, x, tx, T) + hi.ExpectedPurchases(t, x, tx, T)) / 2
	case x == 0 && math.Abs(m.A+m.B-1) < near:
		lo, hi := m, m
		lo.B, hi.B = 1-m.A-step, 1-m.A+step
		return (lo.ExpectedPurchases(t, x, tx, T) + hi.ExpectedPurchases(t, x, tx, T)) / 2
	}
	c := m.A + m.B + x - 1
	z := t / (m.Alpha + T + t)
	// (1−z)^(a−1), with ln(1−z) = −ln(1 + t/(α+T)).
	g := math.Exp(-(m.A-1)*math.Log1p(t/(m.Alpha+T))) * mathext.Hypergeo(m.A+m.B-1-m.R, m.A-1, c, z)
	e := c / (m.A - 1) * (1 - g)
	if x > 0 {
		e /= 1 + math.Exp(m.logDeadOdds(x, tx, T))
	}
	return e
}
