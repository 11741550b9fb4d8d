package predict

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// DaysPerWeek converts the inputs' days into the models' weeks.
const DaysPerWeek = 7

// Day is a calendar day, counted from 1970-01-01. It is the unit in which
// purchases are recorded; which time zone decides a purchase's day is the
// caller's choice (DayOf uses the time's own location).
type Day int32

// DateOf returns the Day of a calendar date.
func DateOf(year int, month time.Month, day int) Day {
	return Day(time.Date(year, month, day, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// DayOf returns the calendar day of t in t's location.
func DayOf(t time.Time) Day {
	y, m, d := t.Date()
	return DateOf(y, m, d)
}

// Time returns midnight UTC at the start of d.
func (d Day) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// String returns d as YYYY-MM-DD.
func (d Day) String() string { return d.Time().Format(time.DateOnly) }

// Customer is one customer's purchase history as the models see it, in whole
// days at an as-of day.
//
// INVARIANT (checked by Validate): Frequency ≥ 0, 0 ≤ RecencyDays ≤ AgeDays,
// RecencyDays == 0 and MeanSpend == 0 when Frequency == 0, and the spends
// are finite.
type Customer struct {
	// Frequency is the number of repeat purchase days: distinct days with a
	// purchase, minus one (BG/NBD's x).
	Frequency int
	// RecencyDays is the number of days from the first purchase to the last
	// (BG/NBD's t_x, in days).
	RecencyDays int
	// AgeDays is the number of days from the first purchase to the as-of day
	// (BG/NBD's T, in days).
	AgeDays int
	// MeanSpend is the mean spend per repeat purchase day: the spend of all
	// purchase days but the first, divided by Frequency (Gamma-Gamma's m_x).
	// It is 0 when Frequency is 0. The first day is left out as in Fader,
	// Hardie and Lee's "RFM and CLV" (2005), and only so does the fit
	// reproduce their p, q and γ: see TestCDNOWPublishedParameters.
	MeanSpend float64
	// TotalSpend is the spend of all purchase days, the first included: RFM's
	// monetary value.
	TotalSpend float64
}

// ErrInvalidCustomer is returned (wrapped) by Validate and by the Histogram
// methods when a Customer breaks its invariant.
var ErrInvalidCustomer = errors.New("predict: invalid customer")

// Validate reports whether c keeps the Customer invariant.
func (c Customer) Validate() error {
	switch {
	case c.Frequency < 0:
		return fmt.Errorf("%w: frequency %d is negative", ErrInvalidCustomer, c.Frequency)
	case c.RecencyDays < 0 || c.RecencyDays > c.AgeDays:
		return fmt.Errorf("%w: recency %d days is not within 0..age %d days", ErrInvalidCustomer, c.RecencyDays, c.AgeDays)
	case c.Frequency == 0 && (c.RecencyDays != 0 || c.MeanSpend != 0):
		return fmt.Errorf("%w: no repeat purchase but recency %d days, mean spend %v", ErrInvalidCustomer, c.RecencyDays, c.MeanSpend)
	case !finite(c.MeanSpend) || !finite(c.TotalSpend):
		return fmt.Errorf("%w: spends %v and %v are not finite", ErrInvalidCustomer, c.MeanSpend, c.TotalSpend)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Weeks returns the BG/NBD inputs x, t_x and T, with t_x and T in weeks.
func (c Customer) Weeks() (x, tx, T float64) {
	return float64(c.Frequency), float64(c.RecencyDays) / DaysPerWeek, float64(c.AgeDays) / DaysPerWeek
}

// DaysSinceLastPurchase returns the days from the last purchase to the as-of
// day: RFM's recency.
func (c Customer) DaysSinceLastPurchase() int { return c.AgeDays - c.RecencyDays }

// FromPurchases returns the Customer of the purchases on days, spending
// spends (the same length), as of asOf: purchases on asOf count, later ones
// are ignored. Several purchases on one day are one transaction whose spend
// is their sum. The days need not be sorted; every entry counts as a
// purchase.
//
// AgeDays is asOf minus the first purchase day, the convention of the CDNOW
// literature: a customer who first bought on 1997-01-01 is 272 days (38.86
// weeks) old as of 1997-09-30, the T of Fader, Hardie and Lee's data. (Age
// counted to the end of asOf, a day more, gives T = 39 weeks for that
// customer and misses the published a and b by 2–3%: see
// TestCDNOWConventions.)
//
// ok is false when no purchase falls on or before asOf. FromPurchases panics
// if days and spends differ in length.
func FromPurchases(days []Day, spends []float64, asOf Day) (c Customer, ok bool) {
	if len(days) != len(spends) {
		panic(fmt.Sprintf("predict: %d purchase days but %d spends", len(days), len(spends)))
	}
	type purchase struct {
		day   Day
		spend float64
	}
	ps := make([]purchase, 0, len(days))
	for i, d := range days {
		if d <= asOf {
			ps = append(ps, purchase{d, spends[i]})
		}
	}
	if len(ps) == 0 {
		return Customer{}, false
	}
	slices.SortFunc(ps, func(a, b purchase) int { return int(a.day) - int(b.day) })

	first, last := ps[0].day, ps[0].day
	var repeatDays int
	var firstSpend, repeatSpend float64
	for _, p := range ps {
		if p.day == first {
			firstSpend += p.spend
			continue
		}
		if p.day != last {
			repeatDays++
			last = p.day
		}
		repeatSpend += p.spend
	}
	c = Customer{
		Frequency:   repeatDays,
		RecencyDays: int(last - first),
		AgeDays:     int(asOf - first),
		TotalSpend:  firstSpend + repeatSpend,
	}
	if repeatDays > 0 {
		c.MeanSpend = repeatSpend / float64(repeatDays)
	}
	return c, true
}
