package fence

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestValidate(t *testing.T) {
	watchdog := func(c *Config) { c.Action = "watchdog" }
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"unknown action", func(c *Config) { c.Action = "reboot" }, `fence: --fence-action ("reboot") must be none, watchdog or command`},
		{"command without command", func(c *Config) { c.Action = "command" }, "fence: --fence-command is required with --fence-action=command"},
		{"after too short", func(c *Config) { c.After = time.Second }, "fence: --fence-after (1s) must be between 2s and 10m0s"},
		{"check interval too long", func(c *Config) { c.CheckInterval = 6 * time.Second }, "fence: check interval (6s) must be positive and at most half of --fence-after (10s)"},
		{"command timeout too short", func(c *Config) { c.CommandTimeout = 500 * time.Millisecond }, "fence: --fence-command-timeout (500ms) must be between 1s and 5m0s"},
		{"command timeout too long", func(c *Config) { c.CommandTimeout = 6 * time.Minute }, "fence: --fence-command-timeout (6m0s) must be between 1s and 5m0s"},
		{"command timeout bounds", func(c *Config) { c.CommandTimeout = 5 * time.Minute }, ""},
		{"watchdog timeout zero", func(c *Config) { c.WatchdogTimeout = 0 }, "fence: --watchdog-timeout (0s) must be between 1s and 5m0s"},
		{"watchdog timeout too long", func(c *Config) { c.WatchdogTimeout = 301 * time.Second }, "fence: --watchdog-timeout (5m1s) must be between 1s and 5m0s"},
		{"watchdog timeout not whole seconds", func(c *Config) { c.WatchdogTimeout = 2500 * time.Millisecond }, "fence: --watchdog-timeout (2.5s) must be a whole number of seconds"},
		{"watchdog timeout within a check", func(c *Config) { watchdog(c); c.WatchdogTimeout = time.Second }, "fence: --watchdog-timeout (1s) must be at least twice the check interval (1s)"},
		{"watchdog timeout of two checks", func(c *Config) { watchdog(c); c.WatchdogTimeout = 2 * time.Second }, ""},
		{"short watchdog timeout unused by command", func(c *Config) { c.WatchdogTimeout = time.Second }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			got := ""
			if err := c.Validate(); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfig_ActionTime(t *testing.T) {
	for _, tc := range []struct {
		action string
		want   time.Duration
	}{
		{"none", 0},
		{"command", 7 * time.Second},
		{"watchdog", 12 * time.Second},
	} {
		t.Run(tc.action, func(t *testing.T) {
			c := DefaultConfig()
			c.Action, c.CommandTimeout, c.WatchdogTimeout = tc.action, 7*time.Second, 12*time.Second
			if got := c.ActionTime(); got != tc.want {
				t.Errorf("ActionTime() = %s, want %s", got, tc.want)
			}
		})
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

// failUntilFileConfig is a command fence whose command appends a line to
// count on every run and fails until the file ok exists.
func failUntilFileConfig(t *testing.T) (cfg Config, count, ok string) {
	t.Helper()
	dir := t.TempDir()
	count, ok = filepath.Join(dir, "count"), filepath.Join(dir, "ok")
	cfg = DefaultConfig()
	cfg.Action, cfg.After = "command", 2*time.Second
	cfg.Command = []string{"sh", "-c", "echo x >> " + count + "; test -e " + ok}
	return cfg, count, ok
}

// TestFencer_failingCommandIsRetriedWithBackoff: a command that fails is
// run again 1, 2, 4, 8, 16 and then 30 s after each failure, while the
// loop keeps checking every second; once it succeeds it is not run again.
func TestFencer_failingCommandIsRetriedWithBackoff(t *testing.T) {
	cfg, count, ok := failUntilFileConfig(t)
	h := startFencer(t, cfg)
	h.isolate()

	// Isolated from the check at 1 s; --fence-after 2s has passed at 3 s.
	// After that, attempts when the backoff allows.
	attemptAt := map[int]bool{3: true, 4: true, 6: true, 10: true, 18: true, 34: true, 64: true}
	attempts := 0
	for sec := 1; sec <= 80; sec++ {
		if sec == 35 {
			// The attempt at 34 s has failed; the next one will succeed.
			touch(t, ok)
		}
		h.step()
		if !attemptAt[sec] {
			h.wantAttempts(attempts, sec)
			continue
		}
		attempts++
		h.wantAttempts(attempts, sec)
		if sec < 64 {
			h.waitMetric("failure", attempts, sec)
			if got := testutil.ToFloat64(h.f.failing); got != 1 {
				t.Fatalf("at %d s: haagent_fence_failing = %g after a failed attempt, want 1", sec, got)
			}
			if h.f.Fenced() {
				t.Fatalf("at %d s: Fenced() after a failed attempt", sec)
			}
		} else {
			h.waitMetric("success", 1, sec)
		}
		if got := lines(t, count); got != attempts {
			t.Fatalf("at %d s: the command ran %d times, want %d", sec, got, attempts)
		}
	}
	if !h.f.Fenced() {
		t.Error("Fenced() = false after the command succeeded")
	}
	if got := testutil.ToFloat64(h.f.failing); got != 0 {
		t.Errorf("haagent_fence_failing = %g after a successful attempt, want 0", got)
	}
	if got := testutil.ToFloat64(h.f.actions.WithLabelValues("command", "failure")); got != 6 {
		t.Errorf(`haagent_fence_actions_total{result="failure"} = %g, want 6`, got)
	}
}

// TestFencer_rearmsOnceInTouch: a node that fenced and is in touch again
// fences again when it is isolated again.
func TestFencer_rearmsOnceInTouch(t *testing.T) {
	count := filepath.Join(t.TempDir(), "count")
	cfg := DefaultConfig()
	cfg.Action, cfg.After = "command", 2*time.Second
	cfg.Command = []string{"sh", "-c", "echo x >> " + count}
	h := startFencer(t, cfg)
	h.isolate()

	h.steps(3) // isolated at 1 s, fences at 3 s
	h.wantAttempts(1, 3)
	h.waitMetric("success", 1, 3)
	if !h.f.Fenced() {
		t.Fatal("Fenced() = false after the command succeeded")
	}
	h.steps(5) // still isolated: fenced once is enough
	h.wantAttempts(1, 8)

	h.majority.Store(true)
	h.step()
	if h.f.Fenced() {
		t.Fatal("Fenced() = true after the agent was in touch again: not re-armed")
	}
	h.majority.Store(false)
	h.steps(2) // isolated again at 10 s: 1 s of isolation at 11 s
	h.wantAttempts(1, 11)
	h.step()
	h.wantAttempts(2, 12)
	h.waitMetric("success", 2, 12)
	if got := lines(t, count); got != 2 {
		t.Fatalf("the command ran %d times, want 2", got)
	}
	if !h.f.Fenced() {
		t.Error("Fenced() = false after the second isolation fenced")
	}
}

// TestFencer_failingGaugeAndRearmAfterFailure: haagent_fence_failing is 1
// while the last attempt failed and the agent is isolated; in touch again,
// it is 0 and the backoff is forgotten, so the next isolation fences after
// --fence-after, not after the backoff the failures had reached.
func TestFencer_failingGaugeAndRearmAfterFailure(t *testing.T) {
	cfg, count, ok := failUntilFileConfig(t)
	h := startFencer(t, cfg)
	if got := testutil.ToFloat64(h.f.failing); got != 0 {
		t.Fatalf("haagent_fence_failing = %g at start, want 0", got)
	}
	h.isolate()

	// Failures at 3, 4, 6 and 10 s; the next attempt would be at 18 s.
	for sec, n := 1, 0; sec <= 10; sec++ {
		h.step()
		if sec == 3 || sec == 4 || sec == 6 || sec == 10 {
			n++
			h.waitMetric("failure", n, sec)
		}
		if want := map[bool]float64{true: 1, false: 0}[sec >= 3]; testutil.ToFloat64(h.f.failing) != want {
			t.Fatalf("at %d s: haagent_fence_failing = %g, want %g", sec, testutil.ToFloat64(h.f.failing), want)
		}
	}
	h.wantAttempts(4, 10)

	h.api.Store(true)
	h.step() // 11 s: in touch
	if got := testutil.ToFloat64(h.f.failing); got != 0 {
		t.Fatalf("haagent_fence_failing = %g in touch, want 0", got)
	}
	if got := testutil.ToFloat64(h.f.isol); got != 0 {
		t.Fatalf("haagent_fence_isolated = %g in touch, want 0", got)
	}
	touch(t, ok)
	h.api.Store(false)
	h.steps(2) // isolated again from 12 s
	h.wantAttempts(4, 13)
	h.step() // 14 s: --fence-after has passed, and the old backoff (until 18 s) is gone
	h.wantAttempts(5, 14)
	h.waitMetric("success", 1, 14)
	if got := testutil.ToFloat64(h.f.failing); got != 0 {
		t.Errorf("haagent_fence_failing = %g after success, want 0", got)
	}
	if got := lines(t, count); got != 5 {
		t.Errorf("the command ran %d times, want 5", got)
	}
}

// TestFencer_commandTimeoutKillsAHangingCommand: past
// --fence-command-timeout the command is killed with its children, and the
// attempt fails.
func TestFencer_commandTimeoutKillsAHangingCommand(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process groups are killed on Linux only")
	}
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	cfg := DefaultConfig()
	cfg.Action, cfg.After, cfg.CommandTimeout = "command", 2*time.Second, time.Second
	cfg.Command = []string{"sh", "-c", "sleep 30 & echo $! > " + pidFile + "; wait"}
	h := startFencer(t, cfg)
	h.isolate()

	h.steps(3)
	h.wantAttempts(1, 3)
	start := time.Now()
	h.waitMetric("failure", 1, 3)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("the attempt took %s with --fence-command-timeout 1s", elapsed)
	}
	if got := testutil.ToFloat64(h.f.failing); got != 1 {
		t.Errorf("haagent_fence_failing = %g after a timed-out attempt, want 1", got)
	}
	failed := h.logs.FilterMessage("fence command failed").All()
	if len(failed) != 1 {
		t.Fatalf("%d logs %q, want 1", len(failed), "fence command failed")
	}
	if got, want := failed[0].ContextMap()["error"], "killed after --fence-command-timeout (1s)"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}

	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the shell never started its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file %q: %v", data, err)
	}
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the fence command still runs after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFencer_watchdogStaysUnfedAfterFencing: the watchdog is fed while the
// agent is in touch or not yet isolated for --fence-after; after fencing it
// is never fed again, even in touch again, nor disarmed when Run ends.
func TestFencer_watchdogStaysUnfedAfterFencing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Action, cfg.After, cfg.WatchdogTimeout = "watchdog", 2*time.Second, 7*time.Second
	dog := &fakeWatchdog{}
	var asked time.Duration
	h := startFencerWith(t, cfg, func(f *Fencer) {
		f.openWatchdog = func(device string, timeout time.Duration) (io.WriteCloser, time.Duration, error) {
			if device != "/dev/watchdog" {
				t.Errorf("device %q, want /dev/watchdog", device)
			}
			asked = timeout
			return dog, timeout, nil
		}
	})
	h.steps(2) // in touch: fed twice
	if got := dog.feeds(); got != 2 {
		t.Fatalf("fed %d times in touch, want 2", got)
	}
	h.isolate()
	h.steps(2) // isolated at 3 s, 1 s at 4 s: still fed
	if got := dog.feeds(); got != 4 {
		t.Fatalf("fed %d times before --fence-after, want 4", got)
	}
	h.step() // 5 s: fences
	if !h.f.Fenced() || dog.feeds() != 4 {
		t.Fatalf("at --fence-after: Fenced() = %t, fed %d times; want true, 4", h.f.Fenced(), dog.feeds())
	}
	if got := testutil.ToFloat64(h.f.actions.WithLabelValues("watchdog", "success")); got != 1 {
		t.Errorf(`haagent_fence_actions_total{action="watchdog",result="success"} = %g, want 1`, got)
	}
	h.majority.Store(true)
	h.steps(3)
	if !h.f.Fenced() || dog.feeds() != 4 {
		t.Fatalf("in touch after fencing: Fenced() = %t, fed %d times; want true, 4", h.f.Fenced(), dog.feeds())
	}
	h.stop()
	if asked != 7*time.Second {
		t.Errorf("asked the device for %s, want 7s", asked)
	}
	if dog.disarmed() || !dog.isClosed() {
		t.Errorf("after fencing: disarmed %t, closed %t; want false, true", dog.disarmed(), dog.isClosed())
	}
}

// TestRun_watchdogTimeoutNotSettable: a device that does not take the
// timeout stops Run, is disarmed and closed.
func TestRun_watchdogTimeoutNotSettable(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the watchdog timeout is set on Linux only")
	}
	device := filepath.Join(t.TempDir(), "watchdog") // a file, not a watchdog
	touch(t, device)
	cfg := DefaultConfig()
	cfg.Action, cfg.WatchdogDevice = "watchdog", device
	f, err := New(cfg, Signals{Majority: func() bool { return true }, APIReachable: func() bool { return true }}, clocktesting.NewFakeClock(time.Now()), zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	err = f.Run(context.Background())
	want := "fence: --watchdog-timeout (10s) could not be set on --watchdog-device " + device + ": WDIOC_SETTIMEOUT: inappropriate ioctl for device"
	if err == nil || err.Error() != want {
		t.Fatalf("Run() = %v, want %s", err, want)
	}
	if data, _ := os.ReadFile(device); string(data) != "V" {
		t.Errorf("device holds %q, want the magic close %q", data, "V")
	}
}

func TestWatchdogTimeoutError(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  time.Duration
		err  error
		want string
	}{
		{"as asked", 10 * time.Second, nil, ""},
		{"shorter", 8 * time.Second, nil, ""},
		{"rounded up", 12 * time.Second, nil, "fence: --watchdog-device /dev/watchdog set its timeout to 12s when --watchdog-timeout asked 10s: a longer timeout breaks the fence bound; choose one the device supports"},
		{"refused", 0, errors.New("WDIOC_SETTIMEOUT: invalid argument"), "fence: --watchdog-timeout (10s) could not be set on --watchdog-device /dev/watchdog: WDIOC_SETTIMEOUT: invalid argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if err := watchdogTimeoutError("/dev/watchdog", 10*time.Second, tc.got, tc.err); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("watchdogTimeoutError() = %q, want %q", got, tc.want)
			}
		})
	}
}

// harness runs a Fencer on a fake clock, isolated or not by its two signals.
type harness struct {
	t             *testing.T
	f             *Fencer
	clk           *clocktesting.FakeClock
	majority, api atomic.Bool
	logs          *observer.ObservedLogs
	stop          func()
}

func startFencer(t *testing.T, cfg Config) *harness {
	t.Helper()
	return startFencerWith(t, cfg, func(*Fencer) {})
}

// startFencerWith starts a Fencer in touch, after mod has changed it.
func startFencerWith(t *testing.T, cfg Config, mod func(*Fencer)) *harness {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	h := &harness{t: t, clk: clocktesting.NewFakeClock(time.Now()), logs: logs}
	h.majority.Store(true)
	h.api.Store(true)
	f, err := New(cfg, Signals{Majority: h.majority.Load, APIReachable: h.api.Load}, h.clk, zap.New(core), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	mod(f)
	h.f = f
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run() = %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
	h.waitIdle()
	return h
}

func (h *harness) isolate() {
	h.majority.Store(false)
	h.api.Store(false)
}

// waitIdle waits until the check loop waits on its timer, the clock's only
// waiter: every check so far is done.
func (h *harness) waitIdle() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.clk.Waiters() != 1 {
		if time.Now().After(deadline) {
			h.t.Fatal("the check loop does not wait on its timer")
		}
		time.Sleep(time.Millisecond)
	}
}

// step moves the clock by one check interval and waits for that check.
func (h *harness) step() {
	h.t.Helper()
	h.clk.Step(h.f.cfg.CheckInterval)
	h.waitIdle()
}

func (h *harness) steps(n int) {
	h.t.Helper()
	for range n {
		h.step()
	}
}

// wantAttempts checks how many fence attempts the loop has started (it logs
// each as it starts it).
func (h *harness) wantAttempts(n, sec int) {
	h.t.Helper()
	if got := h.logs.FilterMessage("fencing this node").Len(); got != n {
		h.t.Fatalf("at %d s: %d fence attempts, want %d", sec, got, n)
	}
}

// waitMetric waits until haagent_fence_actions_total{result} reaches n:
// the loop has handled the result of the command.
func (h *harness) waitMetric(result string, n, sec int) {
	h.t.Helper()
	c := h.f.actions.WithLabelValues(h.f.cfg.Action, result)
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(c) != float64(n) {
		if time.Now().After(deadline) {
			h.t.Fatalf("at %d s: %s attempts = %g, want %d", sec, result, testutil.ToFloat64(c), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lines counts the lines of a file the fence command appends to.
func lines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte("\n"))
}

// processGone reports whether pid has exited, from Linux's /proc: no such
// process, or a zombie nobody reaped yet (in a container, PID 1 may not
// reap orphans).
func processGone(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

// fakeWatchdog records what the Fencer writes to its device.
type fakeWatchdog struct {
	mu     sync.Mutex
	writes []string
	closed bool
}

func (d *fakeWatchdog) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writes = append(d.writes, string(p))
	return len(p), nil
}

func (d *fakeWatchdog) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

func (d *fakeWatchdog) feeds() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, w := range d.writes {
		if w == "\x00" {
			n++
		}
	}
	return n
}

func (d *fakeWatchdog) disarmed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.writes {
		if w == "V" {
			return true
		}
	}
	return false
}

func (d *fakeWatchdog) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}
