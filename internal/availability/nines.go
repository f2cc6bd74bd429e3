package availability

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Year is the Julian year that availability tables usually assume,
// 365.25 days; Month is a twelfth of it, 30.4375 days.
const (
	Year  = 8766 * time.Hour
	Month = Year / 12
)

// Nines returns −log10(1 − a), the number of nines in a: 2 for 0.99, 3 for
// 0.999. It is +Inf for a = 1 and 0 for a = 0.
func Nines(a float64) (float64, error) {
	if err := checkProbability(a); err != nil {
		return 0, err
	}
	switch a {
	case 0:
		return 0, nil
	case 1:
		return math.Inf(1), nil
	}
	return -math.Log10(1 - a), nil
}

// AllowedDowntime returns (1 − a)·period, the downtime that availability a
// allows over period, rounded to the nanosecond.
func AllowedDowntime(a float64, period time.Duration) (time.Duration, error) {
	if err := checkProbability(a); err != nil {
		return 0, err
	}
	if period <= 0 {
		return 0, fmt.Errorf("availability: period (%s) must be positive", period)
	}
	d := math.Round((1 - a) * float64(period))
	if d >= float64(period) {
		// Also keeps a period near the largest Duration from overflowing
		// the conversion back.
		return period, nil
	}
	return time.Duration(d), nil
}

// DowntimePerYear returns the downtime per Year that availability a allows.
func DowntimePerYear(a float64) (time.Duration, error) {
	return AllowedDowntime(a, Year)
}

// DowntimePerMonth returns the downtime per Month that availability a
// allows.
func DowntimePerMonth(a float64) (time.Duration, error) {
	return AllowedDowntime(a, Month)
}

// FormatDowntime renders a downtime for people: to the minute from an hour
// up, to the second from a minute up, and to three significant digits below
// that ("8h46m", "5m16s", "31.6s", "316ms"). Negative durations are printed
// unrounded.
func FormatDowntime(d time.Duration) string {
	switch {
	case d < 0:
		return d.String()
	case d >= time.Hour:
		d = d.Round(time.Minute)
	case d >= time.Minute:
		d = d.Round(time.Second)
	default:
		unit := time.Duration(1)
		for v := d; v >= 1000; v /= 10 {
			unit *= 10
		}
		d = d.Round(unit)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
