package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	kuberecord "k8s.io/client-go/tools/record"

	hacoord "github.com/haagent/haagent/agent/coordinator"
	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/nodestatus"
	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/agent/roster"
)

// coordinators are the real coordinators (agent/coordinator) of the
// members that campaign for the Lease, wired to their member's gossip and
// agreement as cmd/haagent wires them, on the group's fake API. Every
// agent runs one, but only the first --coordinator-candidates of a ranking
// every agent computes alike campaign, and the others do nothing but
// read the holder from gossip: the simulation runs one only on the members
// that rank first, and on one more for each crash of the Lease holder it
// plans (the next in rank becomes a candidate when the holder dies).
type coordinators struct {
	o    options
	api  *fakeAPI
	want map[string]bool // members that run one

	mu  sync.Mutex
	run map[string]*runningCoordinator
}

// runningCoordinator is one member's coordinator while it runs.
type runningCoordinator struct {
	m      *member
	down   *atomic.Bool // its member crashed: its API clients refuse
	cancel context.CancelFunc
	done   chan struct{}
	events kuberecord.EventBroadcaster
}

// coordinatorMembers is how many members run a coordinator: the Lease's
// candidates and one for each planned crash of the holder.
func coordinatorMembers(o options) int {
	return hacoord.DefaultLeaseConfig().Candidates + o.coordinatorCrashes
}

// rankedFirst are the k members of a group of n that rank first for the
// Lease, every member alive and ready. A member in them is in them in any
// part of the group that holds it, so it campaigns from its start as it
// would in the whole group.
func rankedFirst(n, k int) []string {
	ms := make([]gossip.Member, n)
	for i := range ms {
		name := memberName(i)
		ms[i] = gossip.Member{Name: name, State: gossip.StateAlive, Meta: gossip.Meta{NodeName: name, Ready: true}}
	}
	hacoord.RankCandidates(ms)
	out := make([]string, 0, k)
	for i := 0; i < k && i < n; i++ {
		out = append(out, ms[i].Name)
	}
	return out
}

func newCoordinators(o options, n int, api *fakeAPI) *coordinators {
	cs := &coordinators{o: o, api: api, want: map[string]bool{}, run: map[string]*runningCoordinator{}}
	for _, name := range rankedFirst(n, coordinatorMembers(o)) {
		cs.want[name] = true
	}
	return cs
}

// coordinatorConfig is the agent's default, but for the tick (-decide-tick)
// and the failover rate limit: the burst covers every crash of the run, as
// the rate limit is a policy, not what the simulation measures.
func coordinatorConfig(o options) hacoord.Config {
	cfg := hacoord.DefaultConfig()
	cfg.Tick = o.decideTick
	cfg.Decide.Burst = min(100, max(cfg.Decide.Burst, o.crashes+o.coordinatorCrashes))
	return cfg
}

// start runs m's coordinator, if m is one of the members that run one.
func (cs *coordinators) start(m *member) error {
	if !cs.want[m.name] {
		return nil
	}
	log := zap.NewNop()
	reg := prometheus.NewRegistry() // never gathered
	typed, dyn, down := cs.api.clients(m.name)
	store, err := record.NewStore(record.DefaultConfig(), record.Deps{Client: dyn, Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := kuberecord.NewBroadcaster(kuberecord.WithContext(ctx))
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: typed.CoreV1().Events("")})
	recorder := events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "haagent", Host: m.name})
	fail := func(err error) error {
		cancel()
		events.Shutdown()
		return fmt.Errorf("coordinator of %s: %w", m.name, err)
	}
	evictor, err := evict.New(evict.DefaultConfig(), evict.Deps{Client: typed, Recorder: recorder, Logger: log, Registerer: reg})
	if err != nil {
		return fail(err)
	}
	c, err := hacoord.New(coordinatorConfig(cs.o), hacoord.Deps{
		Client: typed, Namespace: simNamespace, Gossip: m.g, Ballots: m.a, Notices: m.a,
		Evictor: evictor, Store: store, Logger: log, Registerer: reg,
		AgentCondition: nodestatus.ConditionType, RosterName: roster.DefaultName,
		Advertiser: m.g, Recorder: recorder,
	})
	if err != nil {
		return fail(err)
	}
	sc := &runningCoordinator{m: m, down: down, cancel: cancel, done: make(chan struct{}), events: events}
	m.coord.Store(c)
	go func() { defer close(sc.done); _ = c.Run(ctx) }()
	cs.mu.Lock()
	cs.run[m.name] = sc
	cs.mu.Unlock()
	return nil
}

// runs reports whether m runs a coordinator: it is spared the crashes and
// stalls other than those of the Lease holder.
func (cs *coordinators) runs(m *member) bool { return cs.want[m.name] }

// holder is the member that holds the Lease now, if it runs here.
func (cs *coordinators) holder() *member {
	h := cs.api.leaseHolder()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if sc := cs.run[h]; sc != nil {
		return sc.m
	}
	return nil
}

// crash cuts m's coordinator off the API, then stops it, as its node's
// crash would: it releases nothing.
func (cs *coordinators) crash(m *member) {
	cs.mu.Lock()
	sc := cs.run[m.name]
	cs.mu.Unlock()
	if sc == nil {
		return
	}
	sc.down.Store(true)
	sc.cancel()
}

// stop stops every coordinator and waits for them.
func (cs *coordinators) stop() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, sc := range cs.run {
		sc.cancel()
	}
	for _, sc := range cs.run {
		<-sc.done
		sc.events.Shutdown()
	}
}

// holderCacheFor is how long a member that runs no coordinator keeps the
// advertised holder it found: the agent looks it up on every vote it sends
// or passes on, a copy and sort of its whole table each time, and in a
// simulation of hundreds of members that was a third of the CPU time. The
// answer is the same but within this long after the holder's flag changes
// in the member's view, as often as the holder publishes it (every 100 ms).
const holderCacheFor = 100 * time.Millisecond

// holderCache is one member's advertised holder, looked up at most once per
// holderCacheFor.
type holderCache struct {
	mu   sync.Mutex
	at   time.Time
	name string
}

func (h *holderCache) get(g *gossip.Membership) string {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.at.IsZero() || now.Sub(h.at) >= holderCacheFor {
		h.name, h.at = advertisedHolder(g), now
	}
	return h.name
}

// advertisedHolder is the Lease holder as g's gossip advertises it, as
// the coordinator's Holder answers on an agent that does not campaign: an
// alive member that says it holds the Lease, the first by name when two
// do for a moment.
func advertisedHolder(g *gossip.Membership) string {
	var out string
	for _, m := range g.Members() {
		if m.State == gossip.StateAlive && m.Meta.Coordinator && (out == "" || m.Name < out) {
			out = m.Name
		}
	}
	return out
}
