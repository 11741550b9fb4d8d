package predict

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"gonum.org/v1/gonum/mathext"
)

// GammaGamma is a fitted Gamma-Gamma spend model (Fader, Hardie and Lee 2005,
// "RFM and CLV"): a customer's transactions are worth z ~ Gamma(P, ν) each,
// and ν varies across customers as Gamma(Q, Gamma). Spend is independent of
// the purchase process, so it combines with BG/NBD into CLV.
type GammaGamma struct {
	// P is the shape of a customer's spend per transaction.
	P float64
	// Q and Gamma are the shape and rate of the distribution of the
	// customers' scale ν.
	Q, Gamma float64
	// LogLikelihood is the fit's log-likelihood (spends in the purchases'
	// currency).
	LogLikelihood float64
	// Customers is the number of customers fitted: those with a repeat
	// purchase and a positive mean spend.
	Customers int
}

// ErrHeavyTail is returned (wrapped) by FitGammaGamma when the fitted Q is
// at most 1: the population's mean spend per transaction is then infinite,
// and the model cannot predict spend.
var ErrHeavyTail = errors.New("predict: spend too heavy-tailed for the Gamma-Gamma model (q ≤ 1)")

// ggData is a histogram's spend cells prepared for the likelihood.
type ggData struct {
	x, m, w []float64
	n       float64
}

func newGGData(h *Histogram) ggData {
	var d ggData
	// In a fixed order, so that a fit is reproducible bit for bit.
	for _, k := range slices.SortedFunc(maps.Keys(h.spends), compareSpendCells) {
		if k.x <= 0 || k.cents <= 0 {
			continue
		}
		w := float64(h.spends[k])
		d.x = append(d.x, float64(k.x))
		d.m = append(d.m, float64(k.cents)/100)
		d.w = append(d.w, w)
		d.n += w
	}
	return d
}

// logLikelihood returns the Gamma-Gamma log-likelihood at (p, q, γ) and, if
// grad is not nil, stores in it the gradient with respect to (ln p, ln q,
// ln γ). For a customer with x repeat transactions of mean m_x (Fader and
// Hardie, "The Gamma-Gamma Model of Monetary Value", 2013):
//
//	ln f = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m_x
//	       + px ln x − (px+q) ln(γ + x m_x)
func (d *ggData) logLikelihood(p, q, gamma float64, grad []float64) float64 {
	lgQ, _ := math.Lgamma(q)
	lnGamma := math.Log(gamma)
	var psiQ float64
	if grad != nil {
		psiQ = mathext.Digamma(q)
	}
	var ll, dp, dq, dg float64
	for i, x := range d.x {
		m, w := d.m[i], d.w[i]
		px := p * x
		lgPXQ, _ := math.Lgamma(px + q)
		lgPX, _ := math.Lgamma(px)
		lnM, lnX, lnGXM := math.Log(m), math.Log(x), math.Log(gamma+x*m)
		ll += w * (lgPXQ - lgPX - lgQ + q*lnGamma + (px-1)*lnM + px*lnX - (px+q)*lnGXM)
		if grad != nil {
			psiPXQ := mathext.Digamma(px + q)
			dp += w * x * (psiPXQ - mathext.Digamma(px) + lnM + lnX - lnGXM)
			dq += w * (psiPXQ - psiQ + lnGamma - lnGXM)
			dg += w * (q/gamma - (px+q)/(gamma+x*m))
		}
	}
	if grad != nil {
		grad[0], grad[1], grad[2] = p*dp, q*dq, gamma*dg
	}
	return ll
}

// FitGammaGamma fits the Gamma-Gamma model by maximum likelihood to the
// histogram's repeat customers (frequency > 0) with their mean spend per
// repeat transaction, as Fader, Hardie and Lee do; customers whose mean spend
// is not positive are left out. The parameters are optimised in log space.
// If the fitted q is at most 1, it returns the model with ErrHeavyTail.
func FitGammaGamma(h *Histogram) (GammaGamma, error) {
	d := newGGData(h)
	if d.n == 0 {
		return GammaGamma{}, fmt.Errorf("fitting Gamma-Gamma: %w", ErrNoCustomers)
	}
	ll := func(x, grad []float64) float64 {
		v := d.logLikelihood(math.Exp(x[0]), math.Exp(x[1]), math.Exp(x[2]), grad)
		for i := range grad {
			grad[i] /= d.n
		}
		return v / d.n
	}
	// Start from p = q = 1 and γ at the mean spend, the scale of the data.
	var mean float64
	for i, m := range d.m {
		mean += d.w[i] * m
	}
	mean /= d.n
	x, err := fitLogSpace([]float64{0, 0, math.Log(mean)}, ll)
	if err != nil {
		return GammaGamma{}, fmt.Errorf("fitting Gamma-Gamma to %d customers: %w", int(d.n), err)
	}
	m := GammaGamma{P: math.Exp(x[0]), Q: math.Exp(x[1]), Gamma: math.Exp(x[2]), Customers: int(d.n)}
	m.LogLikelihood = d.logLikelihood(m.P, m.Q, m.Gamma, nil)
	if m.Q <= 1 {
		return m, fmt.Errorf("fitting Gamma-Gamma to %d customers: %w (q = %g)", m.Customers, ErrHeavyTail, m.Q)
	}
	return m, nil
}

// ExpectedSpend returns the expected spend per transaction of a customer
// with x repeat transactions of mean spend meanSpend (Fader, Hardie and Lee
// 2005, "RFM and CLV"):
//
//	E[M | x, m_x] = (γ + x m_x) p / (p x + q − 1)
//
// a weighted mean of the population's mean γp/(q−1) and the customer's own
// m_x, the weight on m_x growing with x. With x = 0 it is the population's
// mean. It is +Inf when px + q ≤ 1 (only possible when q ≤ 1).
func (m GammaGamma) ExpectedSpend(x, meanSpend float64) float64 {
	if x <= 0 {
		x, meanSpend = 0, 0
	}
	den := m.P*x + m.Q - 1
	if den <= 0 {
		return math.Inf(1)
	}
	return (m.Gamma + x*meanSpend) * m.P / den
}

// CLV returns a customer's expected spend over the next horizonWeeks weeks:
// the BG/NBD expected purchases over the horizon times the Gamma-Gamma
// expected spend per purchase (the two are independent under the models).
// x, tx and T are as for BGNBD.ExpectedPurchases, meanSpend as for
// GammaGamma.ExpectedSpend.
//
// With discountRatePerWeek d > 0 the spend is discounted: the purchases
// expected in week k after T (E[Y(k)] − E[Y(k−1)]; the last week may be
// partial) are discounted by (1+d)^−k. This costs one ₂F₁ per week of
// horizon; with d = 0 CLV costs one.
func CLV(bg BGNBD, gg GammaGamma, horizonWeeks, x, tx, T, meanSpend, discountRatePerWeek float64) float64 {
	spend := gg.ExpectedSpend(x, meanSpend)
	if horizonWeeks <= 0 {
		return 0
	}
	if discountRatePerWeek == 0 {
		return bg.ExpectedPurchases(horizonWeeks, x, tx, T) * spend
	}
	var purchases, prevT, prevE float64
	for k := 1.0; prevT < horizonWeeks; k++ {
		end := min(k, horizonWeeks)
		e := bg.ExpectedPurchases(end, x, tx, T)
		purchases += (e - prevE) / math.Pow(1+discountRatePerWeek, end)
		prevT, prevE = end, e
	}
	return purchases * spend
}
