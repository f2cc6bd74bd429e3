package availability

import (
	"math"
	"testing"
	"time"
)

func TestNines(t *testing.T) {
	cases := []struct {
		name string
		a    float64
		want float64
	}{
		{name: "one nine", a: 0.9, want: 1},
		{name: "two nines", a: 0.99, want: 2},
		{name: "three nines", a: 0.999, want: 3},
		{name: "five nines", a: 0.99999, want: 5},
		{name: "three and a half", a: 1 - math.Sqrt(10)/1e4, want: 3.5},
		{name: "never up", a: 0, want: 0},
		{name: "coin", a: 0.5, want: math.Log10(2)},
		{name: "always up", a: 1, want: math.Inf(1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Nines(tc.a)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want && !closeTo(got, tc.want, 1e-9, 0) {
				t.Errorf("Nines(%v) = %v; want %v", tc.a, got, tc.want)
			}
			if math.Signbit(got) {
				t.Errorf("Nines(%v) = %v; want a non-negative value", tc.a, got)
			}
		})
	}
}

func TestAllowedDowntime(t *testing.T) {
	cases := []struct {
		name      string
		a         float64
		period    time.Duration
		want      time.Duration
		formatted string
	}{
		{name: "three nines a year", a: 0.999, period: Year, want: 8*time.Hour + 45*time.Minute + 57600*time.Millisecond, formatted: "8h46m"},
		{name: "four nines a year", a: 0.9999, period: Year, want: 52*time.Minute + 35760*time.Millisecond, formatted: "52m36s"},
		{name: "five nines a year", a: 0.99999, period: Year, want: 5*time.Minute + 15576*time.Millisecond, formatted: "5m16s"},
		{name: "six nines a year", a: 0.999999, period: Year, want: 31557600 * time.Microsecond, formatted: "31.6s"},
		{name: "three nines a month", a: 0.999, period: Month, want: 43*time.Minute + 49800*time.Millisecond, formatted: "43m50s"},
		{name: "five nines a month", a: 0.99999, period: Month, want: 26298 * time.Millisecond, formatted: "26.3s"},
		{name: "seven nines a month", a: 0.9999999, period: Month, want: 262980 * time.Microsecond, formatted: "263ms"},
		{name: "never up", a: 0, period: Year, want: Year, formatted: "8766h"},
		{name: "always up", a: 1, period: Year, want: 0, formatted: "0s"},
		{name: "longest period", a: 1e-300, period: math.MaxInt64, want: math.MaxInt64, formatted: "2562047h47m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AllowedDowntime(tc.a, tc.period)
			if err != nil {
				t.Fatal(err)
			}
			// 0.99999 is not exactly representable, so the last few
			// nanoseconds are binary rounding, not arithmetic error.
			if diff := got - tc.want; diff < -time.Microsecond || diff > time.Microsecond {
				t.Errorf("AllowedDowntime(%v, %v) = %v; want %v", tc.a, tc.period, got, tc.want)
			}
			if s := FormatDowntime(got); s != tc.formatted {
				t.Errorf("FormatDowntime(%v) = %q; want %q", got, s, tc.formatted)
			}
		})
	}
}

func TestDowntimePerYearAndMonth(t *testing.T) {
	year, err := DowntimePerYear(0.999)
	if err != nil || year != 31557600*time.Millisecond {
		t.Errorf("DowntimePerYear(0.999) = %v, %v; want 8h45m57.6s", year, err)
	}
	month, err := DowntimePerMonth(0.999)
	if err != nil || month != 2629800*time.Millisecond {
		t.Errorf("DowntimePerMonth(0.999) = %v, %v; want 43m49.8s", month, err)
	}
}

func TestFormatDowntime(t *testing.T) {
	cases := []struct {
		name string
		d    time.Duration
		want string
	}{
		{name: "zero", d: 0, want: "0s"},
		{name: "nanoseconds", d: 7, want: "7ns"},
		{name: "three digits kept", d: 999, want: "999ns"},
		{name: "microseconds", d: 123456, want: "123µs"},
		{name: "rounds up a unit", d: 999600 * time.Microsecond, want: "1s"},
		{name: "seconds", d: 3155760 * time.Microsecond, want: "3.16s"},
		{name: "minute boundary", d: time.Minute, want: "1m"},
		{name: "rounds to the second", d: 59*time.Minute + 59600*time.Millisecond, want: "1h"},
		{name: "whole hours", d: 3 * time.Hour, want: "3h"},
		{name: "hours and minutes", d: 26*time.Hour + 29*time.Minute + 31*time.Second, want: "26h30m"},
		{name: "negative", d: -1500 * time.Millisecond, want: "-1.5s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatDowntime(tc.d); got != tc.want {
				t.Errorf("FormatDowntime(%v) = %q; want %q", tc.d, got, tc.want)
			}
		})
	}
}

func TestNinesAndDowntimeErrors(t *testing.T) {
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{
			name: "Nines a above 1",
			call: func() error { _, err := Nines(1.01); return err },
			want: "availability: a (1.01) must be between 0 and 1",
		},
		{
			name: "Nines a NaN",
			call: func() error { _, err := Nines(math.NaN()); return err },
			want: "availability: a (NaN) must be between 0 and 1",
		},
		{
			name: "AllowedDowntime a negative",
			call: func() error { _, err := AllowedDowntime(-1, Year); return err },
			want: "availability: a (-1) must be between 0 and 1",
		},
		{
			name: "AllowedDowntime empty period",
			call: func() error { _, err := AllowedDowntime(0.9, 0); return err },
			want: "availability: period (0s) must be positive",
		},
		{
			name: "DowntimePerYear a above 1",
			call: func() error { _, err := DowntimePerYear(2); return err },
			want: "availability: a (2) must be between 0 and 1",
		},
		{
			name: "DowntimePerMonth a negative",
			call: func() error { _, err := DowntimePerMonth(-0.5); return err },
			want: "availability: a (-0.5) must be between 0 and 1",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err == nil || err.Error() != tc.want {
				t.Errorf("error = %v; want %q", err, tc.want)
			}
		})
	}
}
