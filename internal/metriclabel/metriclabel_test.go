package metriclabel

import (
	"regexp"
	"testing"
)

func TestValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"dry-run", "dry_run"},
		{"agent-down", "agent_down"},
		{"not-ready", "not_ready"},
		{"PodsNotReady", "pods_not_ready"},
		{"AwaitingFence", "awaiting_fence"},
		{"Confirmed", "confirmed"},
		{"pdb_blocked", "pdb_blocked"},
		{"started", "started"},
		{"APIServer", "api_server"},
		{"node2Ready", "node2_ready"},
		{"a--b", "a_b"},
		{"-lead", "lead"},
		{"trail-", "trail"},
		{"", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := Value(tc.in); got != tc.want {
				t.Errorf("Value(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzValue(f *testing.F) {
	for _, s := range []string{"dry-run", "PodsNotReady", "APIServer", "x_y", "é-Ü", "--"} {
		f.Add(s)
	}
	snake := regexp.MustCompile(`^([^A-Z\-. _]+(_[^A-Z\-. _]+)*)?$`)
	f.Fuzz(func(t *testing.T, s string) {
		got := Value(s)
		if !snake.MatchString(got) {
			t.Errorf("Value(%q) = %q, not snake_case", s, got)
		}
		if again := Value(got); again != got {
			t.Errorf("Value(Value(%q)) = %q, want %q: not idempotent", s, again, got)
		}
	})
}
