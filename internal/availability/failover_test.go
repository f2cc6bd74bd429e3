package availability

import (
	"math"
	"testing"
	"time"
)

// t0 is an arbitrary origin for test timestamps.
var t0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// at returns t0 + d.
func at(d time.Duration) time.Time { return t0.Add(d) }

func TestTimeToDetectAndRepair(t *testing.T) {
	year1 := time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		f        Failover
		detect   time.Duration
		detectOK bool
		repair   time.Duration
		repairOK bool
	}{
		{
			name:     "all phases",
			f:        Failover{LastHeard: at(0), Confirmed: at(7 * time.Second), Recovered: at(90 * time.Second)},
			detect:   7 * time.Second,
			detectOK: true,
			repair:   90 * time.Second,
			repairOK: true,
		},
		{
			name:     "not yet recovered",
			f:        Failover{LastHeard: at(0), Confirmed: at(time.Second)},
			detect:   time.Second,
			detectOK: true,
		},
		{
			name:     "recovered without confirmation",
			f:        Failover{LastHeard: at(0), Recovered: at(time.Minute)},
			repair:   time.Minute,
			repairOK: true,
		},
		{
			name: "last heard missing",
			f:    Failover{Confirmed: at(time.Second), Recovered: at(time.Minute)},
		},
		{
			name: "phases before last heard",
			f:    Failover{LastHeard: at(time.Hour), Confirmed: at(time.Second), Recovered: at(time.Minute)},
		},
		{
			name:     "instantaneous",
			f:        Failover{LastHeard: at(0), Confirmed: at(0), Recovered: at(0)},
			detectOK: true,
			repairOK: true,
		},
		{
			name:     "saturates like Sub",
			f:        Failover{LastHeard: year1, Confirmed: far, Recovered: far},
			detect:   math.MaxInt64,
			detectOK: true,
			repair:   math.MaxInt64,
			repairOK: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if d, ok := TimeToDetect(tc.f); d != tc.detect || ok != tc.detectOK {
				t.Errorf("TimeToDetect = %v, %v; want %v, %v", d, ok, tc.detect, tc.detectOK)
			}
			if d, ok := TimeToRepair(tc.f); d != tc.repair || ok != tc.repairOK {
				t.Errorf("TimeToRepair = %v, %v; want %v, %v", d, ok, tc.repair, tc.repairOK)
			}
		})
	}
}

func TestTimeToDetect_ignoresMonotonicReading(t *testing.T) {
	// A value with a monotonic reading and the same wall time without one
	// must give the same answer as two plain wall-clock values.
	now := time.Now()
	f := Failover{LastHeard: now, Confirmed: now.Round(0).Add(time.Second)}
	if d, ok := TimeToDetect(f); d != time.Second || !ok {
		t.Errorf("TimeToDetect = %v, %v; want 1s, true", d, ok)
	}
}

func TestWindow_Validate(t *testing.T) {
	cases := []struct {
		name string
		w    Window
		want string
	}{
		{name: "valid", w: Window{Start: t0, End: at(time.Hour)}},
		{name: "longest", w: Window{Start: t0, End: t0.Add(math.MaxInt64)}},
		{
			name: "start missing",
			w:    Window{End: t0},
			want: "availability: window start must be set",
		},
		{
			name: "empty",
			w:    Window{Start: t0, End: t0},
			want: "availability: window end (2025-03-01T00:00:00Z) must be after start (2025-03-01T00:00:00Z)",
		},
		{
			name: "reversed",
			w:    Window{Start: at(time.Hour), End: t0},
			want: "availability: window end (2025-03-01T00:00:00Z) must be after start (2025-03-01T01:00:00Z)",
		},
		{
			name: "too long",
			w:    Window{Start: t0, End: time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC)},
			want: "availability: window (2025-03-01T00:00:00Z to 2500-01-01T00:00:00Z) must be at most 2562047h47m16.854775807s long",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.w.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v; want nil", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("Validate() = %v; want %q", err, tc.want)
			}
		})
	}
}
