package coordinator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kuberecord "k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/nodecache"
	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/agent/roster"
)

// Config configures the coordinator.
type Config struct {
	Lease  LeaseConfig
	Decide failover.Config
	// Enabled turns automatic failover on. Off, the agent still votes and
	// never campaigns for the Lease.
	Enabled bool
	// Tick is how often the leader decides and moves records along.
	Tick time.Duration
	// FenceBound is how long after a node is confirmed dead its stateful
	// pods (StatefulSet, ReadWriteOnce volumes) may be force-removed: the
	// agents' --fence-after plus a margin, or the time the node is known
	// to be powered off by. 0 never force-removes them: they wait for the
	// node or for a person.
	FenceBound time.Duration
	// Stabilization is how long a returned node must stay alive and Ready
	// before haagent uncordons it. It doubles for each further failover of
	// the same node within an hour, so a flapping node stays cordoned.
	Stabilization time.Duration
	// RecoveryTimeout is how long a failover may wait in Recovering for its
	// workloads to be ready elsewhere, counted on this coordinator's clock
	// from when it took the record over or the record entered Recovering.
	// Then the record ends Failed, naming the owners still short, so that a
	// failover that will not finish by itself (a replacement that cannot
	// be scheduled, a volume that stays attached) alerts instead of
	// staying active for ever. Long enough for slow image pulls and volume
	// attachments.
	RecoveryTimeout time.Duration
}

// DefaultConfig enables failover with stateful recovery off.
func DefaultConfig() Config {
	return Config{
		Lease:           DefaultLeaseConfig(),
		Decide:          failover.DefaultConfig(),
		Enabled:         true,
		Tick:            250 * time.Millisecond,
		Stabilization:   2 * time.Minute,
		RecoveryTimeout: 30 * time.Minute,
	}
}

// RegisterFlags binds the flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Lease.RegisterFlags(fs)
	fs.BoolVar(&c.Enabled, "failover", c.Enabled, "fail dead nodes over automatically (off: vote and alert only)")
	fs.DurationVar(&c.Tick, "coordinator-tick", c.Tick, "how often the coordinator decides and advances failovers")
	fs.DurationVar(&c.FenceBound, "fence-bound", c.FenceBound, "after confirmation, when stateful pods of a dead node may be force-removed (0: never; must exceed --fence-after)")
	fs.DurationVar(&c.Stabilization, "stabilization", c.Stabilization, "how long a returned node must stay healthy before it is uncordoned")
	fs.DurationVar(&c.RecoveryTimeout, "recovery-timeout", c.RecoveryTimeout, "how long a failover waits for its workloads to be ready elsewhere before it ends Failed")
	fs.DurationVar(&c.Decide.VoteMaxAge, "vote-max-age", c.Decide.VoteMaxAge, "how long a received vote counts")
	fs.Float64Var(&c.Decide.MaxDeadFraction, "max-dead-fraction", c.Decide.MaxDeadFraction, "pause failover when more than this fraction of nodes (cluster or zone) is dead")
	fs.IntVar(&c.Decide.ZoneMinNodes, "zone-min-nodes", c.Decide.ZoneMinNodes, "smallest zone judged on its own by --max-dead-fraction")
	fs.IntVar(&c.Decide.Burst, "failover-burst", c.Decide.Burst, "failovers that may start at once")
	fs.DurationVar(&c.Decide.Interval, "failover-interval", c.Decide.Interval, "one more failover may start each interval")
}

// Validate names the flag and the bound. fence are the agents' settings
// that bound how long a cut-off node may keep running its pods.
func (c Config) Validate(fence FenceTerms) error {
	if err := c.Lease.Validate(); err != nil {
		return err
	}
	if err := c.Decide.Validate(); err != nil {
		return err
	}
	switch {
	case c.Tick < 10*time.Millisecond || c.Tick > 10*time.Second:
		return fmt.Errorf("coordinator: --coordinator-tick (%s) must be between 10ms and 10s", c.Tick)
	case c.Stabilization < 0 || c.Stabilization > time.Hour:
		return fmt.Errorf("coordinator: --stabilization (%s) must be between 0s and 1h0m0s", c.Stabilization)
	case c.RecoveryTimeout < time.Minute || c.RecoveryTimeout > 24*time.Hour:
		return fmt.Errorf("coordinator: --recovery-timeout (%s) must be between 1m0s and 24h0m0s", c.RecoveryTimeout)
	}
	return validateFenceBound(c.FenceBound, fence)
}

// Gossip is what the coordinator reads from the membership.
type Gossip interface {
	LocalName() string
	Members() []gossip.Member
	SeesMajority() bool
	// ExpectedNames is the group majorities are counted against: members
	// seen that have not left, and Nodes an agent ran on, less deleted
	// ones.
	ExpectedNames() []string
}

// Ballots gives locked access to the votes.
type Ballots interface {
	WithBallots(func(*failover.Ballots))
}

// Notices tells the voters that a node's failover is under way, so that
// they stop repeating their votes about it.
type Notices interface {
	UnderWay(node string)
}

// Deps are what a Coordinator needs.
type Deps struct {
	Client    kubernetes.Interface
	Namespace string
	Gossip    Gossip
	Ballots   Ballots
	// Notices is optional: without it, voters keep repeating their votes
	// about a node for as long as it is dead.
	Notices    Notices
	Evictor    *evict.Evictor
	Store      *record.Store
	DryRun     bool
	Clock      clock.WithTicker
	Logger     *zap.Logger
	Registerer prometheus.Registerer
	// WatchClient serves the Node watch the coordinator holds while it
	// leads; it must have no overall request timeout, or the watch is cut
	// at each. Nil: Client.
	WatchClient kubernetes.Interface
	// AgentCondition is the Node condition that marks a Node an agent has
	// run on (the roster's agent field).
	AgentCondition corev1.NodeConditionType
	// RosterName is the ConfigMap in Namespace the coordinator publishes
	// the roster to (agent/roster); "" publishes none.
	RosterName string
	// APIReachable reports whether this agent reaches the API server; nil:
	// assume it does. Only an agent that does campaigns out of rank.
	APIReachable func() bool
	// Advertiser, when set, tells the gossip group whether this agent
	// holds the Lease.
	Advertiser interface{ SetCoordinator(holding bool) error }
	// Recorder records the Events of failovers on the records, the Nodes
	// and the pods (see events.go); its source component should be
	// "haagent". Nil records none.
	Recorder kuberecord.EventRecorder
}

// Coordinator decides and acts while it holds the Lease.
type Coordinator struct {
	cfg     Config
	d       Deps
	log     *zap.Logger
	clock   clock.WithTicker
	decider *failover.Decider
	metrics *metrics
	// refusedFences counts the refusal spells of the fence guards, by
	// reason: fenceRefusedRenewed or fenceRefusedReady.
	refusedFences *prometheus.CounterVec

	mu      sync.Mutex
	active  map[string]*record.NodeFailover // by node
	taken   map[string]takeover             // by node, for the records in active
	pace    map[string]*pace                // by node, for the records in active
	history map[string][]time.Time          // completed failovers by node
	held    map[string]string               // last hold reason logged, by node
	back    map[string]time.Time            // since when a failed-over node is back
	unready map[string]time.Time            // since when an alive node reports itself not ready
	failed  map[string]bool                 // nodes whose last failover failed and that are not back
	leading atomic.Bool
	// nodes is this term's Node watch, nil out of a term.
	nodes  atomic.Pointer[nodecache.Cache]
	roster *roster.Publisher
	// noHolderSince: since when no alive member advertised the Lease (under
	// mu); escalated: candidate has said so.
	noHolderSince time.Time
	escalated     atomic.Bool
	holder        atomic.Value // string: the Lease holder last observed
}

// takeover is when this term of the coordinator took a record over (created
// it, adopted it or loaded it from the API) and what the node's kubelet
// Lease was then. The fence bound and guards are measured from it, never
// from the record's timestamps: those were written by whichever coordinator
// confirmed the node, by its wall clock.
type takeover struct {
	// at is from c.clock.Now() and keeps its monotonic reading: nothing
	// may round it or change its zone.
	at time.Time
	// lease is valid when leaseRead is set; a Lease that could not be read
	// at takeover is read before the fence bound starts.
	lease     evict.NodeLease
	leaseRead bool
	// recovering is when this term first found the record in Recovering,
	// from c.clock.Now(): --recovery-timeout counts from it.
	recovering time.Time
}

// Holder returns the holder of the coordinator Lease as this agent last
// observed it while campaigning; when it does not campaign (not a ranked
// candidate, no majority in sight, automatic failover off), the holder
// gossip advertises; "" when it knows of none.
func (c *Coordinator) Holder() string {
	if h, _ := c.holder.Load().(string); h != "" {
		return h
	}
	return c.advertised()
}

// New validates and builds the coordinator; it starts nothing.
func New(cfg Config, fence FenceTerms, d Deps) (*Coordinator, error) {
	if err := cfg.Validate(fence); err != nil {
		return nil, err
	}
	if d.Client == nil || d.Gossip == nil || d.Ballots == nil || d.Evictor == nil || d.Store == nil || d.Logger == nil || d.Registerer == nil {
		return nil, errors.New("coordinator: New needs Client, Gossip, Ballots, Evictor, Store, Logger and Registerer")
	}
	if d.Namespace == "" {
		return nil, errors.New("coordinator: --namespace is required for the coordinator Lease (or set POD_NAMESPACE)")
	}
	dec, err := failover.NewDecider(cfg.Decide)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(d.Registerer)
	if err != nil {
		return nil, err
	}
	m.enabled.Set(boolFloat(cfg.Enabled))
	refused, err := newFenceRefused(d.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Coordinator{cfg: cfg, d: d, log: d.Logger.Named("coordinator"), clock: d.Clock, decider: dec, metrics: m,
		refusedFences: refused, held: map[string]string{}, unready: map[string]time.Time{}}
	if c.clock == nil {
		c.clock = clock.RealClock{}
	}
	c.roster = newRosterPublisher(d, c.clock, c.log)
	return c, nil
}

// Values of the reason label of haagent_failover_fence_refused_total.
const (
	fenceRefusedRenewed = "node_renewed"
	fenceRefusedReady   = "node_ready"
)

func newFenceRefused(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "haagent", Subsystem: "failover", Name: "fence_refused_total",
		Help: "Times the fence guards found the kubelet of a node past its fence bound alive (node_renewed: it renewed its Lease after confirmation; node_ready: it is Ready), so its stateful pods stayed. Counted once per spell."},
		[]string{"reason"})
	if err := reg.Register(refused); err != nil {
		return nil, err
	}
	for _, r := range []string{fenceRefusedRenewed, fenceRefusedReady} {
		refused.WithLabelValues(r)
	}
	return refused, nil
}

// Run campaigns for the Lease and leads while it holds it, until ctx ends.
func (c *Coordinator) Run(ctx context.Context) error {
	if !c.cfg.Enabled {
		c.log.Info("automatic failover is off (--failover=false): voting only")
		<-ctx.Done()
		return nil
	}
	go c.watchGuard(ctx)
	go c.advertise(ctx)
	l := &leadership{
		cfg: c.cfg.Lease, client: c.d.Client, namespace: c.d.Namespace, identity: c.d.Gossip.LocalName(),
		majority: c.d.Gossip.SeesMajority, candidate: c.candidate, standby: c.standby, watchClient: c.d.WatchClient,
		clock: c.clock, log: c.log,
		onChange:   func(leading bool) { c.leading.Store(leading); c.metrics.leader.Set(boolFloat(leading)) },
		onHolder:   func(identity string) { c.holder.Store(identity) },
		holderDead: c.confirmedDead,
	}
	l.run(ctx, c.lead)
	return nil
}

// confirmedDead reports whether a quorum confirms the node dead, from this
// agent's gossip view and ballots.
func (c *Coordinator) confirmedDead(node string) bool {
	members := c.gossipView()
	var ok bool
	c.d.Ballots.WithBallots(func(b *failover.Ballots) {
		_, ok = c.decider.ConfirmedDead(failover.Input{Now: c.clock.Now(), Members: members, Ballots: b}, node)
	})
	return ok
}

// gossipView is this agent's membership as the decision core sees it,
// without the API's opt-out labels or readiness history (members adds
// those for the leader).
func (c *Coordinator) gossipView() []failover.Member {
	var out []failover.Member
	for _, m := range c.d.Gossip.Members() {
		out = append(out, failover.Member{Name: m.Name, State: m.State, Zone: m.Meta.Zone, Epoch: m.Meta.StartEpoch})
	}
	return c.withUnseen(out)
}

// withUnseen adds the members of the expected group that this agent's
// gossip never saw (Nodes an agent ran on, known from the API only) as
// dead: they count in the quorum and the dead fraction, as the gossip
// majority tests count them, so that a coordinator restarted after some
// members died does not confirm a death with a majority of what it sees
// alone. With no votes of their own and no epoch, they are never failed
// over from this view.
func (c *Coordinator) withUnseen(members []failover.Member) []failover.Member {
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		seen[m.Name] = true
	}
	for _, name := range c.d.Gossip.ExpectedNames() {
		if !seen[name] {
			members = append(members, failover.Member{Name: name, State: gossip.StateDead})
		}
	}
	return members
}

// watchGuard keeps haagent_failover_paused true to this agent's own view
// while it does not lead: with most nodes dead nobody may see a majority,
// and the alert must fire all the same. The leader sets it from its
// decisions.
func (c *Coordinator) watchGuard(ctx context.Context) {
	t := c.clock.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if c.leading.Load() {
			continue
		}
		pause := failover.DeadFractionGuard(c.cfg.Decide, c.gossipView())
		c.metrics.paused.Set(boolFloat(pause != ""))
		if pause != "" {
			c.hold(ctx, failover.Decision{Target: "*", Reason: pause, Paused: true})
		}
	}
}

// lead runs the loop while this agent holds the Lease.
func (c *Coordinator) lead(ctx context.Context) {
	// What an earlier term of ours knew may be stale: another coordinator
	// may have moved the records on since. Nothing is done until they are
	// read again from the API, so that no failover is forgotten or started
	// twice.
	c.mu.Lock()
	c.active, c.taken, c.pace = nil, nil, nil
	c.mu.Unlock()
	defer c.stepDown()
	c.watchNodes(ctx)
	t := c.clock.NewTicker(c.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		c.mu.Lock()
		loaded := c.active != nil
		c.mu.Unlock()
		if !loaded {
			if err := c.load(ctx); err != nil {
				c.log.Error("load failover records", zap.Error(err))
				continue
			}
		}
		c.step(ctx)
	}
}

// stepDown forgets what this term knew once the Lease is lost. Writes still
// queued in the Store are dropped: they are this term's view of failovers
// that another coordinator may have moved on since, and written late, when
// this agent leads again perhaps days later, they would bring back a
// failover of a node that is healthy by then. The next term resumes from
// what the API holds.
func (c *Coordinator) stepDown() {
	if n := c.d.Store.DropPending(); n > 0 {
		c.log.Warn("coordinator Lease lost: queued failover record writes dropped", zap.Int("writes", n))
	}
	c.mu.Lock()
	c.active, c.taken, c.pace, c.failed = nil, nil, nil, nil
	c.mu.Unlock()
	c.metrics.setMemberStatus(nil)
}

// load reads the active records (to resume them) and the recent history
// (for the flapping rule).
func (c *Coordinator) load(ctx context.Context) error {
	all, err := c.d.Store.ListAll(ctx)
	if err != nil {
		return err
	}
	active := map[string]*record.NodeFailover{}
	history := map[string][]time.Time{}
	last := map[string]*record.NodeFailover{} // the latest ended failover of each node
	for i := range all {
		f := all[i].DeepCopy()
		if f.Active() {
			active[f.Spec.Node] = f
		} else if f.Status.Confirmed != nil {
			history[f.Spec.Node] = append(history[f.Spec.Node], f.Status.Confirmed.Time)
			if l := last[f.Spec.Node]; l == nil || l.Status.Confirmed.Before(f.Status.Confirmed) {
				last[f.Spec.Node] = f
			}
		}
	}
	failed := map[string]bool{}
	for n, f := range last {
		// Also with a newer failover of the node under way: memberStatus
		// forgets the failure once that one has the workloads back.
		if f.Status.Phase == record.PhaseFailed {
			failed[n] = true
		}
	}
	c.mu.Lock()
	c.active, c.history, c.held, c.taken, c.pace = active, history, map[string]string{}, map[string]takeover{}, map[string]*pace{}
	c.failed = failed
	c.mu.Unlock()
	for _, f := range active {
		c.takeOver(ctx, f, evict.NodeLease{}, false)
	}
	if len(active) > 0 {
		names := make([]string, 0, len(active))
		for n := range active {
			names = append(names, n)
		}
		sort.Strings(names)
		c.log.Info("resuming failovers", zap.Strings("nodes", names))
	}
	c.metrics.active.Set(float64(len(active)))
	return nil
}

// step is one pass: decide, start, advance.
func (c *Coordinator) step(ctx context.Context) {
	if err := c.d.Store.Flush(ctx); err != nil {
		c.log.Warn("retry queued record writes", zap.Error(err))
	}
	now := c.clock.Now()
	members := c.members(ctx)
	activeSet, draining := map[string]bool{}, map[string]bool{}
	for _, f := range c.activeRecords() {
		activeSet[f.Spec.Node] = true
		if f.Spec.Cause == record.CauseNotReady {
			draining[f.Spec.Node] = true
		}
	}
	var decisions []failover.Decision
	var pause string
	c.d.Ballots.WithBallots(func(b *failover.Ballots) {
		decisions, pause = c.decider.Decide(failover.Input{Now: now, Members: members, Ballots: b, Active: activeSet, Draining: draining})
	})
	c.metrics.paused.Set(boolFloat(pause != ""))
	agentDown := 0
	for _, d := range decisions {
		switch d.Action {
		case failover.ActionStart:
			c.start(ctx, d, now)
		case failover.ActionHold:
			c.hold(ctx, d)
		case failover.ActionAgentDown:
			agentDown++
		}
	}
	c.metrics.agentDown.Set(float64(agentDown))

	for _, f := range c.activeRecords() {
		if ctx.Err() != nil {
			return
		}
		if c.backingOff(f.Spec.Node, members, now) {
			continue
		}
		c.advance(ctx, f, members)
	}
	active := c.activeRecords()
	if c.d.Notices != nil {
		// Once started, a failover of a dead node reads no vote again.
		for _, f := range active {
			if f.Spec.Cause != record.CauseNotReady {
				c.d.Notices.UnderWay(f.Spec.Node)
			}
		}
	}
	c.metrics.active.Set(float64(len(active)))
	c.metrics.setMemberStatus(c.memberStatus(members, decisions, active))
}

// memberStatus is what haagent_failover_member_status shows after a pass:
// the members held or agent-down by this pass's decisions, those with an
// active failover (returning once they are alive again), and those whose
// last failover failed. A failure stays the finding, through the new
// failover that fresh votes start, until the node is alive again, its Node
// is deleted, or a later failover has its workloads back.
func (c *Coordinator) memberStatus(members []failover.Member, decisions []failover.Decision, active []*record.NodeFailover) map[string]string {
	status := map[string]string{}
	alive := map[string]bool{}
	for _, m := range members {
		alive[m.Name] = m.State == gossip.StateAlive
	}
	for _, d := range decisions {
		switch d.Action {
		case failover.ActionHold:
			status[d.Target] = statusHeld
		case failover.ActionAgentDown:
			status[d.Target] = statusAgentDown
		}
	}
	for _, f := range active {
		switch {
		case f.Spec.Cause == record.CauseNotReady:
			status[f.Spec.Node] = statusDraining
		case alive[f.Spec.Node] || f.Status.Phase == record.PhaseNodeReturned:
			// Back on gossip: no longer dead, whatever the hand-back
			// still waits for.
			status[f.Spec.Node] = statusReturning
		case f.Status.Phase == record.PhaseRecovered:
			status[f.Spec.Node] = statusFailedOver
		default:
			status[f.Spec.Node] = statusFailingOver
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range members {
		if m.State == gossip.StateAlive || m.State == gossip.StateLeft {
			delete(c.failed, m.Name)
		}
	}
	for n := range c.failed {
		switch status[n] {
		case statusFailedOver, statusReturning:
			delete(c.failed, n) // a later failover succeeded
		default:
			status[n] = statusFailed
		}
	}
	return status
}

// activeRecords returns the records this term acts on, by node name. The
// records themselves are the lead loop's: only the map needs the lock.
func (c *Coordinator) activeRecords() []*record.NodeFailover {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*record.NodeFailover, 0, len(c.active))
	for _, f := range c.active {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Node < out[j].Spec.Node })
	return out
}

// members converts the gossip view: the opt-out label of the members
// gossip holds dead (the only ones a vote can be about), and since when
// each alive member has reported itself not ready.
func (c *Coordinator) members(ctx context.Context) []failover.Member {
	now := c.clock.Now()
	var out []failover.Member
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.d.Gossip.Members() {
		fm := failover.Member{Name: m.Name, State: m.State, Zone: m.Meta.Zone, Epoch: m.Meta.StartEpoch}
		switch {
		case m.State == gossip.StateAlive && !m.Meta.Ready && m.MetaError == "":
			if _, ok := c.unready[m.Name]; !ok {
				c.unready[m.Name] = now
			}
			fm.NotReadySince, fm.NotReadyReason = c.unready[m.Name], m.Meta.Reason
		default:
			delete(c.unready, m.Name)
		}
		if m.State == gossip.StateDead || !fm.NotReadySince.IsZero() {
			n, err := c.node(ctx, m.Name)
			switch {
			case err == nil:
				fm.OptOut = evict.OptedOut(n)
			case apierrors.IsNotFound(err) && m.State == gossip.StateDead:
				// Removed from the cluster: there is nothing to fail over,
				// and it must not count towards the quorum or the dead
				// fraction, as if it had left.
				fm.State = gossip.StateLeft
			}
		}
		out = append(out, fm)
	}
	return c.withUnseen(out)
}

// hold logs, counts and records as an Event (see holdEvent) that a guard
// holds the failover of d.Target back, once per node and reason.
func (c *Coordinator) hold(ctx context.Context, d failover.Decision) {
	c.mu.Lock()
	last := c.held[d.Target]
	c.held[d.Target] = d.Reason
	c.mu.Unlock()
	if last != d.Reason {
		c.log.Warn("failover held back", zap.String("node", d.Target), zap.String("reason", d.Reason), zap.String("tally", d.Tally.String()))
		c.metrics.held.Inc()
		c.holdEvent(ctx, d)
	}
}

// start records a new failover. The record is the failover: once it is in
// the API, any coordinator will carry it through.
func (c *Coordinator) start(ctx context.Context, d failover.Decision, now time.Time) {
	c.mu.Lock()
	mine := c.active[d.Target]
	c.mu.Unlock()
	if mine != nil && !d.NotReady && mine.Spec.Cause == record.CauseNotReady && !c.supersede(ctx, mine) {
		return
	}
	// Never two active records for one node. The records were loaded when
	// this term began; another coordinator may have written one since (two
	// agents can both believe they hold the Lease for a moment). That one
	// is carried on instead, unless it is a drain that this dead
	// confirmation supersedes.
	existing, err := c.d.Store.ActiveFor(ctx, d.Target)
	if err != nil {
		c.log.Warn("look up failover records of the node; not starting", zap.String("node", d.Target), zap.Error(err))
		return
	}
	if existing != nil {
		if d.NotReady || existing.Spec.Cause != record.CauseNotReady {
			c.adopt(ctx, existing)
			return
		}
		if !c.supersede(ctx, existing) {
			return
		}
	}
	var lease evict.NodeLease
	leaseRead := false
	if !d.NotReady {
		// Read at confirmation, before anything is done to the node: from
		// here on, a renewal by its kubelet means it is not fenced.
		if lease, err = c.d.Evictor.NodeLease(ctx, d.Target); err == nil {
			leaseRead = true
		} else {
			c.log.Warn("read the node's Lease at confirmation", zap.String("node", d.Target), zap.Error(err))
		}
	}
	reason := fmt.Sprintf("confirmed dead by %s", d.Tally)
	if d.NotReady {
		reason = d.Cause
	}
	f, err := record.NewNodeFailover(d.Target, reason, c.d.DryRun, now)
	if err != nil {
		c.log.Error("new failover record", zap.String("node", d.Target), zap.Error(err))
		return
	}
	f.Spec.Cause = record.CauseDead
	if d.NotReady {
		f.Spec.Cause = record.CauseNotReady
	}
	st := &f.Status
	lastHeard := d.Tally.LastHeard
	if lastHeard.IsZero() || (!d.Tally.FirstSuspected.IsZero() && d.Tally.FirstSuspected.Before(lastHeard)) {
		// Nobody recorded an ack (or the clocks disagree): the first
		// suspicion is the latest time the node is known to have been fine.
		lastHeard = d.Tally.FirstSuspected
	}
	if lastHeard.IsZero() {
		lastHeard = now
	}
	st.LastHeard = record.At(lastHeard)
	st.Suspected = record.At(d.Tally.FirstSuspected)
	st.Confirmed = record.At(now)
	var votes []failover.Vote
	c.d.Ballots.WithBallots(func(b *failover.Ballots) { votes = b.Votes(d.Target) })
	for _, v := range votes {
		st.Votes = append(st.Votes, record.Vote{Voter: v.Voter, Opinion: record.Opinion(v.Opinion.String()), At: metav1.NewMicroTime(v.At)})
	}
	if err := st.Advance(record.PhaseConfirmed); err != nil {
		c.log.Error("advance", zap.Error(err))
		return
	}
	st.Message = reason
	if c.d.DryRun {
		st.Outcome = record.OutcomeDryRun
	}
	if err := c.d.Store.Create(ctx, f); err != nil && !errors.Is(err, record.ErrPending) {
		c.log.Error("create failover record", zap.String("node", d.Target), zap.Error(err))
		return
	}
	c.mu.Lock()
	c.active[d.Target] = f
	delete(c.held, d.Target)
	c.mu.Unlock()
	c.takeOver(ctx, f, lease, leaseRead)
	c.phaseEvent(f, "")
	c.metrics.failovers.WithLabelValues("started").Inc()
	c.metrics.detection.Observe(now.Sub(lastHeard).Seconds())
	c.log.Warn("failover started", zap.String("node", d.Target), zap.String("tally", d.Tally.String()),
		zap.Duration("since_last_heard", now.Sub(lastHeard)), zap.Bool("dry_run", c.d.DryRun))
}

// msgSuperseded ends a not-ready drain whose node a quorum then confirmed
// dead.
const msgSuperseded = "superseded: the node was then confirmed dead"

// supersede ends a not-ready drain of a node that a quorum now confirms
// dead, so that the failover of a dead node, which taints the node, marks
// it not ready and may fence it, starts in its place. It touches nothing
// on the node: Undo would lift the cordon until the new record put it back,
// and the new record's Cordon finds haagent's own and keeps it, so the
// hand-back at the end still removes it. It reports whether the end of the
// drain is in the API: only then may another record of the node be
// created. A write that was only queued is tried again on the next pass.
func (c *Coordinator) supersede(ctx context.Context, drain *record.NodeFailover) bool {
	node := drain.Spec.Node
	c.mu.Lock()
	if mine := c.active[node]; mine != nil && mine.Name == drain.Name {
		drain = mine // this term's copy is the newest
	}
	c.mu.Unlock()
	from := drain.Status.Phase
	if !from.Final() {
		if err := drain.Status.Supersede(c.clock.Now(), msgSuperseded); err != nil {
			c.log.Error("end the not-ready failover", zap.String("node", node), zap.Error(err))
			return false
		}
	}
	if err := c.persist(ctx, drain); err != nil {
		c.log.Warn("end the not-ready failover of a node confirmed dead; retrying", zap.String("node", node),
			zap.String("nodefailover", drain.Name), zap.Error(err))
		return false
	}
	c.log.Warn("not-ready failover superseded: the node was confirmed dead", zap.String("node", node),
		zap.String("nodefailover", drain.Name), zap.String("phase", string(from)))
	c.phaseEvent(drain, from)
	c.finish(ctx, drain)
	return true
}

// adopt carries on a node's active record that this term did not load.
func (c *Coordinator) adopt(ctx context.Context, f *record.NodeFailover) {
	node := f.Spec.Node
	c.mu.Lock()
	c.active[node] = f
	delete(c.held, node)
	c.mu.Unlock()
	c.takeOver(ctx, f, evict.NodeLease{}, false)
	c.log.Warn("failover of the node already recorded: carrying it on instead of starting another",
		zap.String("node", node), zap.String("nodefailover", f.Name), zap.String("phase", string(f.Status.Phase)))
}

// takeOver notes that this term now acts on f: the fence bound counts from
// now on this agent's clock, and the guards compare the node's Lease with
// how it is now. lease is passed when the caller has just read it (at
// confirmation); otherwise it is read here if the record may still need
// the fence.
func (c *Coordinator) takeOver(ctx context.Context, f *record.NodeFailover, lease evict.NodeLease, leaseRead bool) {
	node := f.Spec.Node
	tk := takeover{at: c.clock.Now(), lease: lease, leaseRead: leaseRead}
	if f.Status.Phase == record.PhaseRecovering {
		tk.recovering = tk.at
	}
	if !leaseRead && f.Spec.Cause != record.CauseNotReady && beforeFence(f.Status.Phase) {
		l, err := c.d.Evictor.NodeLease(ctx, node)
		if err != nil {
			c.log.Warn("read the node's Lease at takeover; read again before fencing", zap.String("node", node), zap.Error(err))
		} else {
			tk.lease, tk.leaseRead = l, true
		}
	}
	c.mu.Lock()
	if c.taken == nil {
		c.taken = map[string]takeover{}
	}
	c.taken[node] = tk
	c.mu.Unlock()
}

// beforeFence reports whether a record in phase p may still fence its node.
func beforeFence(p record.Phase) bool {
	switch p {
	case record.PhaseConfirmed, record.PhaseCordoned, record.PhaseTainted, record.PhasePodsNotReady,
		record.PhaseEvicting, record.PhaseAwaitingFence:
		return true
	}
	return false
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// nodeReady reports the Node's Ready condition status.
func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}
