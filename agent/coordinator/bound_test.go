package coordinator

import (
	"testing"
	"time"
)

// testFenceTerms are the agents' fence settings in the coordinator's tests:
// a minimum bound of 16 s (2 + 10 + 2 + 0, and the 2 s margin).
var testFenceTerms = FenceTerms{IsolationTimeout: 2 * time.Second, After: 10 * time.Second, CheckInterval: time.Second}

// withFence returns cfg with testFenceTerms.
func withFence(cfg Config) Config {
	cfg.Fence = testFenceTerms
	return cfg
}

func TestFenceTerms_minBound(t *testing.T) {
	terms := FenceTerms{IsolationTimeout: 5 * time.Second, APICheck: 3 * time.Second, After: 10 * time.Second, CheckInterval: time.Second,
		ActionTime: 10 * time.Second, ActionFlag: "--fence-command-timeout"}
	// 5 + 10 + 2 + 10 = 27 s, margin max(2 s, 2.7 s).
	if got, want := terms.MinBound(), 29700*time.Millisecond; got != want {
		t.Errorf("MinBound() = %s, want %s", got, want)
	}
	// The node is isolated only once its API check failed too: a slower
	// API check than the isolation timeout sets the pace.
	slowAPI := terms
	slowAPI.APICheck = 15 * time.Second
	if got, want := slowAPI.MinBound(), 40700*time.Millisecond; got != want {
		t.Errorf("MinBound() with a 10s+5s API check = %s, want %s (15 + 10 + 2 + 10, margin 3.7)", got, want)
	}
	small := FenceTerms{IsolationTimeout: 2 * time.Second, After: 2 * time.Second, CheckInterval: time.Second}
	if got, want := small.MinBound(), 8*time.Second; got != want {
		t.Errorf("MinBound() of small terms = %s, want %s (2+2+2+0 and the 2 s least margin)", got, want)
	}
	for _, tc := range []struct {
		bound time.Duration
		want  string
	}{
		{0, ""},
		{29700 * time.Millisecond, ""},
		{time.Minute, ""},
		// The recipe that ran db-0 on two nodes: a bound just above --fence-after.
		{15 * time.Second, "coordinator: --fence-bound (15s) must be 0 (never) or at least 29.7s: max(--isolation-timeout (5s), apiserver check period + timeout (3s)) + --fence-after (10s) + 2 x fence check interval (1s) + fence action (10s, --fence-command-timeout) + margin (2.7s)"},
		{-time.Second, "coordinator: --fence-bound (-1s) must be 0 (never) or at least 29.7s: max(--isolation-timeout (5s), apiserver check period + timeout (3s)) + --fence-after (10s) + 2 x fence check interval (1s) + fence action (10s, --fence-command-timeout) + margin (2.7s)"},
	} {
		err := validateFenceBound(tc.bound, terms)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("validateFenceBound(%s) = %q, want %q", tc.bound, got, tc.want)
		}
	}
}
