// Package fence makes a node that is cut off from the group stop its own
// workloads, so that the majority may safely start StatefulSet pods
// elsewhere (rule 5 of docs/design.md).
//
// An agent is isolated when it sees no majority of the gossip group AND
// cannot reach the API server. Isolated for longer than Config.After, it
// runs the configured action: "none" (log and count only), "watchdog"
// (stop feeding the watchdog device, which the agent feeds every check
// while it is not isolated, so the hardware resets the node within
// Config.WatchdogTimeout — and resets it too if the agent dies), or
// "command" (run a command, e.g. one that stops the container runtime,
// killed after Config.CommandTimeout).
//
// A command that fails is run again while the isolation lasts, after 1 s,
// then 2 s, doubling up to 30 s; the check loop keeps running meanwhile.
// haagent_fence_failing is 1 while the last attempt failed. Once the agent
// is in touch again (a majority or the API server), the fence is re-armed:
// a later isolation fences again. The watchdog action is never re-armed:
// the reset is the fence, so the agent does not feed the device again.
//
// The coordinator's fence bound, after which it applies the out-of-service
// taint, must cover the node's own isolation detection, Config.After, two
// check intervals (isolation, and then its length, are seen only at a
// check) and Config.ActionTime: by then the node either is down or has
// fenced itself, if its action works. A failing action breaks that
// promise, hence the alert on haagent_fence_failing.
//
// Lifecycle: New validates and starts nothing (it does not open the
// watchdog); Run opens the watchdog and sets its timeout, checks every
// CheckInterval until its context ends, returns after a running command
// has been killed and, on a clean exit, disarms the watchdog unless it
// fenced.
//
// What it may touch: the watchdog device, and the processes of the fence
// command (each run in a process group of its own, killed as a whole).
package fence

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/utils/clock"

	"github.com/haagent/haagent/internal/command"
)

// Backoff between attempts of a failing command: the first retry waits
// minBackoff, each next one twice as long, up to maxBackoff.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// commandWaitDelay bounds how long a finished or killed command may keep
// its output open through a process that left its group.
const commandWaitDelay = time.Second

// maxOutputBytes is how much of a failed command's output is logged.
const maxOutputBytes = 4096

// Config configures self-fencing.
type Config struct {
	// Action is none, watchdog or command.
	Action string
	// After is how long an agent must be isolated before it fences. The
	// coordinator waits this plus a margin before force-removing stateful
	// pods, so it must be the same on every node (it comes from the shared
	// config file).
	After time.Duration
	// Command is run (no shell) for the command action.
	Command []string
	// CommandTimeout bounds one run of Command: past it the command and its
	// process group are killed and the run counts as failed. It is the
	// command action's share of the coordinator's fence bound, so a longer
	// one makes stateful pods wait longer after every node death.
	CommandTimeout time.Duration
	// WatchdogDevice is the watchdog for the watchdog action.
	WatchdogDevice string
	// WatchdogTimeout is set on WatchdogDevice at start: the node resets
	// this long after the agent last fed it. Whole seconds, since that is
	// what the device takes. Like CommandTimeout it is part of the fence
	// bound; shorter means a node resets sooner when the agent stalls.
	WatchdogTimeout time.Duration
	// CheckInterval is how often isolation is checked (and the watchdog
	// fed).
	CheckInterval time.Duration
}

// DefaultConfig fences nothing, waits 10 s, checks every second and gives
// either action 10 s.
func DefaultConfig() Config {
	return Config{
		Action: "none", After: 10 * time.Second, CommandTimeout: 10 * time.Second,
		WatchdogDevice: "/dev/watchdog", WatchdogTimeout: 10 * time.Second, CheckInterval: time.Second,
	}
}

// RegisterFlags binds the flags; --fence-command is split on spaces.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Action, "fence-action", c.Action, "what an isolated node does to itself: none, watchdog or command")
	fs.DurationVar(&c.After, "fence-after", c.After, "isolation (no majority and no API server) that triggers the fence action")
	fs.Func("fence-command", "command run by the command fence action (split on spaces, no shell)", func(s string) error {
		c.Command = strings.Fields(s)
		return nil
	})
	fs.DurationVar(&c.CommandTimeout, "fence-command-timeout", c.CommandTimeout, "how long one run of --fence-command may take before it is killed; a failed run is retried with backoff")
	fs.StringVar(&c.WatchdogDevice, "watchdog-device", c.WatchdogDevice, "watchdog device for the watchdog fence action")
	fs.DurationVar(&c.WatchdogTimeout, "watchdog-timeout", c.WatchdogTimeout, "timeout set on --watchdog-device at start (whole seconds): the node resets this long after the agent stops feeding it")
}

// Validate names the flag and the bound.
func (c Config) Validate() error {
	switch c.Action {
	case "none", "watchdog":
	case "command":
		if len(c.Command) == 0 {
			return errors.New("fence: --fence-command is required with --fence-action=command")
		}
	default:
		return fmt.Errorf("fence: --fence-action (%q) must be none, watchdog or command", c.Action)
	}
	if c.After < 2*time.Second || c.After > 10*time.Minute {
		return fmt.Errorf("fence: --fence-after (%s) must be between 2s and 10m0s", c.After)
	}
	if c.CheckInterval <= 0 || c.CheckInterval*2 > c.After {
		return fmt.Errorf("fence: check interval (%s) must be positive and at most half of --fence-after (%s)", c.CheckInterval, c.After)
	}
	if c.CommandTimeout < time.Second || c.CommandTimeout > 5*time.Minute {
		return fmt.Errorf("fence: --fence-command-timeout (%s) must be between 1s and 5m0s", c.CommandTimeout)
	}
	if c.WatchdogTimeout < time.Second || c.WatchdogTimeout > 5*time.Minute {
		return fmt.Errorf("fence: --watchdog-timeout (%s) must be between 1s and 5m0s", c.WatchdogTimeout)
	}
	if c.WatchdogTimeout%time.Second != 0 {
		return fmt.Errorf("fence: --watchdog-timeout (%s) must be a whole number of seconds", c.WatchdogTimeout)
	}
	// The agent feeds the watchdog once per check; a timeout that a single
	// late check can miss would reset a healthy node.
	if c.Action == "watchdog" && c.WatchdogTimeout < 2*c.CheckInterval {
		return fmt.Errorf("fence: --watchdog-timeout (%s) must be at least twice the check interval (%s)", c.WatchdogTimeout, c.CheckInterval)
	}
	return nil
}

// ActionTime is the longest time from the decision to fence until the node
// is stopped, when the action works: 0 for none (nothing is stopped),
// CommandTimeout for command, WatchdogTimeout for watchdog (the last feed
// was at most one check before the decision, so the reset comes sooner).
// The coordinator adds it to its fence bound. A command that fails and is
// retried takes longer; haagent_fence_failing tells.
func (c Config) ActionTime() time.Duration {
	switch c.Action {
	case "command":
		return c.CommandTimeout
	case "watchdog":
		return c.WatchdogTimeout
	}
	return 0
}

// Signals tell whether this agent is in touch.
type Signals struct {
	// Majority reports whether gossip shows a majority alive.
	Majority func() bool
	// APIReachable reports whether the API server answered recently.
	APIReachable func() bool
}

// Fencer watches for isolation and fences.
type Fencer struct {
	cfg     Config
	sig     Signals
	clock   clock.WithTicker
	log     *zap.Logger
	actions *prometheus.CounterVec
	isol    prometheus.Gauge
	failing prometheus.Gauge
	fenced  atomic.Bool
	// openWatchdog opens the device and sets its timeout; tests replace it.
	openWatchdog func(device string, timeout time.Duration) (io.WriteCloser, time.Duration, error)
}

// New validates cfg.
func New(cfg Config, sig Signals, clk clock.WithTicker, log *zap.Logger, reg prometheus.Registerer) (*Fencer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sig.Majority == nil || sig.APIReachable == nil {
		return nil, errors.New("fence: New needs both signals")
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	f := &Fencer{
		cfg: cfg, sig: sig, clock: clk, log: log.Named("fence"),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "haagent", Subsystem: "fence", Name: "actions_total",
			Help: "Fence actions this agent ran on its own node, by action and result.",
		}, []string{"action", "result"}),
		isol: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "haagent", Subsystem: "fence", Name: "isolated",
			Help: "1 while this agent sees neither a gossip majority nor the API server.",
		}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "haagent", Subsystem: "fence", Name: "failing",
			Help: "1 while the last fence attempt failed and the agent is still isolated.",
		}),
		openWatchdog: openWatchdog,
	}
	for _, c := range []prometheus.Collector{f.actions, f.isol, f.failing} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Fenced reports whether the fence action succeeded during the current or
// last isolation. It turns false again when the fence is re-armed, once
// the agent is in touch again (never with the watchdog action).
func (f *Fencer) Fenced() bool { return f.fenced.Load() }

// Run checks for isolation until ctx ends, and fences. It fails only at
// start, when the watchdog cannot be opened or does not take
// WatchdogTimeout.
func (f *Fencer) Run(ctx context.Context) error {
	var dog io.WriteCloser
	if f.cfg.Action == "watchdog" {
		var err error
		var timeout time.Duration
		if dog, timeout, err = f.openWatchdog(f.cfg.WatchdogDevice, f.cfg.WatchdogTimeout); err != nil {
			return err
		}
		f.log.Info("watchdog armed", zap.String("device", f.cfg.WatchdogDevice), zap.Duration("timeout", timeout))
		defer func() {
			// The magic close disarms the watchdog on a clean stop; after
			// fencing it stays armed, so the reset happens.
			if !f.fenced.Load() {
				_, _ = dog.Write([]byte("V"))
			}
			_ = dog.Close()
		}()
	}
	// A command runs in its own goroutine, so that checks (and the
	// isolation gauge) go on while it runs; its result comes back here.
	results := make(chan error, 1)
	running := false
	defer func() {
		if running {
			// ctx has ended, so the command is being killed.
			<-results
		}
	}()
	// A timer reset after each check rather than a ticker: checks never
	// queue up behind a slow one, and a test stepping a fake clock knows a
	// check is done when the timer waits again.
	timer := f.clock.NewTimer(f.cfg.CheckInterval)
	defer timer.Stop()
	var (
		since   time.Time // start of the current isolation; zero while in touch
		retryAt time.Time // no attempt before this, after a failure
		backoff = minBackoff
		attempt int // attempts during the current isolation
	)
	rearm := func() {
		retryAt, backoff, attempt = time.Time{}, minBackoff, 0
		// The watchdog is never re-armed: once the agent stopped feeding
		// it, the reset is the fence. A node in touch again before the
		// reset must not feed it either: the coordinator may already have
		// force-deleted its stateful pods, counting on that reset.
		if f.cfg.Action != "watchdog" && f.fenced.Swap(false) {
			f.log.Info("fence re-armed", zap.String("action", f.cfg.Action))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-results:
			running = false
			now := f.clock.Now()
			if err == nil {
				f.fenced.Store(true)
				f.failing.Set(0)
				f.actions.WithLabelValues(f.cfg.Action, "success").Inc()
				f.log.Warn("fence command succeeded", zap.Int("attempt", attempt))
				continue
			}
			f.actions.WithLabelValues(f.cfg.Action, "failure").Inc()
			retryAt = now.Add(backoff)
			f.log.Error("fence command failed", zap.Error(err), zap.Int("attempt", attempt), zap.Duration("retry_in", backoff))
			backoff = min(2*backoff, maxBackoff)
			if !since.IsZero() {
				f.failing.Set(1)
			}
			continue
		case <-timer.C():
		}
		now := f.clock.Now()
		// The API first: the gossip test is asked only while the API is
		// away, and asking it makes gossip work to stay in touch.
		if f.sig.APIReachable() || f.sig.Majority() {
			if !since.IsZero() {
				f.log.Info("in touch again", zap.Duration("isolated_for", now.Sub(since)))
			}
			since = time.Time{}
			f.isol.Set(0)
			f.failing.Set(0)
			if !running {
				rearm()
			}
		} else {
			if since.IsZero() {
				since = now
				f.log.Warn("isolated: no gossip majority and no API server", zap.Duration("fence_after", f.cfg.After))
			}
			f.isol.Set(1)
			if !running && !f.fenced.Load() && now.Sub(since) >= f.cfg.After && !now.Before(retryAt) {
				attempt++
				f.log.Error("fencing this node", zap.String("action", f.cfg.Action), zap.Int("attempt", attempt))
				if f.cfg.Action == "command" {
					running = true
					go func() { results <- f.runCommand(ctx) }()
				} else {
					// none and watchdog cannot fail: not feeding the
					// watchdog from now on is the action.
					f.fenced.Store(true)
					f.actions.WithLabelValues(f.cfg.Action, "success").Inc()
				}
			}
		}
		if dog != nil && !f.fenced.Load() {
			if _, err := dog.Write([]byte{0}); err != nil {
				f.log.Error("feed watchdog", zap.Error(err))
			}
		}
		timer.Reset(f.cfg.CheckInterval)
	}
}

// runCommand runs the fence command once, in a process group of its own
// that is killed as a whole when CommandTimeout passes or ctx ends.
func (f *Fencer) runCommand(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, f.cfg.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, f.cfg.Command[0], f.cfg.Command[1:]...)
	out := &command.CappedBuffer{Max: maxOutputBytes}
	cmd.Stdout, cmd.Stderr = out, out
	command.OwnProcessGroup(cmd)
	cmd.WaitDelay = commandWaitDelay
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("killed after --fence-command-timeout (%s)", f.cfg.CommandTimeout)
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay with a clean exit: a leftover child held the output open.
		return nil
	}
	if s := strings.TrimSpace(out.String()); s != "" {
		return fmt.Errorf("%w: %s", err, s)
	}
	return err
}

// openWatchdog opens device, which arms it, sets its timeout and returns
// the timeout the device reports. A device that refuses the timeout, or
// takes a longer one, is disarmed and closed: a later reset than
// configured would break the coordinator's fence bound. A shorter one only
// resets sooner.
func openWatchdog(device string, timeout time.Duration) (io.WriteCloser, time.Duration, error) {
	dog, err := os.OpenFile(device, os.O_WRONLY, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("fence: --watchdog-device %s: %w", device, err)
	}
	secs, err := setWatchdogTimeout(dog, int(timeout/time.Second))
	got := time.Duration(secs) * time.Second
	if err := watchdogTimeoutError(device, timeout, got, err); err != nil {
		_, _ = dog.Write([]byte("V"))
		_ = dog.Close()
		return nil, 0, err
	}
	return dog, got, nil
}

// watchdogTimeoutError judges the outcome of setting the timeout: asked is
// what was asked, got what the device reports, err the ioctls' error.
func watchdogTimeoutError(device string, asked, got time.Duration, err error) error {
	switch {
	case err != nil:
		return fmt.Errorf("fence: --watchdog-timeout (%s) could not be set on --watchdog-device %s: %w", asked, device, err)
	case got > asked:
		return fmt.Errorf("fence: --watchdog-device %s set its timeout to %s when --watchdog-timeout asked %s: a longer timeout breaks the fence bound; choose one the device supports", device, got, asked)
	}
	return nil
}
