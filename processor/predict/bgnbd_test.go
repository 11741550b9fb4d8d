package predict

import (
	"errors"
	"math"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
)

// published are the BG/NBD parameters Fader, Hardie and Lee (2005) fitted to
// CDNOW.
var published = BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}

// TestBGNBDScores checks ExpectedPurchases and PAlive against equation (10)
// and the P(alive) expression evaluated directly (without the Euler
// transformation) in 50-digit arithmetic with mpmath's hyp2f1:
//
//	E = (a+b+x−1)/(a−1) (1 − ((α+T)/(α+T+t))^(r+x) hyp2f1(r+x, b+x, a+b+x−1, t/(α+T+t)))
//	    / (1 + [x>0] a/(b+x−1) ((α+T)/(α+t_x))^(r+x))
//
// The cases cover a < 1 (CDNOW), a > 1, a close to 1, new customers
// (x = t_x = T = 0, the paper's E[X(t)]), frequent buyers (x = 100) and
// horizons of 100 years, where z = t/(α+T+t) is close to 1.
func TestBGNBDScores(t *testing.T) {
	params := map[string]BGNBD{
		"published": published,
		"aAbove1":   {R: 1.2, Alpha: 10, A: 2.5, B: 4},
		"aNear1":    {R: 0.5, Alpha: 3, A: 1.0001, B: 2},
	}
	tests := []struct {
		params            string
		t, x, tx, T       float64
		wantE, wantPAlive float64
	}{
		{"published", 39, 2, 30.43, 38.86, 1.2260281747671445, 0.72657857008067291},
		{"published", 39, 0, 0, 38.86, 0.19509805201126264, 1.0},
		{"published", 1, 0, 0, 0, 0.053267891171658282, 1.0},
		{"published", 0.1429, 0, 0, 0, 0.0078283475160721634, 1.0},
		{"published", 78, 0, 0, 0, 1.8605190579427686, 1.0},
		{"published", 52, 10, 35, 39, 7.6800583067878493, 0.84260318864173349},
		{"published", 52, 100, 38, 39, 79.704171188786715, 0.92520411100508671},
		{"published", 520, 3, 10, 20, 9.1036054978365099, 0.50262683977565514},
		{"published", 5200, 1, 1, 2, 23.813968378995733, 0.71248702148566673},
		{"published", 4.3, 25, 30.86, 31, 2.8421504057355907, 0.96790056875674314},
		{"published", 13, 1, 0.5, 70, 0.019812826262818899, 0.094512102297188446},
		{"aAbove1", 39, 2, 30.43, 38.86, 0.89552120039051882, 0.52176344947539869},
		{"aAbove1", 39, 0, 0, 38.86, 0.72411934185880464, 1.0},
		{"aAbove1", 1, 0, 0, 0, 0.11516254185941255, 1.0},
		{"aAbove1", 0.1429, 0, 0, 0, 0.017045058791526662, 1.0},
		{"aAbove1", 78, 0, 0, 0, 2.4560052211619106, 1.0},
		{"aAbove1", 52, 10, 35, 39, 3.9324115814225595, 0.66705410764527427},
		{"aAbove1", 52, 100, 38, 39, 38.302168281885092, 0.83641147302803801},
		{"aAbove1", 520, 3, 10, 20, 1.6516717243336835, 0.30417717612368793},
		{"aAbove1", 5200, 1, 1, 2, 2.4630972574398035, 0.5691977143675216},
		{"aAbove1", 4.3, 25, 30.86, 31, 2.2472314973107466, 0.91103167613648878},
		{"aAbove1", 13, 1, 0.5, 70, 0.0059352371510606794, 0.018031669994983927},
		{"aNear1", 39, 2, 30.43, 38.86, 1.1364801991160443, 0.63095588376191362},
		{"aNear1", 39, 0, 0, 38.86, 0.38607206548349733, 1.0},
		{"aNear1", 1, 0, 0, 0, 0.15442397039288106, 1.0},
		{"aNear1", 0.1429, 0, 0, 0, 0.023538523595683634, 1.0},
		{"aNear1", 78, 0, 0, 0, 3.1684165103098113, 1.0},
		{"aNear1", 52, 10, 35, 39, 6.9748595967217547, 0.79362545985686822},
		{"aNear1", 52, 100, 38, 39, 73.172221561375046, 0.89963870222544781},
		{"aNear1", 520, 3, 10, 20, 4.8964910110737009, 0.35189665258314487},
		{"aNear1", 5200, 1, 1, 2, 10.70612812709878, 0.58863656416867747},
		{"aNear1", 4.3, 25, 30.86, 31, 2.9213008440429961, 0.95901811291358382},
		{"aNear1", 13, 1, 0.5, 70, 0.005210201623899628, 0.020562739166909996},
	}
	for _, tt := range tests {
		m := params[tt.params]
		// With a within 1e-4 of 1 the bracket cancels to about 1e-4 of its
		// terms, so about four digits fewer survive.
		tol := 1e-10
		if tt.params == "aNear1" {
			tol = 1e-7
		}
		if got := m.ExpectedPurchases(tt.t, tt.x, tt.tx, tt.T); !within(got, tt.wantE, tol) {
			t.Errorf("%s: ExpectedPurchases(%v, %v, %v, %v) = %.17g, want %.17g (rel. error %.1e)",
				tt.params, tt.t, tt.x, tt.tx, tt.T, got, tt.wantE, math.Abs(got-tt.wantE)/tt.wantE)
		}
		if got := m.PAlive(tt.x, tt.tx, tt.T); !within(got, tt.wantPAlive, 1e-13) {
			t.Errorf("%s: PAlive(%v, %v, %v) = %.17g, want %.17g", tt.params, tt.x, tt.tx, tt.T, got, tt.wantPAlive)
		}
	}
}

// TestBGNBDScoreProperties checks what must hold everywhere: P(alive) in
// [0, 1] and 1 without a repeat purchase, expected purchases zero at t = 0,
// finite, non-negative and increasing in t — over a grid that includes
// extreme frequencies and ages.
func TestBGNBDScoreProperties(t *testing.T) {
	for _, m := range []BGNBD{published, {R: 1.2, Alpha: 10, A: 2.5, B: 4}, {R: 0.05, Alpha: 0.5, A: 0.2, B: 0.3}} {
		if got := m.PAlive(0, 0, 39); got != 1 {
			t.Errorf("%+v: PAlive without repeat purchases = %v, want 1", m, got)
		}
		for _, x := range []float64{0, 1, 2, 5, 20, 100, 1000} {
			for _, T := range []float64{0, 1, 39, 500} {
				for _, tx := range []float64{0, T / 2, T} {
					if x == 0 && tx != 0 {
						continue
					}
					p := m.PAlive(x, tx, T)
					if !(p >= 0 && p <= 1) {
						t.Errorf("%+v: PAlive(%v, %v, %v) = %v", m, x, tx, T, p)
					}
					if e := m.ExpectedPurchases(0, x, tx, T); e != 0 {
						t.Errorf("%+v: ExpectedPurchases(0, %v, %v, %v) = %v, want 0", m, x, tx, T, e)
					}
					prev := 0.0
					for _, h := range []float64{1.0 / 7, 1, 4, 39, 52, 520} {
						e := m.ExpectedPurchases(h, x, tx, T)
						if math.IsNaN(e) || math.IsInf(e, 0) || e < prev {
							t.Errorf("%+v: ExpectedPurchases(%v, %v, %v, %v) = %v after %v", m, h, x, tx, T, e, prev)
						}
						prev = e
					}
				}
			}
		}
	}
}

// TestPAliveFrequencyParadox pins the BG/NBD's "increasing frequency
// paradox" (BTYD's bgnbd.PAlive example): at a fixed recency, the more a
// customer bought, the likelier their silence since means they dropped out.
func TestPAliveFrequencyParadox(t *testing.T) {
	prev := 1.0
	for x := 5.0; x <= 20; x++ {
		p := published.PAlive(x, 30, 39)
		if p >= prev {
			t.Errorf("PAlive(%v, 30, 39) = %v, not below PAlive(%v, 30, 39) = %v", x, p, x-1, prev)
		}
		prev = p
	}
}

// naiveLogLikelihood is the BG/NBD log-likelihood of one customer straight
// from equation (6) of the paper, with Beta and Gamma functions and no
// logarithmic care: a check on the A1..A4 form for moderate inputs.
func naiveLogLikelihood(m BGNBD, x, tx, T float64) float64 {
	beta := func(a, b float64) float64 { return math.Gamma(a) * math.Gamma(b) / math.Gamma(a+b) }
	l := beta(m.A, m.B+x) / beta(m.A, m.B) * math.Gamma(m.R+x) * math.Pow(m.Alpha, m.R) / (math.Gamma(m.R) * math.Pow(m.Alpha+T, m.R+x))
	if x > 0 {
		l += beta(m.A+1, m.B+x-1) / beta(m.A, m.B) * math.Gamma(m.R+x) * math.Pow(m.Alpha, m.R) / (math.Gamma(m.R) * math.Pow(m.Alpha+tx, m.R+x))
	}
	return math.Log(l)
}

func TestBGNBDLogLikelihood(t *testing.T) {
	customers := []Customer{
		{Frequency: 0, RecencyDays: 0, AgeDays: 272},
		{Frequency: 0, RecencyDays: 0, AgeDays: 0},
		{Frequency: 2, RecencyDays: 213, AgeDays: 272},
		{Frequency: 2, RecencyDays: 213, AgeDays: 272},
		{Frequency: 1, RecencyDays: 5, AgeDays: 200},
		{Frequency: 7, RecencyDays: 250, AgeDays: 260},
		{Frequency: 15, RecencyDays: 30, AgeDays: 270},
	}
	h := NewHistogram(0)
	for _, c := range customers {
		if err := h.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	d := newBGNBDData(h)
	for _, m := range []BGNBD{published, {R: 1.2, Alpha: 10, A: 2.5, B: 4}} {
		var want float64
		for _, c := range customers {
			want += naiveLogLikelihood(m, float64(c.Frequency), float64(c.RecencyDays)/7, float64(c.AgeDays)/7)
		}
		if got := d.logLikelihood(m.R, m.Alpha, m.A, m.B, nil); !within(got, want, 1e-12) {
			t.Errorf("%+v: log-likelihood %.15g, want %.15g", m, got, want)
		}
	}
}

// TestLogLikelihoodGradients checks the analytic gradients the fits use
// against central finite differences.
func TestLogLikelihoodGradients(t *testing.T) {
	h := cdnowHistogram(t)
	bg, gg := newBGNBDData(h), newGGData(h)
	tests := []struct {
		name string
		ll   func(x, grad []float64) float64
		at   []float64
	}{
		{"BG/NBD", func(x, g []float64) float64 {
			return bg.logLikelihood(math.Exp(x[0]), math.Exp(x[1]), math.Exp(x[2]), math.Exp(x[3]), g)
		}, []float64{-1.4, 1.5, -0.2, 0.9}},
		{"BG/NBD far", func(x, g []float64) float64 {
			return bg.logLikelihood(math.Exp(x[0]), math.Exp(x[1]), math.Exp(x[2]), math.Exp(x[3]), g)
		}, []float64{1, -2, 2, -1}},
		{"Gamma-Gamma", func(x, g []float64) float64 {
			return gg.logLikelihood(math.Exp(x[0]), math.Exp(x[1]), math.Exp(x[2]), g)
		}, []float64{1.8, 1.3, 2.7}},
		{"Gamma-Gamma far", func(x, g []float64) float64 {
			return gg.logLikelihood(math.Exp(x[0]), math.Exp(x[1]), math.Exp(x[2]), g)
		}, []float64{-1, 3, 0}},
	}
	for _, tt := range tests {
		// Per customer, as the fits optimise it, so that the finite
		// differences' rounding error (≈ ε|ll|/h) stays far below the
		// tolerance.
		n := float64(h.Customers())
		got := make([]float64, len(tt.at))
		tt.ll(tt.at, got)
		for i := range got {
			got[i] /= n
		}
		want := fd.Gradient(nil, func(x []float64) float64 { return tt.ll(x, nil) / n }, tt.at, &fd.Settings{Formula: fd.Central})
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-8+1e-6*math.Abs(want[i]) {
				t.Errorf("%s: gradient %v, finite differences %v", tt.name, got, want)
				break
			}
		}
	}
}

// TestFitBGNBDSimulated fits data drawn from the BG/NBD itself: the fit
// must recover the parameters it was drawn from, as a check that does not
// lean on CDNOW.
func TestFitBGNBDSimulated(t *testing.T) {
	truth := BGNBD{R: 0.5, Alpha: 6, A: 1.5, B: 3}
	h := simulateBGNBD(truth, 20000, 52*7, 1)
	m, err := FitBGNBD(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fitted %+v", m)
	for _, p := range []struct {
		name      string
		got, want float64
	}{{"r", m.R, truth.R}, {"alpha", m.Alpha, truth.Alpha}, {"a", m.A, truth.A}, {"b", m.B, truth.B}} {
		// 20,000 customers pin the parameters to several percent (b and a
		// are the loosest), and whole days bias the purchase rate r/α a few
		// percent low (same-day purchases merge, times round down).
		if !within(p.got, p.want, 0.15) {
			t.Errorf("%s = %.4f, drawn from %.4f", p.name, p.got, p.want)
		}
	}
}

// errAny stands for any error in the fit tests' tables.
var errAny = errors.New("any error")

// TestFitDegenerate checks that histograms which do not determine the
// parameters (the maximum lies at a parameter's 0 or ∞) fail with an error
// instead of publishing absurd parameters, and never panic or return NaN.
func TestFitDegenerate(t *testing.T) {
	tests := []struct {
		name         string
		customers    []Customer
		bgErr, ggErr error
	}{
		{"empty", nil, ErrNoCustomers, ErrNoCustomers},
		{"no repeat purchases",
			[]Customer{{AgeDays: 10, TotalSpend: 5}, {AgeDays: 100, TotalSpend: 5}, {AgeDays: 50}},
			ErrNotIdentified, ErrNoCustomers},
		{"one customer",
			[]Customer{{Frequency: 2, RecencyDays: 10, AgeDays: 20, MeanSpend: 5, TotalSpend: 15}},
			ErrNotIdentified, ErrNotIdentified},
		{"all bought today",
			[]Customer{{}, {}, {Frequency: 1, RecencyDays: 1, AgeDays: 1, MeanSpend: 1, TotalSpend: 2}},
			ErrNotIdentified, ErrNotIdentified},
		// Nobody dropped out: a tends to 0, yet the fit stays in range; the
		// spends show no heterogeneity, so q and γ run off together.
		{"all alive",
			[]Customer{{Frequency: 5, RecencyDays: 100, AgeDays: 100, MeanSpend: 5}, {Frequency: 10, RecencyDays: 99, AgeDays: 100, MeanSpend: 7}, {Frequency: 1, RecencyDays: 50, AgeDays: 50, MeanSpend: 9}},
			nil, errAny},
	}
	check := func(name, model string, params []float64, err, want error) {
		switch {
		case want == errAny && err == nil, want != errAny && !errors.Is(err, want):
			t.Errorf("%s: fitting %s: %v, want %v", name, model, err, want)
		case err == nil:
			for _, p := range params {
				if !(p > 0) || math.IsInf(p, 0) {
					t.Errorf("%s: fitting %s: parameters %v", name, model, params)
				}
			}
		}
	}
	for _, tt := range tests {
		h := histogramOf(t, 1000, tt.customers)
		bg, err := FitBGNBD(h)
		check(tt.name, "BG/NBD", []float64{bg.R, bg.Alpha, bg.A, bg.B}, err, tt.bgErr)
		gg, err := FitGammaGamma(h)
		check(tt.name, "Gamma-Gamma", []float64{gg.P, gg.Q, gg.Gamma}, err, tt.ggErr)
	}
}

// TestExpectedPurchasesEdges checks ExpectedPurchases where equation (10)
// is 0/0 (a = 1; a + b = 1 with x = 0) and where a + b < 1 makes the
// hypergeometric function's c negative, against mpmath at 60 digits (with
// a = 1 + 1e-35 and b = 0.7 + 1e-35 standing for the limits).
func TestExpectedPurchasesEdges(t *testing.T) {
	params := map[string]BGNBD{
		"smallAB": {R: 0.05, Alpha: 0.5, A: 0.2, B: 0.3},
		"aOne":    {R: 0.5, Alpha: 3, A: 1, B: 2},
		"cZero":   {R: 0.4, Alpha: 2, A: 0.3, B: 0.7},
	}
	tests := []struct {
		params      string
		t, x, tx, T float64
		want        float64
	}{
		{"smallAB", 39, 0, 0, 38.86, 0.042650324278746735},
		{"smallAB", 1, 0, 0, 0, 0.078430176285107668},
		{"smallAB", 52, 2, 30, 39, 1.915103685175374},
		{"smallAB", 520, 1, 1, 2, 39.837757190304793},
		{"aOne", 39, 0, 0, 38.86, 0.38607679934209657},
		{"aOne", 1, 0, 0, 0, 0.15442474867428456},
		{"aOne", 52, 2, 30, 39, 1.3943026982900095},
		{"aOne", 520, 1, 1, 2, 6.6964015578837466},
		{"cZero", 39, 0, 0, 38.86, 0.32911959994103381},
		{"cZero", 1, 0, 0, 0, 0.18314823173031045},
		{"cZero", 52, 2, 30, 39, 1.9820562097192688},
		{"cZero", 520, 1, 1, 2, 33.351028737193374},
	}
	for _, tt := range tests {
		m := params[tt.params]
		if got := m.ExpectedPurchases(tt.t, tt.x, tt.tx, tt.T); !within(got, tt.want, 1e-8) {
			t.Errorf("%s: ExpectedPurchases(%v, %v, %v, %v) = %.17g, want %.17g", tt.params, tt.t, tt.x, tt.tx, tt.T, got, tt.want)
		}
	}
}
