package fence

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		mod  func(*Config)
		want string
	}{
		{func(*Config) {}, ""},
		{func(c *Config) { c.Action = "reboot" }, `fence: --fence-action ("reboot") must be none, watchdog or command`},
		{func(c *Config) { c.Action = "command" }, "fence: --fence-command is required with --fence-action=command"},
		{func(c *Config) { c.After = time.Second }, "fence: --fence-after (1s) must be between 2s and 10m0s"},
		{func(c *Config) { c.CheckInterval = 6 * time.Second }, "fence: check interval (6s) must be positive and at most half of --fence-after (10s)"},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		tc.mod(&c)
		got := ""
		if err := c.Validate(); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Validate() = %q, want %q", got, tc.want)
		}
	}
}

// TestFencer_commandRunsOnlyAfterIsolationLastsLongEnough steps a fake
// clock: short isolations, or losing only the majority or only the API,
// never fence.
func TestFencer_commandRunsOnlyAfterIsolationLastsLongEnough(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "fenced")
	cfg := DefaultConfig()
	cfg.Action, cfg.Command, cfg.After = "command", []string{"touch", marker}, 5*time.Second
	var majority, api atomic.Bool
	majority.Store(true)
	api.Store(true)
	clk := clocktesting.NewFakeClock(time.Now())
	reg := prometheus.NewRegistry()
	f, err := New(cfg, Signals{Majority: majority.Load, APIReachable: api.Load}, clk, zap.NewNop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	step := func(n int) {
		for i := 0; i < n; i++ {
			for !clk.HasWaiters() {
				time.Sleep(time.Millisecond)
			}
			clk.Step(time.Second)
			time.Sleep(5 * time.Millisecond)
		}
	}
	majority.Store(false) // the API still answers: not isolated
	step(8)
	api.Store(false) // now isolated, but only for 3 s
	step(3)
	majority.Store(true)
	step(2)
	if f.Fenced() {
		t.Fatal("fenced without a long enough isolation")
	}
	majority.Store(false)
	step(7)
	deadline := time.Now().Add(5 * time.Second)
	for !f.Fenced() || testutil.ToFloat64(f.actions.WithLabelValues("command", "success")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("did not fence after 7 s of isolation with --fence-after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("fence command did not run: %v", err)
	}
}
