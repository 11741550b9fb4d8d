package predict

import (
	"bufio"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const cdnowPath = "../../../shared/data/cdnow/CDNOW_sample.txt"

// cdnowPurchases reads the CDNOW sample: per sample customer id, the purchase
// days and dollar values, in file order.
func cdnowPurchases(tb testing.TB) (ids []int, days map[int][]Day, spends map[int][]float64) {
	tb.Helper()
	f, err := os.Open(cdnowPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	days, spends = map[int][]Day{}, map[int][]float64{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if len(fs) != 5 {
			tb.Fatalf("line %d: %d fields, want 5", line, len(fs))
		}
		id, err1 := strconv.Atoi(fs[1])
		date, err2 := time.Parse("20060102", fs[2])
		dollars, err3 := strconv.ParseFloat(fs[4], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			tb.Fatalf("line %d: %q: %v %v %v", line, sc.Text(), err1, err2, err3)
		}
		if _, ok := days[id]; !ok {
			ids = append(ids, id)
		}
		days[id] = append(days[id], DayOf(date))
		spends[id] = append(spends[id], dollars)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return ids, days, spends
}

// cdnowCalibrationEnd is the last day of the paper's 39-week calibration
// period.
var cdnowCalibrationEnd = DateOf(1997, time.September, 30)

// cdnowHistogram builds the calibration period's histogram through
// FromPurchases, the path the pipeline takes.
func cdnowHistogram(tb testing.TB) *Histogram {
	tb.Helper()
	ids, days, spends := cdnowPurchases(tb)
	h := NewHistogram(cdnowCalibrationEnd)
	for _, id := range ids {
		c, ok := FromPurchases(days[id], spends[id], cdnowCalibrationEnd)
		if !ok {
			tb.Fatalf("customer %d: no purchase in the calibration period", id)
		}
		if err := h.Add(c); err != nil {
			tb.Fatal(err)
		}
	}
	return h
}

func within(got, want, relTol float64) bool { return math.Abs(got-want) <= relTol*math.Abs(want) }

// TestCDNOWPublishedParameters fits the CDNOW calibration period and checks
// the parameters Fader, Hardie and Lee published: BG/NBD (Marketing Science
// 2005) and Gamma-Gamma (JMR 2005, "RFM and CLV").
func TestCDNOWPublishedParameters(t *testing.T) {
	h := cdnowHistogram(t)
	if got := h.Customers(); got != 2357 {
		t.Fatalf("%d customers, want 2357", got)
	}
	bg, err := FitBGNBD(h)
	if err != nil {
		t.Fatal(err)
	}
	gg, err := FitGammaGamma(h)
	if err != nil {
		t.Fatal(err)
	}
	if bg.Customers != 2357 || gg.Customers != 946 {
		t.Errorf("fitted %d and %d customers, want 2357 and 946 (the repeat customers)", bg.Customers, gg.Customers)
	}
	tests := []struct {
		name      string
		got, want float64
		relTol    float64
	}{
		{"BG/NBD r", bg.R, 0.243, 0.01},
		{"BG/NBD alpha", bg.Alpha, 4.414, 0.01},
		{"BG/NBD a", bg.A, 0.793, 0.01},
		{"BG/NBD b", bg.B, 2.426, 0.01},
		{"BG/NBD log-likelihood", bg.LogLikelihood, -9582.4, 0.001},
		{"Gamma-Gamma p", gg.P, 6.25, 0.01},
		{"Gamma-Gamma q", gg.Q, 3.74, 0.01},
		{"Gamma-Gamma gamma", gg.Gamma, 15.44, 0.01},
	}
	for _, tt := range tests {
		dev := 100 * (tt.got - tt.want) / math.Abs(tt.want)
		t.Logf("%-22s %11.5f  published %9.4f  %+.4f%%", tt.name, tt.got, tt.want, dev)
		if !within(tt.got, tt.want, tt.relTol) {
			t.Errorf("%s = %.5f, want %.4f within %.1f%% (off by %+.3f%%)", tt.name, tt.got, tt.want, 100*tt.relTol, dev)
		}
	}

	// Hardie's BG/NBD spreadsheet, with the fitted parameters, as lifetimes
	// tests it (CamDavidsonPilon/lifetimes, tests/test_estimation.py:
	// test_expectation_returns_same_value_Hardie_excel_sheet and
	// test_conditional_expectation_returns_same_value_as_Hardie_excel_sheet).
	// E[X(t)] of a new customer is ExpectedPurchases with x = t_x = T = 0.
	expected := []struct {
		name         string
		t, x, tx, T  float64
		want, absTol float64
	}{
		{"E[X(0.1429)]", 0.1429, 0, 0, 0, 0.0078, 1e-3},
		{"E[X(1)]", 1, 0, 0, 0, 0.0532, 1e-3},
		{"E[X(3)]", 3, 0, 0, 0, 0.1506, 1e-3},
		{"E[X(31.8571)]", 31.8571, 0, 0, 0, 1.0405, 1e-3},
		{"E[X(32)]", 32, 0, 0, 0, 1.0437, 1e-3},
		{"E[X(78)]", 78, 0, 0, 0, 1.8576, 1e-3},
		{"E[Y(39) | 2, 30.43, 38.86]", 39, 2, 30.43, 38.86, 1.226, 1e-3},
	}
	for _, e := range expected {
		if got := bg.ExpectedPurchases(e.t, e.x, e.tx, e.T); math.Abs(got-e.want) > e.absTol {
			t.Errorf("%s = %.5f, want %.4f ± %g", e.name, got, e.want, e.absTol)
		}
	}
}

// TestCDNOWConventions pins why FromPurchases counts as it does: of the
// plausible readings of the paper's data, only T counted to the calibration
// period's last day (T = 38.86 weeks for a first purchase on 1997-01-01,
// the T of Hardie's spreadsheet) and the mean spend of the repeat
// transactions alone reproduce the published parameters.
func TestCDNOWConventions(t *testing.T) {
	ids, days, spends := cdnowPurchases(t)
	tests := []struct {
		name string
		// ageExtra days are added to every T; allSpend takes the mean over
		// all transactions, the first included.
		ageExtra int
		allSpend bool
		bgMatch  bool // all four BG/NBD parameters within 1%
		ggMatch  bool // all three Gamma-Gamma parameters within 1%
	}{
		{"T to 1997-09-30, repeat spend only (FromPurchases)", 0, false, true, true},
		{"T to the end of 1997-09-30 (39 weeks)", 1, false, false, true},
		{"mean spend of all transactions", 0, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHistogram(cdnowCalibrationEnd + Day(tt.ageExtra))
			for _, id := range ids {
				c, _ := FromPurchases(days[id], spends[id], cdnowCalibrationEnd)
				c.AgeDays += tt.ageExtra
				if tt.allSpend && c.Frequency > 0 {
					c.MeanSpend = c.TotalSpend / float64(c.Frequency+1)
				}
				if err := h.Add(c); err != nil {
					t.Fatal(err)
				}
			}
			bg, err := FitBGNBD(h)
			if err != nil {
				t.Fatal(err)
			}
			gg, err := FitGammaGamma(h)
			if err != nil {
				t.Fatal(err)
			}
			bgMatch := within(bg.R, 0.243, 0.01) && within(bg.Alpha, 4.414, 0.01) && within(bg.A, 0.793, 0.01) && within(bg.B, 2.426, 0.01)
			ggMatch := within(gg.P, 6.25, 0.01) && within(gg.Q, 3.74, 0.01) && within(gg.Gamma, 15.44, 0.01)
			t.Logf("r %.4f α %.4f a %.4f b %.4f LL %.2f; p %.3f q %.3f γ %.3f", bg.R, bg.Alpha, bg.A, bg.B, bg.LogLikelihood, gg.P, gg.Q, gg.Gamma)
			if bgMatch != tt.bgMatch || ggMatch != tt.ggMatch {
				t.Errorf("BG/NBD matches %v, Gamma-Gamma matches %v; want %v, %v", bgMatch, ggMatch, tt.bgMatch, tt.ggMatch)
			}
		})
	}
}

// TestCDNOWExpectedSpend checks FromPurchases and ExpectedSpend together
// against Hardie's Gamma-Gamma spreadsheet (brucehardie.com/notes/025), as
// lifetimes tests it (tests/test_estimation.py:
// test_conditional_expected_average_profit): the first ten CDNOW customers'
// expected spend per transaction at p = 6.25, q = 3.74, γ = 15.44.
func TestCDNOWExpectedSpend(t *testing.T) {
	_, days, spends := cdnowPurchases(t)
	gg := GammaGamma{P: 6.25, Q: 3.74, Gamma: 15.44}
	want := []float64{24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17}
	for i, w := range want {
		id := i + 1
		c, ok := FromPurchases(days[id], spends[id], cdnowCalibrationEnd)
		if !ok {
			t.Fatalf("customer %d: no purchase", id)
		}
		// lifetimes' tolerance: Hardie's figures come from unrounded
		// parameters.
		if got := gg.ExpectedSpend(float64(c.Frequency), c.MeanSpend); math.Abs(got-w) > 0.1 {
			t.Errorf("customer %d (x = %d, m_x = %.2f): expected spend %.2f, want %.2f", id, c.Frequency, c.MeanSpend, got, w)
		}
	}
}
