// Package fence makes a node that is cut off from the group stop its own
// workloads, so that the majority may safely start StatefulSet pods
// elsewhere (rule 5 of the design).
//
// An agent is isolated when it sees no majority of the gossip group AND
// cannot reach the API server. Isolated for longer than Config.After, it
// runs the configured action once: "none" (log and count only), "watchdog"
// (stop feeding /dev/watchdog, which the agent feeds every second while it
// is not isolated, so the hardware resets the node — and resets it too if
// the agent dies), or "command" (run a command, e.g. one that stops the
// container runtime).
//
// The coordinator waits Config.After plus a margin after a node is
// confirmed dead before it applies the out-of-service taint: by then the
// node either is down or has fenced itself.
//
// Lifecycle: New validates and starts nothing (it does not open the
// watchdog); Run checks every CheckInterval until its context ends and, on
// a clean exit, disarms the watchdog.
package fence

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/utils/clock"
)

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
	// WatchdogDevice is the watchdog for the watchdog action.
	WatchdogDevice string
	// CheckInterval is how often isolation is checked (and the watchdog
	// fed).
	CheckInterval time.Duration
}

// DefaultConfig fences nothing, waits 10 s and checks every second.
func DefaultConfig() Config {
	return Config{Action: "none", After: 10 * time.Second, WatchdogDevice: "/dev/watchdog", CheckInterval: time.Second}
}

// RegisterFlags binds the flags; --fence-command is split on spaces.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Action, "fence-action", c.Action, "what an isolated node does to itself: none, watchdog or command")
	fs.DurationVar(&c.After, "fence-after", c.After, "isolation (no majority and no API server) that triggers the fence action")
	fs.Func("fence-command", "command run by the command fence action (split on spaces, no shell)", func(s string) error {
		c.Command = strings.Fields(s)
		return nil
	})
	fs.StringVar(&c.WatchdogDevice, "watchdog-device", c.WatchdogDevice, "watchdog device for the watchdog fence action")
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
	return nil
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
	fenced  atomic.Bool
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
	}
	for _, c := range []prometheus.Collector{f.actions, f.isol} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Fenced reports whether the fence action ran.
func (f *Fencer) Fenced() bool { return f.fenced.Load() }

// Run checks for isolation until ctx ends.
func (f *Fencer) Run(ctx context.Context) error {
	var dog *os.File
	if f.cfg.Action == "watchdog" {
		var err error
		if dog, err = os.OpenFile(f.cfg.WatchdogDevice, os.O_WRONLY, 0); err != nil {
			return fmt.Errorf("fence: --watchdog-device %s: %w", f.cfg.WatchdogDevice, err)
		}
		defer func() {
			// The magic close disarms the watchdog on a clean stop; after
			// fencing it stays armed, so the reset happens.
			if !f.fenced.Load() {
				_, _ = dog.Write([]byte("V"))
			}
			_ = dog.Close()
		}()
	}
	t := f.clock.NewTicker(f.cfg.CheckInterval)
	defer t.Stop()
	var since time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		now := f.clock.Now()
		if f.sig.Majority() || f.sig.APIReachable() {
			if !since.IsZero() {
				f.log.Info("in touch again", zap.Duration("isolated_for", now.Sub(since)))
			}
			since = time.Time{}
			f.isol.Set(0)
		} else {
			if since.IsZero() {
				since = now
				f.log.Warn("isolated: no gossip majority and no API server", zap.Duration("fence_after", f.cfg.After))
			}
			f.isol.Set(1)
			if now.Sub(since) >= f.cfg.After && !f.fenced.Load() {
				f.fence(ctx)
			}
		}
		if dog != nil && !f.fenced.Load() {
			if _, err := dog.Write([]byte{0}); err != nil {
				f.log.Error("feed watchdog", zap.Error(err))
			}
		}
	}
}

func (f *Fencer) fence(ctx context.Context) {
	f.fenced.Store(true)
	f.log.Error("fencing this node", zap.String("action", f.cfg.Action))
	result := "success"
	if f.cfg.Action == "command" {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, f.cfg.Command[0], f.cfg.Command[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if out, err := cmd.CombinedOutput(); err != nil {
			result = "failure"
			f.log.Error("fence command failed", zap.Error(err), zap.ByteString("output", out))
		}
	}
	f.actions.WithLabelValues(f.cfg.Action, result).Inc()
}
