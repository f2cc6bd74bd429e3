package coordinator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"

	"github.com/haagent/haagent/internal/periodic"
)

// LeaseConfig tunes the coordinator Lease (client-go leader election).
type LeaseConfig struct {
	// Name of the Lease in the agent's namespace.
	Name string
	// Duration is how long a Lease holder is trusted without renewing: the
	// time a dead coordinator's failovers wait for a new one. Shorter
	// takes over sooner and writes the Lease more often.
	Duration time.Duration
	// RenewDeadline is how long the holder keeps trying to renew before it
	// stops acting: it must be shorter than Duration, so an old holder
	// stops before a new one can start (see holderStopBound).
	RenewDeadline time.Duration
	// RetryPeriod is how often candidates try to take the Lease, and how
	// long the holder waits after a renewal before the next one.
	RetryPeriod time.Duration
	// Candidates is how many agents campaign for the Lease: the first
	// alive members of a ranking every agent computes alike from gossip
	// (see Coordinator.candidate). Every campaigner reads the Lease each
	// RetryPeriod, so with every agent campaigning the API server would
	// answer N reads a period. 0: every agent campaigns.
	Candidates int
}

// maxCandidates bounds --coordinator-candidates: each reads the Lease every
// retry period.
const maxCandidates = 100

// minClockAllowance is the least time by which the other agents trust a
// Lease longer than its holder may act on it (see clockAllowance).
const minClockAllowance = time.Second

// clockAllowance covers what the bare timeouts leave out. An old holder
// stops acting when its renew deadline passes on its own clock; the other
// agents trust its Lease for --lease-duration on theirs, from when they saw
// it change. The two clocks run at slightly different rates (and a paused
// VM or a busy node stretches one of them), the holder notices its deadline
// only at its next tick, and a renewal's answer takes a moment to come
// back. So the Lease must outlast the holder's stop by 1 s or 10 % of
// --lease-duration, whichever is larger.
func clockAllowance(leaseDuration time.Duration) time.Duration {
	return max(minClockAllowance, leaseDuration/10)
}

// holderStopBound is how long after a holder's last renewal it may still
// act, with the allowance: client-go's holder waits a retry period after
// each successful renewal, then tries to renew for up to the renew
// deadline, and stops leading only when that fails.
func (c LeaseConfig) holderStopBound() time.Duration {
	return c.RenewDeadline + c.RetryPeriod + clockAllowance(c.Duration)
}

// DefaultLeaseConfig takes over from a dead coordinator in about 6 s.
func DefaultLeaseConfig() LeaseConfig {
	return LeaseConfig{Name: "haagent-coordinator", Duration: 6 * time.Second, RenewDeadline: 4 * time.Second, RetryPeriod: time.Second, Candidates: 3}
}

// RegisterFlags binds the flags.
func (c *LeaseConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Name, "lease-name", c.Name, "name of the coordinator Lease in --namespace")
	fs.DurationVar(&c.Duration, "lease-duration", c.Duration, "how long a coordinator is trusted without renewing its Lease")
	fs.DurationVar(&c.RenewDeadline, "lease-renew-deadline", c.RenewDeadline, "how long a coordinator tries to renew before it stops acting")
	fs.DurationVar(&c.RetryPeriod, "lease-retry-period", c.RetryPeriod, "how often candidates try to take the Lease")
	fs.IntVar(&c.Candidates, "coordinator-candidates", c.Candidates, "how many agents campaign for the coordinator Lease (0: every agent)")
}

// Validate names the flag and the bound. It applies every rule of
// client-go's leaderelection.NewLeaderElector (an agent that passes it
// must never be refused there, or it would campaign in vain), and two of
// its own: the Lease stores its duration in whole seconds, and it must
// outlast the holder by holderStopBound.
func (c LeaseConfig) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("coordinator: --lease-name must not be empty")
	case c.Duration < 2*time.Second || c.Duration > 5*time.Minute:
		return fmt.Errorf("coordinator: --lease-duration (%s) must be between 2s and 5m0s", c.Duration)
	case c.Duration%time.Second != 0:
		// client-go writes int(Duration/time.Second) into the Lease, and
		// the other candidates trust the Lease for what it says.
		return fmt.Errorf("coordinator: --lease-duration (%s) must be a whole number of seconds (the Lease stores seconds)", c.Duration)
	case c.RenewDeadline <= 0 || c.RenewDeadline >= c.Duration:
		return fmt.Errorf("coordinator: --lease-renew-deadline (%s) must be positive and less than --lease-duration (%s)", c.RenewDeadline, c.Duration)
	case c.Candidates < 0 || c.Candidates > maxCandidates:
		return fmt.Errorf("coordinator: --coordinator-candidates (%d) must be between 0 (every agent) and %d", c.Candidates, maxCandidates)
	case c.RetryPeriod <= 0:
		return fmt.Errorf("coordinator: --lease-retry-period (%s) must be positive", c.RetryPeriod)
	case c.RenewDeadline <= time.Duration(leaderelection.JitterFactor*float64(c.RetryPeriod)):
		// client-go's own rule, with its JitterFactor.
		return fmt.Errorf("coordinator: --lease-renew-deadline (%s) must be more than %g x --lease-retry-period (%s)", c.RenewDeadline, leaderelection.JitterFactor, c.RetryPeriod)
	case c.Duration < c.holderStopBound():
		return fmt.Errorf("coordinator: --lease-duration (%s) must be at least --lease-renew-deadline (%s) + --lease-retry-period (%s) + %s (clock allowance: the larger of %s and 10%% of --lease-duration) = %s",
			c.Duration, c.RenewDeadline, c.RetryPeriod, clockAllowance(c.Duration), minClockAllowance, c.holderStopBound())
	}
	return nil
}

// leadership runs lead while this agent holds the Lease, and campaigns
// only while majority() is true: an agent cut off from most of the group
// must not hold the Lease, or the majority side of a partition could not
// fail the minority over.
type leadership struct {
	cfg       LeaseConfig
	client    kubernetes.Interface
	namespace string
	identity  string
	majority  func() bool
	// candidate reports whether this agent is to campaign; nil: always.
	// An agent that holds the Lease keeps it whatever candidate says.
	candidate func() bool
	// standby reports whether this agent, not campaigning, is to watch
	// the Lease (see standby.go); nil: never.
	standby func() bool
	// watchClient serves the standby's watch; nil: client.
	watchClient kubernetes.Interface
	// view is what the standby watch saw, seeded into each campaign.
	view     leaseView
	clock    clock.WithTicker
	log      *zap.Logger
	onChange func(leading bool)
	// onHolder, when set, hears the Lease holder this agent observes
	// while it campaigns, and "" when it stops campaigning.
	onHolder func(identity string)
	// holderDead reports whether the node of a Lease holder is confirmed
	// dead by a quorum. Nil never takes the Lease early.
	holderDead func(holder string) bool

	// looked: a read of the Lease has answered in this process.
	looked atomic.Bool
}

func (l *leadership) run(ctx context.Context, lead func(ctx context.Context)) {
	for ctx.Err() == nil {
		if !l.waitEligible(ctx) {
			return
		}
		if err := l.campaign(ctx, lead); err != nil {
			// Validate rules this out; should it happen all the same, the
			// agent waits a retry period instead of spinning, and keeps
			// saying why.
			l.log.Error("leader election config", zap.Error(err))
			l.sleep(ctx, max(l.cfg.RetryPeriod, 100*time.Millisecond))
		}
	}
}

// sleep waits d on l.clock, or until ctx ends.
func (l *leadership) sleep(ctx context.Context, d time.Duration) bool {
	t := l.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// eligible: this agent sees a majority and is a candidate.
func (l *leadership) eligible() bool {
	return l.majority() && (l.candidate == nil || l.candidate())
}

// waitEligible blocks until this agent may campaign, or ctx ends. While
// it is a standby meanwhile, it watches the Lease.
func (l *leadership) waitEligible(ctx context.Context) bool {
	t := l.clock.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var w standbyWatch
	defer w.stop()
	for !l.eligible() {
		if l.standby != nil && l.standby() {
			w.start(ctx, l)
		} else {
			w.stop()
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C():
		}
	}
	return true
}

// campaign runs one leader election until leadership or the majority is
// lost, and returns after lead has. It fails only when client-go refuses
// the election config.
func (l *leadership) campaign(ctx context.Context, lead func(ctx context.Context)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prev := l.newPredecessor()
	// holding: this campaign holds the Lease; it then ends only with the
	// majority or the Lease, not with candidacy.
	var holding atomic.Bool
	// gate lets lead start only while the election runs, and campaign
	// waits for a lead that started: client-go starts OnStartedLeading in
	// a goroutine that it does not wait for, and a second term of this
	// agent must not overlap the tail of the first.
	var gate struct {
		sync.Mutex
		closed bool
		leads  sync.WaitGroup
	}
	defer func() {
		gate.Lock()
		gate.closed = true
		gate.Unlock()
		gate.leads.Wait()
	}()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(l.cfg.Name, l.namespace),
		Client:     observingClient{CoordinationV1Interface: l.client.CoordinationV1(), observe: prev.observe},
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   l.cfg.Duration,
		RenewDeadline:   l.cfg.RenewDeadline,
		RetryPeriod:     l.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            "haagent-coordinator",
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				gate.Lock()
				if gate.closed {
					gate.Unlock()
					return
				}
				gate.leads.Add(1)
				gate.Unlock()
				defer gate.leads.Done()
				holding.Store(true)
				if !l.waitForPredecessor(ctx, prev) {
					return
				}
				l.log.Info("became coordinator", zap.String("lease", l.namespace+"/"+l.cfg.Name))
				l.onChange(true)
				lead(ctx)
			},
			OnStoppedLeading: func() {
				holding.Store(false)
				l.log.Info("stopped being coordinator")
				l.onChange(false)
			},
			OnNewLeader: func(identity string) {
				if l.onHolder != nil {
					l.onHolder(identity)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	if l.onHolder != nil {
		// Out of the campaign, what we saw of the Lease grows stale.
		defer l.onHolder("")
	}
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which is deferred later
	defer cancel()
	wg.Go(func() {
		// No jitter: this bounds how long a coordinator that lost sight
		// of the majority goes on acting, and it reads only local state.
		_ = periodic.Every(ctx, l.clock, 200*time.Millisecond, 0, func(context.Context) {
			if !l.majority() {
				l.log.Warn("lost sight of the majority: giving up the coordinator Lease")
				cancel()
				return
			}
			if l.candidate != nil && !holding.Load() && !l.candidate() {
				l.log.Debug("no longer a candidate for the coordinator Lease: not campaigning")
				cancel()
			}
		})
	})
	if l.holderDead != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.takeFromDeadHolder(ctx, prev)
		}()
	}
	le.Run(ctx)
	return nil
}
