package predict

import (
	"math"
	"testing"
)

// publishedGG are the Gamma-Gamma parameters Fader, Hardie and Lee (2005)
// fitted to CDNOW.
var publishedGG = GammaGamma{P: 6.25, Q: 3.74, Gamma: 15.44}

func TestExpectedSpend(t *testing.T) {
	tests := []struct {
		name         string
		m            GammaGamma
		x, meanSpend float64
		want         float64
	}{
		// γp/(q−1): the population's mean spend per transaction.
		{"no repeat purchase", publishedGG, 0, 0, 15.44 * 6.25 / 2.74},
		{"no repeat purchase ignores its mean", publishedGG, 0, 1000, 15.44 * 6.25 / 2.74},
		{"x = 2", publishedGG, 2, 22.345, (15.44 + 2*22.345) * 6.25 / (6.25*2 + 2.74)},
		// With many transactions the customer's own mean dominates.
		{"x = 10000", publishedGG, 10000, 50, (15.44 + 10000*50) * 6.25 / (6.25*10000 + 2.74)},
		{"q < 1: infinite population mean", GammaGamma{P: 2, Q: 0.5, Gamma: 10}, 0, 0, math.Inf(1)},
		{"q < 1 with purchases: finite", GammaGamma{P: 2, Q: 0.5, Gamma: 10}, 1, 20, (10 + 20) * 2 / 1.5},
	}
	for _, tt := range tests {
		if got := tt.m.ExpectedSpend(tt.x, tt.meanSpend); !(got == tt.want || within(got, tt.want, 1e-14)) {
			t.Errorf("%s: ExpectedSpend(%v, %v) = %v, want %v", tt.name, tt.x, tt.meanSpend, got, tt.want)
		}
	}
}

func TestCLV(t *testing.T) {
	tests := []struct {
		name               string
		horizon, x, tx, T  float64
		meanSpend          float64
		discount, wantRate float64 // wantRate: CLV / (E[Y] × E[M]); 0 means check bounds only
	}{
		{"undiscounted is the product", 39, 2, 30.43, 38.86, 22.345, 0, 1},
		{"undiscounted, new customer", 52, 0, 0, 0, 0, 0, 1},
		{"zero horizon", 0, 2, 30.43, 38.86, 22.345, 0.01, 0},
		{"discounted, whole weeks", 52, 2, 30.43, 38.86, 22.345, 0.002, 0},
		{"discounted, partial last week", 52.5, 5, 20, 39, 40, 0.01, 0},
	}
	for _, tt := range tests {
		clv := CLV(published, publishedGG, tt.horizon, tt.x, tt.tx, tt.T, tt.meanSpend, tt.discount)
		product := published.ExpectedPurchases(tt.horizon, tt.x, tt.tx, tt.T) * publishedGG.ExpectedSpend(tt.x, tt.meanSpend)
		switch {
		case tt.horizon == 0:
			if clv != 0 {
				t.Errorf("%s: CLV = %v, want 0", tt.name, clv)
			}
		case tt.wantRate != 0:
			if !within(clv, product*tt.wantRate, 1e-14) {
				t.Errorf("%s: CLV = %v, want %v", tt.name, clv, product*tt.wantRate)
			}
		default:
			// Discounting lowers the value, but by less than discounting
			// everything by the whole horizon would.
			floor := product / math.Pow(1+tt.discount, tt.horizon)
			if !(clv < product && clv > floor) {
				t.Errorf("%s: CLV = %v, want within (%v, %v)", tt.name, clv, floor, product)
			}
			// A vanishing rate gives the undiscounted value (the weekly
			// differences telescope).
			if c := CLV(published, publishedGG, tt.horizon, tt.x, tt.tx, tt.T, tt.meanSpend, 1e-12); !within(c, product, 1e-9) {
				t.Errorf("%s: CLV at a vanishing rate = %v, want %v", tt.name, c, product)
			}
		}
	}
}

// TestFitGammaGammaSimulated fits spends drawn from the Gamma-Gamma itself.
func TestFitGammaGammaSimulated(t *testing.T) {
	truth := GammaGamma{P: 4, Q: 5, Gamma: 30}
	h := simulate(BGNBD{R: 2, Alpha: 4, A: 1, B: 6}, truth, 10000, 52*7, 2)
	m, err := FitGammaGamma(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fitted %+v", m)
	for _, p := range []struct {
		name      string
		got, want float64
	}{{"p", m.P, truth.P}, {"q", m.Q, truth.Q}, {"gamma", m.Gamma, truth.Gamma}} {
		if !within(p.got, p.want, 0.15) {
			t.Errorf("%s = %.4f, drawn from %.4f", p.name, p.got, p.want)
		}
	}
}
