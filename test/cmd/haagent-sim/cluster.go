package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/agreement"
	hacoord "github.com/haagent/haagent/agent/coordinator"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/probe"
	"github.com/haagent/haagent/internal/simnet"
)

// member is one simulated agent: gossip and agreement on a simnet host.
type member struct {
	idx    int
	name   string
	host   string
	tr     *meteredTransport
	g      *gossip.Membership
	mg     *meteredGossip
	a      *agreement.Agreement
	sub    *gossip.Subscription
	coord  atomic.Pointer[hacoord.Coordinator] // nil on most members: see coordinators
	cancel context.CancelFunc
	done   chan struct{} // closed when gossip and agreement have returned
}

// kubelets is the peer checker of every member: a node's kubelet answers
// unless the node crashed. A connect to a crashed node fails only after the
// check's timeout, as one to a powered-off host does.
type kubelets struct {
	mu      sync.RWMutex
	down    map[string]bool
	timeout time.Duration
}

func (k *kubelets) Check(ctx context.Context, addr string) probe.PeerResult {
	k.mu.RLock()
	down := k.down[addr]
	k.mu.RUnlock()
	if !down {
		return probe.PeerResult{Addr: addr, Reachable: true, Latency: time.Millisecond}
	}
	t := time.NewTimer(k.timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return probe.PeerResult{Addr: addr, Inconclusive: true}
	case <-t.C:
	}
	return probe.PeerResult{Addr: addr, Latency: k.timeout, Reason: "connect timeout"}
}

func (k *kubelets) setDown(host string) {
	k.mu.Lock()
	k.down[host] = true
	k.mu.Unlock()
}

// directory is every member's peer source: the addresses of the members
// started so far (as the Kubernetes pod list would give), or only the
// first one's.
type directory struct {
	mu       sync.RWMutex
	addrs    []string
	seedOnly bool
}

func (d *directory) add(addr string) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
}

func (d *directory) Peers(context.Context) ([]string, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.seedOnly && len(d.addrs) > 0 {
		return d.addrs[:1], nil
	}
	return append([]string(nil), d.addrs...), nil
}

// cluster is a simulated group.
type cluster struct {
	o        options
	profile  string
	n        int // the group's size, which the auto profile's timings follow
	net      *simnet.Network
	kubelets *kubelets
	dir      *directory
	rec      *recorder
	members  []*member
	wg       sync.WaitGroup // every member's goroutines

	stallMu sync.Mutex
	stalled map[int]bool // members stalled now

	// spared reports the members that no random crash or stall may hit:
	// those that run a coordinator (see coordinators).
	spared func(*member) bool
}

func newCluster(o options, spec runSpec) *cluster {
	nw := simnet.New()
	nw.SetLatency(simnet.Latency{Base: o.delay, Spread: o.delaySpread, Jitter: o.jitter})
	nw.SetLoss(spec.loss)
	return &cluster{
		o:        o,
		stalled:  map[int]bool{},
		profile:  spec.profile,
		n:        spec.n,
		net:      nw,
		kubelets: &kubelets{down: map[string]bool{}, timeout: probe.DefaultPeerConfig().Timeout},
		dir:      &directory{seedOnly: o.discovery == "seed"},
		rec:      newRecorder(spec.n),
	}
}

// gossipConfig is the agent's default configuration with the profile and
// the timing overrides, as cmd/haagent builds it, on a simulated host.
// gossipConfig is a member's gossip configuration in a group of n
// members; with the auto profile n is the expected group size the agent
// would have counted at start (0: unknown).
func gossipConfig(o options, name, profile string, n int) gossip.Config {
	c := gossip.DefaultConfig()
	if profile == gossip.ProfileAuto {
		c.ExpectedMembers = n
	}
	c.NodeName = name
	c.Zone = "sim"
	c.AgentVersion = "sim"
	c.ProfileName = profile
	c.ProbeInterval = o.probeInterval
	c.ProbeTimeout = o.probeTimeout
	c.GossipInterval = o.gossipInterval
	c.PushPullInterval = o.pushPull
	c.SuspicionMult = o.suspicionMult
	c.IndirectChecks = o.indirectChecks
	// The crashed members' goroutines stop after their transport is gone;
	// their leave cannot reach anyone, and a short timeout frees them soon.
	c.LeaveTimeout = time.Second
	return c
}

func memberName(i int) string { return fmt.Sprintf("sim-%04d", i) }

// start creates member i and runs it. Its events are recorded from before
// it runs, so none is missed.
func (c *cluster) start(i int) (*member, error) {
	tr := &meteredTransport{Transport: c.net.NewTransport()}
	host, _, err := net.SplitHostPort(tr.Addr())
	if err != nil {
		return nil, err
	}
	m := &member{idx: i, name: memberName(i), host: host, tr: tr, done: make(chan struct{})}
	log := zap.NewNop()
	reg := prometheus.NewRegistry() // never gathered: see traffic.go
	deps := gossip.Deps{Logger: log, Registerer: reg, Transport: tr}
	if i > 0 {
		deps.Seeds = c.dir
	}
	if m.g, err = gossip.New(gossipConfig(c.o, m.name, c.profile, c.n), deps); err != nil {
		return nil, err
	}
	// Its checks pass: it says it is ready, as an agent does from its start.
	if err := m.g.SetReadiness(true, ""); err != nil {
		return nil, err
	}
	m.mg = &meteredGossip{Membership: m.g}
	// Votes go to the Lease holder, as the member's coordinator observes it
	// (cmd/haagent), or as gossip advertises it on a member that runs none.
	advertised := &holderCache{}
	holder := func() string {
		if co := m.coord.Load(); co != nil {
			return co.Holder()
		}
		return advertised.get(m.g)
	}
	if m.a, err = agreement.New(agreement.DefaultConfig(), agreement.Deps{Gossip: m.mg, Peer: c.kubelets, Logger: log, Registerer: reg,
		Coordinator: holder}); err != nil {
		return nil, err
	}
	m.sub = m.g.Subscribe()
	c.rec.follow(i, m.sub)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = m.g.Run(ctx) }()
	go func() {
		defer wg.Done()
		for !m.g.Ready() && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		if ctx.Err() == nil {
			_ = m.a.Run(ctx)
		}
	}()
	c.wg.Add(1)
	go func() { defer c.wg.Done(); wg.Wait(); close(m.done) }()
	c.members = append(c.members, m)
	c.dir.add(tr.Addr())
	return m, nil
}

// crash takes m off the network without a word, then stops its goroutines
// in the background.
func (c *cluster) crash(m *member) time.Time {
	c.kubelets.setDown(m.host) // its kubelet dies with it
	at := time.Now()
	c.rec.crashed(m.idx, at)
	m.tr.Crash()
	m.cancel()
	return at
}

// stop crashes every member at once (a graceful leave of hundreds of
// members would only measure the leave) and waits up to limit for their
// goroutines to end. It reports how many had not ended.
func (c *cluster) stop(limit time.Duration) int {
	for _, m := range c.members {
		m.tr.Crash()
		m.cancel()
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		return 0
	case <-time.After(limit):
	}
	left := 0
	for _, m := range c.members {
		select {
		case <-m.done:
		default:
			left++
		}
	}
	return left
}

// live returns the members not crashed.
func (c *cluster) live() []*member {
	var out []*member
	for _, m := range c.members {
		if !c.rec.isCrashed(m.idx) {
			out = append(out, m)
		}
	}
	return out
}

// stall pauses m's transport (see simnet's Transport.Pause) and reports
// whether it did: not if m crashed or stalls already.
func (c *cluster) stall(m *member) bool {
	if c.rec.isCrashed(m.idx) {
		return false
	}
	c.stallMu.Lock()
	defer c.stallMu.Unlock()
	if c.stalled[m.idx] {
		return false
	}
	c.stalled[m.idx] = true
	c.rec.stalledNow(m.idx)
	m.tr.Pause()
	return true
}

// unstall ends m's stall.
func (c *cluster) unstall(m *member) {
	c.stallMu.Lock()
	defer c.stallMu.Unlock()
	delete(c.stalled, m.idx)
	m.tr.Resume()
}

func (c *cluster) isStalled(m *member) bool {
	c.stallMu.Lock()
	defer c.stallMu.Unlock()
	return c.stalled[m.idx]
}

// stallStats are the stalls of a run.
type stallStats struct {
	Count int `json:"count"`
	// MemberSeconds is their summed length; MaxAtOnce the most members
	// stalled at the same time.
	MemberSeconds float64 `json:"member_seconds"`
	MaxAtOnce     int     `json:"max_at_once"`
}

// staller stalls random members, other than the coordinators, at
// -stalls per member-hour, each for -stall-min to -stall-max.
type staller struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	stats stallStats
	now   int
}

func startStalls(parent context.Context, c *cluster, o options) *staller {
	ctx, cancel := context.WithCancel(parent)
	st := &staller{cancel: cancel}
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		for {
			live := c.live()
			rate := o.stallsPerHour * float64(len(live)) / 3600 // per second, over the group
			if err := sleep(ctx, time.Duration(rand.ExpFloat64()/rate*float64(time.Second))); err != nil {
				return
			}
			m := live[rand.N(len(live))]
			if c.spared(m) || !c.stall(m) {
				continue
			}
			d := o.stallMin + rand.N(o.stallMax-o.stallMin+1)
			st.mu.Lock()
			st.stats.Count++
			st.stats.MemberSeconds += d.Seconds()
			st.now++
			st.stats.MaxAtOnce = max(st.stats.MaxAtOnce, st.now)
			st.mu.Unlock()
			st.wg.Add(1)
			go func() {
				defer st.wg.Done()
				_ = sleep(ctx, d)
				c.unstall(m)
				st.mu.Lock()
				st.now--
				st.mu.Unlock()
			}()
		}
	}()
	return st
}

// stop ends the stalls, every stalled member resumed, and returns their
// figures.
func (st *staller) stop() stallStats {
	st.cancel()
	st.wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.stats
}
