package coordinator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"time"

	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
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
	// stops before a new one can start.
	RenewDeadline time.Duration
	// RetryPeriod is how often candidates try to take the Lease.
	RetryPeriod time.Duration
}

// DefaultLeaseConfig takes over from a dead coordinator in about 6 s.
func DefaultLeaseConfig() LeaseConfig {
	return LeaseConfig{Name: "haagent-coordinator", Duration: 6 * time.Second, RenewDeadline: 4 * time.Second, RetryPeriod: time.Second}
}

// RegisterFlags binds the flags.
func (c *LeaseConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Name, "lease-name", c.Name, "name of the coordinator Lease in --namespace")
	fs.DurationVar(&c.Duration, "lease-duration", c.Duration, "how long a coordinator is trusted without renewing its Lease")
	fs.DurationVar(&c.RenewDeadline, "lease-renew-deadline", c.RenewDeadline, "how long a coordinator tries to renew before it stops acting")
	fs.DurationVar(&c.RetryPeriod, "lease-retry-period", c.RetryPeriod, "how often candidates try to take the Lease")
}

// Validate names the flag and the bound.
func (c LeaseConfig) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("coordinator: --lease-name must not be empty")
	case c.Duration < 2*time.Second || c.Duration > 5*time.Minute:
		return fmt.Errorf("coordinator: --lease-duration (%s) must be between 2s and 5m0s", c.Duration)
	case c.RenewDeadline <= 0 || c.RenewDeadline >= c.Duration:
		return fmt.Errorf("coordinator: --lease-renew-deadline (%s) must be positive and less than --lease-duration (%s)", c.RenewDeadline, c.Duration)
	case c.RetryPeriod <= 0 || c.RetryPeriod >= c.RenewDeadline:
		return fmt.Errorf("coordinator: --lease-retry-period (%s) must be positive and less than --lease-renew-deadline (%s)", c.RetryPeriod, c.RenewDeadline)
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
	clock     clock.WithTicker
	log       *zap.Logger
	onChange  func(leading bool)
	// onHolder, when set, hears the Lease holder this agent observes
	// while it campaigns, and "" when it stops campaigning.
	onHolder func(identity string)
	// holderDead reports whether the node of a Lease holder is confirmed
	// dead by a quorum. Nil never takes the Lease early.
	holderDead func(holder string) bool
}

func (l *leadership) run(ctx context.Context, lead func(ctx context.Context)) {
	for ctx.Err() == nil {
		if !l.waitMajority(ctx) {
			return
		}
		l.campaign(ctx, lead)
	}
}

// waitMajority blocks until this agent sees a majority, or ctx ends.
func (l *leadership) waitMajority(ctx context.Context) bool {
	t := l.clock.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for !l.majority() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C():
		}
	}
	return true
}

// campaign runs one leader election until leadership or the majority is
// lost.
func (l *leadership) campaign(ctx context.Context, lead func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if l.onHolder != nil {
		// Out of the campaign, what we saw of the Lease grows stale.
		defer l.onHolder("")
	}
	go func() {
		t := l.clock.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
				if !l.majority() {
					l.log.Warn("lost sight of the majority: giving up the coordinator Lease")
					cancel()
					return
				}
			}
		}
	}()
	if l.holderDead != nil {
		go l.takeFromDeadHolder(ctx)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(l.cfg.Name, l.namespace),
		Client:     l.client.CoordinationV1(),
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
				l.log.Info("became coordinator", zap.String("lease", l.namespace+"/"+l.cfg.Name))
				l.onChange(true)
				lead(ctx)
			},
			OnStoppedLeading: func() {
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
		l.log.Error("leader election config", zap.Error(err))
		return
	}
	le.Run(ctx)
}

// takeFromDeadHolder frees the Lease when its holder is a node that a
// quorum has confirmed dead: a coordinator that dies with its node would
// otherwise hold every failover back, its own included, until the Lease
// runs out (--lease-duration, plus a retry period). The delete carries the
// Lease's resourceVersion, so a holder that renewed meanwhile keeps it; the
// candidates then race to create it again, and one wins. A holder wrongly
// confirmed dead (it still reaches the API but not the gossip majority)
// loses the Lease at its next renewal, and it does not act meanwhile, since
// a coordinator acts only while it sees the majority.
func (l *leadership) takeFromDeadHolder(ctx context.Context) {
	t := l.clock.NewTicker(l.cfg.RetryPeriod)
	defer t.Stop()
	leases := l.client.CoordinationV1().Leases(l.namespace)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		lease, err := leases.Get(ctx, l.cfg.Name, metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			continue
		}
		holder := *lease.Spec.HolderIdentity
		if holder == "" || holder == l.identity || !l.holderDead(holder) {
			continue
		}
		rv := lease.ResourceVersion
		err = leases.Delete(ctx, l.cfg.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
		switch {
		case err == nil:
			l.log.Warn("the coordinator's node is confirmed dead by a quorum: freed its Lease", zap.String("holder", holder))
		case !apierrors.IsNotFound(err) && !apierrors.IsConflict(err):
			l.log.Warn("free the Lease of a dead coordinator", zap.String("holder", holder), zap.Error(err))
		}
	}
}
