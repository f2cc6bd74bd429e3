package probe

import (
	"testing"
	"time"
)

func TestNotReadyFailoverDue(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ready := func(s int) Verdict { return Verdict{Ready: true, Since: at(s)} }
	notReady := func(s int, check string) Verdict {
		return Verdict{FailingCheck: check, Reason: check + " down", Since: at(s)}
	}
	tests := []struct {
		name    string
		history []Verdict
		now     int
		after   time.Duration
		want    NotReadyFailover
	}{
		{name: "no history", now: 100, after: time.Minute},
		{name: "ready", history: []Verdict{notReady(0, "kubelet"), ready(10)}, now: 100, after: time.Minute},
		{
			name:    "not ready long enough",
			history: []Verdict{ready(0), notReady(10, "kubelet")},
			now:     70, after: time.Minute,
			want: NotReadyFailover{Due: true, NotReadySince: at(10), FailingCheck: "kubelet", Reason: "kubelet down"},
		},
		{
			name:    "not ready, bound not reached",
			history: []Verdict{ready(0), notReady(10, "kubelet")},
			now:     69, after: time.Minute,
			want: NotReadyFailover{NotReadySince: at(10), FailingCheck: "kubelet", Reason: "kubelet down"},
		},
		{
			name:    "off",
			history: []Verdict{notReady(0, "kubelet")},
			now:     1000, after: 0,
			want: NotReadyFailover{NotReadySince: at(0), FailingCheck: "kubelet", Reason: "kubelet down"},
		},
		{
			name:    "spell counts from its first verdict, check from the latest",
			history: []Verdict{ready(0), notReady(10, "kubelet"), notReady(40, "container-runtime")},
			now:     70, after: time.Minute,
			want: NotReadyFailover{Due: true, NotReadySince: at(10), FailingCheck: "container-runtime", Reason: "container-runtime down"},
		},
		{
			name:    "a ready verdict restarts the spell",
			history: []Verdict{notReady(0, "kubelet"), ready(30), notReady(50, "kubelet")},
			now:     100, after: time.Minute,
			want: NotReadyFailover{NotReadySince: at(50), FailingCheck: "kubelet", Reason: "kubelet down"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NotReadyFailoverDue(tc.history, at(tc.now), tc.after); got != tc.want {
				t.Fatalf("NotReadyFailoverDue = %+v, want %+v", got, tc.want)
			}
		})
	}
}
