package predict

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestDay(t *testing.T) {
	tests := []struct {
		time time.Time
		want string
	}{
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), "1970-01-01"},
		{time.Date(1997, 9, 30, 23, 59, 59, 0, time.UTC), "1997-09-30"},
		// The day is the one in the time's own location.
		{time.Date(1997, 9, 30, 23, 30, 0, 0, time.FixedZone("UTC-5", -5*3600)), "1997-09-30"},
		{time.Date(1969, 12, 31, 12, 0, 0, 0, time.UTC), "1969-12-31"},
	}
	for _, tt := range tests {
		if got := DayOf(tt.time).String(); got != tt.want {
			t.Errorf("DayOf(%v) = %s, want %s", tt.time, got, tt.want)
		}
	}
	if d := DateOf(1997, time.September, 30) - DateOf(1997, time.January, 1); d != 272 {
		t.Errorf("1997-01-01 to 1997-09-30: %d days, want 272", d)
	}
}

func TestFromPurchases(t *testing.T) {
	jan1 := DateOf(1997, time.January, 1)
	tests := []struct {
		name   string
		days   []Day
		spends []float64
		asOf   Day
		want   Customer
		wantOK bool
	}{
		{"no purchase", nil, nil, jan1, Customer{}, false},
		{"only purchases after as-of", []Day{jan1 + 5}, []float64{10}, jan1, Customer{}, false},
		{"one purchase", []Day{jan1}, []float64{10}, jan1 + 30,
			Customer{AgeDays: 30, TotalSpend: 10}, true},
		{"one purchase on the as-of day", []Day{jan1}, []float64{10}, jan1,
			Customer{TotalSpend: 10}, true},
		{"same day counts once, spends summed", []Day{jan1, jan1, jan1}, []float64{10, 5, 1}, jan1 + 3,
			Customer{AgeDays: 3, TotalSpend: 16}, true},
		// CDNOW customer 1 in the calibration period (its 1997-12-12
		// purchase is after as-of): x = 2, t_x = 213 days = 30.43 weeks,
		// T = 272 days = 38.86 weeks, m_x = (29.73 + 14.96) / 2.
		{"CDNOW customer 1", []Day{jan1, jan1 + 17, DateOf(1997, time.August, 2), DateOf(1997, time.December, 12)},
			[]float64{29.33, 29.73, 14.96, 26.48}, DateOf(1997, time.September, 30),
			Customer{Frequency: 2, RecencyDays: 213, AgeDays: 272, MeanSpend: (29.73 + 14.96) / 2, TotalSpend: 29.33 + 29.73 + 14.96}, true},
		{"unsorted, repeat days merged, first day left out of the mean",
			[]Day{jan1 + 10, jan1, jan1 + 10, jan1 + 4, jan1},
			[]float64{3, 100, 7, 20, 50}, jan1 + 20,
			Customer{Frequency: 2, RecencyDays: 10, AgeDays: 20, MeanSpend: (20 + 10) / 2.0, TotalSpend: 180}, true},
	}
	for _, tt := range tests {
		got, ok := FromPurchases(tt.days, tt.spends, tt.asOf)
		if ok != tt.wantOK || got.Frequency != tt.want.Frequency || got.RecencyDays != tt.want.RecencyDays ||
			got.AgeDays != tt.want.AgeDays || math.Abs(got.MeanSpend-tt.want.MeanSpend) > 1e-9 ||
			math.Abs(got.TotalSpend-tt.want.TotalSpend) > 1e-9 {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
		if ok {
			if err := got.Validate(); err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
		}
	}
	x, tx, T := Customer{Frequency: 2, RecencyDays: 213, AgeDays: 272}.Weeks()
	if x != 2 || math.Abs(tx-30.43) > 0.005 || math.Abs(T-38.86) > 0.005 {
		t.Errorf("Weeks() = %v, %v, %v; want 2, 30.43, 38.86", x, tx, T)
	}
}

func TestFromPurchasesMismatchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for 2 days and 1 spend")
		}
	}()
	FromPurchases([]Day{1, 2}, []float64{1}, 3)
}

func TestCustomerValidate(t *testing.T) {
	tests := []struct {
		c     Customer
		valid bool
	}{
		{Customer{}, true},
		{Customer{Frequency: 3, RecencyDays: 10, AgeDays: 10, MeanSpend: -5}, true}, // refunds may exceed purchases
		{Customer{Frequency: -1}, false},
		{Customer{Frequency: 1, RecencyDays: 11, AgeDays: 10}, false},
		{Customer{Frequency: 1, RecencyDays: -1, AgeDays: 10}, false},
		{Customer{RecencyDays: 1, AgeDays: 10}, false},
		{Customer{AgeDays: 10, MeanSpend: 3}, false},
		{Customer{Frequency: 1, AgeDays: 10, MeanSpend: math.NaN()}, false},
		{Customer{AgeDays: 10, TotalSpend: math.Inf(1)}, false},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if (err == nil) != tt.valid || (err != nil && !errors.Is(err, ErrInvalidCustomer)) {
			t.Errorf("%+v: Validate() = %v, want valid %v", tt.c, err, tt.valid)
		}
	}
}
