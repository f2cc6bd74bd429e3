package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/agreement"
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
	profile  string
	net      *simnet.Network
	kubelets *kubelets
	dir      *directory
	rec      *recorder
	members  []*member
	wg       sync.WaitGroup // every member's goroutines
}

func newCluster(o options, spec runSpec) *cluster {
	nw := simnet.New()
	nw.SetDelay(o.delay)
	nw.SetLoss(spec.loss)
	return &cluster{
		profile:  spec.profile,
		net:      nw,
		kubelets: &kubelets{down: map[string]bool{}, timeout: probe.DefaultPeerConfig().Timeout},
		dir:      &directory{seedOnly: o.discovery == "seed"},
		rec:      newRecorder(spec.n),
	}
}

// gossipConfig is the agent's default configuration with the profile, as
// cmd/haagent builds it, on a simulated host.
func gossipConfig(name, profile string) gossip.Config {
	c := gossip.DefaultConfig()
	c.NodeName = name
	c.Zone = "sim"
	c.AgentVersion = "sim"
	c.ProfileName = profile
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
	if m.g, err = gossip.New(gossipConfig(m.name, c.profile), deps); err != nil {
		return nil, err
	}
	m.mg = &meteredGossip{Membership: m.g}
	// The first member plays the coordinator (see coordinator), so it holds
	// the Lease that votes are sent to.
	holder := func() string { return memberName(0) }
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
