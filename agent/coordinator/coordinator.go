package coordinator

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	kuberecord "k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/nodecache"
	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/agent/roster"
	"github.com/haagent/haagent/internal/periodic"
)

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
func New(cfg Config, d Deps) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
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
	if c.roster, err = newRosterPublisher(d, c.clock, c.log); err != nil {
		return nil, err
	}
	return c, nil
}

// Run campaigns for the Lease and leads while it holds it, until ctx ends.
// It returns after all its goroutines have.
func (c *Coordinator) Run(ctx context.Context) error {
	if !c.cfg.Enabled {
		c.log.Info("automatic failover is off (--failover=false): voting only")
		<-ctx.Done()
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.watchGuard(gctx) })
	g.Go(func() error { return c.advertise(gctx) })
	l := &leadership{
		cfg: c.cfg.Lease, client: c.d.Client, namespace: c.d.Namespace, identity: c.d.Gossip.LocalName(),
		majority: c.d.Gossip.SeesMajority, candidate: c.candidate, standby: c.standby, watchClient: c.d.WatchClient,
		clock: c.clock, log: c.log,
		onChange:   func(leading bool) { c.leading.Store(leading); c.metrics.leader.Set(boolFloat(leading)) },
		onHolder:   func(identity string) { c.holder.Store(identity) },
		holderDead: c.confirmedDead,
	}
	g.Go(func() error { l.run(gctx, c.lead); return nil })
	return g.Wait()
}

// watchGuard keeps haagent_failover_paused true to this agent's own view
// while it does not lead: with most nodes dead nobody may see a majority,
// and the alert must fire all the same. The leader sets it from its
// decisions.
func (c *Coordinator) watchGuard(ctx context.Context) error {
	// No jitter: a local gauge and this agent's own hold log, read by no
	// other agent.
	return periodic.Every(ctx, c.clock, time.Second, 0, func(ctx context.Context) {
		if c.leading.Load() {
			return
		}
		pause := failover.DeadFractionGuard(c.cfg.Decide, c.gossipView())
		c.metrics.paused.Set(boolFloat(pause != ""))
		if pause != "" {
			c.hold(ctx, failover.Decision{Target: "*", Reason: pause, Paused: true})
		}
	})
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
	ctx, cancel := context.WithCancel(ctx)
	defer c.watchNodes(ctx)() // waits for the watch to stop, before stepDown
	defer cancel()
	// No jitter: only the leader runs it, and --coordinator-tick is the
	// pace its decisions and their tests count on.
	err := periodic.Every(ctx, c.clock, c.cfg.Tick, 0, func(ctx context.Context) {
		c.mu.Lock()
		loaded := c.active != nil
		c.mu.Unlock()
		if !loaded {
			if err := c.load(ctx); err != nil {
				c.log.Error("load failover records", zap.Error(err))
				return
			}
		}
		c.step(ctx)
	})
	if err != nil {
		c.log.Error("coordinator not leading", zap.Error(err))
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
