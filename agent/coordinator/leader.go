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
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
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

// standbyWatch runs l.watchLease while a standby.
type standbyWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *standbyWatch) start(ctx context.Context, l *leadership) {
	if w.cancel != nil {
		return
	}
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	go func(done chan struct{}) { defer close(done); l.watchLease(ctx, &l.view) }(w.done)
}

func (w *standbyWatch) stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	<-w.done
	w.cancel, w.done = nil, nil
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
	wg.Add(1)
	go func() {
		defer wg.Done()
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
				if l.candidate != nil && !holding.Load() && !l.candidate() {
					l.log.Debug("no longer a candidate for the coordinator Lease: not campaigning")
					cancel()
					return
				}
			}
		}
	}()
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

// waitForPredecessor holds a new term back until the previous holder has
// stopped acting, and reports false if ctx ended first. A holder acts for
// up to holderStopBound after its last renewal, by its own clock. The last
// renewal this agent can know of is the last change of the Lease it saw
// while another identity held it (freeing a dead holder's Lease in
// takeFromDeadHolder is conditional on that version, so it adds nothing);
// the wait runs from there on this agent's clock. When the Lease changed hands by running out, that
// time has passed already. With no previous holder seen in this campaign
// (the Lease was ours, say from before a restart), it runs from the start of
// the campaign. Only when the Lease did not exist at this agent's first look
// is there nobody to wait for.
func (l *leadership) waitForPredecessor(ctx context.Context, prev *predecessor) bool {
	until, holder, ok := prev.until(l.cfg.holderStopBound())
	if !ok {
		return true
	}
	d := until.Sub(l.clock.Now())
	if d <= 0 {
		return true
	}
	l.log.Info("holding the coordinator Lease: waiting for the previous holder to stop acting",
		zap.String("holder", holder), zap.Duration("wait", d))
	return l.sleep(ctx, d)
}

// newPredecessor starts the record of what one campaign sees of other
// Lease holders.
func (l *leadership) newPredecessor() *predecessor {
	p := &predecessor{l: l, start: l.clock.Now(), firstInProcess: !l.looked.Load()}
	l.view.seed(p, l.identity)
	return p
}

// predecessor is what one campaign saw of the Lease before this agent held
// it. Every read of the Lease, client-go's and takeFromDeadHolder's, goes
// through observe.
type predecessor struct {
	l     *leadership
	start time.Time // the campaign's start, on l.clock

	mu sync.Mutex
	// firstInProcess: no read of the Lease has answered in this process
	// before this campaign.
	firstInProcess bool
	looked         bool   // a read has answered in this campaign
	absent         bool   // the first read of this process found no Lease
	state          string // what the last read found, "" for no Lease
	known          bool   // another holder's Lease was seen, or freed
	holder         string // the last other holder seen
	changed        time.Time
}

// observe records one read of the Lease: when it finds the Lease changed
// (another resourceVersion or renewTime), and not by this agent, the
// previous holder has just acted. The first read of a campaign counts as
// a change: the Lease may have been renewed just before.
func (p *predecessor) observe(lease *coordinationv1.Lease, err error) {
	if err != nil && !apierrors.IsNotFound(err) {
		return // learnt nothing
	}
	now := p.l.clock.Now()
	state, holder := "", ""
	if err == nil {
		state = "v" + lease.ResourceVersion
		if lease.Spec.RenewTime != nil {
			state += " " + lease.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
		}
		if lease.Spec.HolderIdentity != nil {
			holder = *lease.Spec.HolderIdentity
		}
	}
	p.l.looked.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	first := !p.looked
	p.looked = true
	if first && p.firstInProcess && err != nil {
		p.absent = true
	}
	if !first && state == p.state {
		return
	}
	p.state = state
	if err == nil && holder == p.l.identity {
		return // our own write, or our Lease from before a restart
	}
	if first && err != nil {
		return // no Lease: nobody to wait for, as far as we know
	}
	p.known, p.changed = true, now
	if holder != "" {
		p.holder = holder
	}
}

// lastHolder is the last other holder this campaign saw, "" for none.
func (p *predecessor) lastHolder() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.holder
}

// freed records that this agent deleted holder's Lease. The delete was
// conditional on the resourceVersion last read, which observe saw first at
// p.changed: the holder has not renewed since, so the wait still runs from
// there, and the time spent confirming the holder dead counts towards it.
func (p *predecessor) freed(holder string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.known {
		p.changed = p.l.clock.Now()
	}
	p.known, p.holder, p.state = true, holder, ""
}

// until is when a previous holder has surely stopped acting, given
// stopBound, and its identity; ok is false when there is nobody to wait for.
func (p *predecessor) until(stopBound time.Duration) (until time.Time, holder string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.known:
		return p.changed.Add(stopBound), p.holder, true
	case p.absent:
		return time.Time{}, "", false
	}
	return p.start.Add(stopBound), "", true
}

// observingClient hands every Lease read to observe.
type observingClient struct {
	coordinationclient.CoordinationV1Interface
	observe func(*coordinationv1.Lease, error)
}

func (c observingClient) Leases(namespace string) coordinationclient.LeaseInterface {
	return observingLeases{LeaseInterface: c.CoordinationV1Interface.Leases(namespace), observe: c.observe}
}

type observingLeases struct {
	coordinationclient.LeaseInterface
	observe func(*coordinationv1.Lease, error)
}

func (o observingLeases) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	lease, err := o.LeaseInterface.Get(ctx, name, opts)
	o.observe(lease, err)
	return lease, err
}

// takeFromDeadHolder frees the Lease when its holder is a node that a
// quorum has confirmed dead: a coordinator that dies with its node would
// otherwise hold every failover back, its own included, until the Lease
// runs out (--lease-duration, plus a retry period). The delete carries the
// Lease's resourceVersion, so a holder that renewed meanwhile keeps it; the
// candidates then race to create it again, and one wins. A holder wrongly
// confirmed dead (it still reaches the API but not the gossip majority)
// loses the Lease at its next renewal, and it does not act meanwhile, since
// a coordinator acts only while it sees the majority. Still, it may be in
// the middle of an action, or win the Lease back before a candidate: so
// the candidate that wins waits for it (waitForPredecessor), and prev
// learns of the delete.
func (l *leadership) takeFromDeadHolder(ctx context.Context, prev *predecessor) {
	t := l.clock.NewTicker(l.cfg.RetryPeriod)
	defer t.Stop()
	leases := observingLeases{LeaseInterface: l.client.CoordinationV1().Leases(l.namespace), observe: prev.observe}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		// Read the Lease only when the holder the election last saw is
		// confirmed dead: the election itself reads it every retry period.
		if h := prev.lastHolder(); h == "" || !l.holderDead(h) {
			continue
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
			prev.freed(holder)
			l.log.Warn("the coordinator's node is confirmed dead by a quorum: freed its Lease", zap.String("holder", holder))
		case !apierrors.IsNotFound(err) && !apierrors.IsConflict(err):
			l.log.Warn("free the Lease of a dead coordinator", zap.String("holder", holder), zap.Error(err))
		}
	}
}
