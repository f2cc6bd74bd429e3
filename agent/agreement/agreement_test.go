package agreement

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/haagent/haagent/internal/testlog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/coordinator"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/probe"
	"github.com/haagent/haagent/internal/simnet"
)

// kubelets answers the peer check: reachable unless the address is
// listed as down.
type kubelets struct {
	mu   sync.Mutex
	down map[string]bool
}

func (k *kubelets) Check(_ context.Context, addr string) probe.PeerResult {
	k.mu.Lock()
	defer k.mu.Unlock()
	return probe.PeerResult{Addr: addr, Reachable: !k.down[addr], Latency: time.Millisecond}
}

func (k *kubelets) setDown(addr string) {
	k.mu.Lock()
	k.down[addr] = true
	k.mu.Unlock()
}

type node struct {
	name   string
	tr     *simnet.Transport
	g      *gossip.Membership
	a      *Agreement
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (n *node) stop() { n.cancel(); n.wg.Wait() }

func startNodes(t *testing.T, count int, k *kubelets) []*node {
	t.Helper()
	return startNodesWith(t, count, k, nil)
}

// startNodesWith starts count agents whose agreement sees coordinator as
// the Lease holder (nil: none).
func startNodesWith(t *testing.T, count int, k *kubelets, coordinator func() string) []*node {
	t.Helper()
	nw := simnet.New()
	var nodes []*node
	for i := 1; i <= count; i++ {
		cfg := gossip.DefaultConfig()
		cfg.NodeName = fmt.Sprintf("n%d", i)
		cfg.ProfileName = "fast"
		cfg.ProbeInterval, cfg.ProbeTimeout, cfg.GossipInterval = 100*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
		cfg.SuspicionMult = 3
		cfg.LeaveTimeout = time.Second
		n := &node{name: cfg.NodeName, tr: nw.NewTransport()}
		var seeds gossip.PeerSource
		if i > 1 {
			seeds = staticSeeds{nodes[0].tr.Addr()}
		}
		log := testlog.New(t, zap.ErrorLevel)
		var err error
		if n.g, err = gossip.New(cfg, gossip.Deps{Logger: log, Registerer: prometheus.NewRegistry(), Transport: n.tr, Seeds: seeds}); err != nil {
			t.Fatal(err)
		}
		acfg := DefaultConfig()
		acfg.RepeatInterval, acfg.RecheckInterval = 300*time.Millisecond, 300*time.Millisecond
		if n.a, err = New(acfg, Deps{Gossip: n.g, Peer: k, Logger: log, Registerer: prometheus.NewRegistry(), Coordinator: coordinator}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		n.cancel = cancel
		n.wg.Add(2)
		go func() { defer n.wg.Done(); _ = n.g.Run(ctx) }()
		go func() {
			defer n.wg.Done()
			for !n.g.Ready() && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			_ = n.a.Run(ctx)
		}()
		t.Cleanup(n.stop)
		nodes = append(nodes, n)
	}
	// Set-up, not the subject of any test. On a loaded machine it has been
	// seen to take over 10 s (the cause not pinned down; a member left
	// alone is joined again at its next rejoin round, 30 s ± 25 %), so the
	// wait covers a rejoin round.
	waitFor(t, 45*time.Second, "convergence", func() bool {
		for _, n := range nodes {
			if len(n.g.Members()) != count {
				return false
			}
		}
		return true
	})
	return nodes
}

type staticSeeds []string

func (s staticSeeds) Peers(context.Context) ([]string, error) { return s, nil }

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// decide runs the decision core on one agent's ballots and gossip view.
func decide(n *node) []failover.Decision {
	var members []failover.Member
	for _, m := range n.g.Members() {
		members = append(members, coordinator.FailoverMember(m))
	}
	d, _ := failover.NewDecider(failover.DefaultConfig())
	var out []failover.Decision
	n.a.WithBallots(func(b *failover.Ballots) {
		out, _ = d.Decide(failover.Input{Now: time.Now(), Members: members, Ballots: b})
	})
	return out
}

func TestAgreement_crashedNodeIsConfirmedDeadEverywhere(t *testing.T) {
	k := &kubelets{down: map[string]bool{}}
	nodes := startNodes(t, 5, k)
	victim := nodes[4]
	host, _, _ := net.SplitHostPort(victim.tr.Addr())
	k.setDown(host) // its kubelet died with it
	victim.tr.Crash()
	victim.stop()

	waitFor(t, 20*time.Second, "every survivor to confirm n5 dead from the votes", func() bool {
		for _, n := range nodes[:4] {
			d := decide(n)
			if len(d) != 1 || d[0].Action != failover.ActionStart || d[0].Target != "n5" || len(d[0].Tally.Dead) != 4 {
				return false
			}
		}
		return true
	})
	for _, n := range nodes[:4] {
		if op := n.a.Opinions()["n5"]; op != failover.OpinionDead {
			t.Errorf("%s's opinion of n5 = %s, want dead", n.name, op)
		}
	}
}

// TestAgreement_votesReachTheCoordinator: with n1 as the Lease holder,
// every survivor's dead vote reaches n1, which confirms n5 dead, and the
// votes went to it directly.
func TestAgreement_votesReachTheCoordinator(t *testing.T) {
	k := &kubelets{down: map[string]bool{}}
	nodes := startNodesWith(t, 5, k, func() string { return "n1" })
	victim := nodes[4]
	host, _, _ := net.SplitHostPort(victim.tr.Addr())
	k.setDown(host)
	victim.tr.Crash()
	victim.stop()
	waitFor(t, 20*time.Second, "n1 to confirm n5 dead with the votes of all four survivors", func() bool {
		d := decide(nodes[0])
		return len(d) == 1 && d[0].Action == failover.ActionStart && d[0].Target == "n5" && len(d[0].Tally.Dead) == 4
	})
	for _, n := range nodes[1:4] {
		if got := testutil.ToFloat64(n.a.metrics.direct.WithLabelValues("success")); got == 0 {
			t.Errorf("%s sent no vote to the coordinator", n.name)
		}
	}
}

func TestAgreement_deadAgentOnLiveNodeIsAgentDown(t *testing.T) {
	k := &kubelets{down: map[string]bool{}}
	nodes := startNodes(t, 5, k)
	// n5's agent dies; its kubelet keeps answering.
	nodes[4].tr.Crash()
	nodes[4].stop()
	waitFor(t, 20*time.Second, "every survivor to hold n5 agent-down", func() bool {
		for _, n := range nodes[:4] {
			d := decide(n)
			if len(d) != 1 || d[0].Action != failover.ActionAgentDown || len(d[0].Tally.AgentDown) != 4 {
				return false
			}
		}
		return true
	})
	// And it stays that way: nothing ever says start.
	time.Sleep(time.Second)
	for _, n := range nodes[:4] {
		for _, d := range decide(n) {
			if d.Action == failover.ActionStart {
				t.Fatalf("%s decided %s for a node whose kubelet answers", n.name, d)
			}
		}
	}
}

func TestAgreement_gracefulLeaveForgetsVotes(t *testing.T) {
	k := &kubelets{down: map[string]bool{}}
	nodes := startNodes(t, 3, k)
	nodes[2].stop()
	waitFor(t, 10*time.Second, "n3 forgotten", func() bool {
		for _, n := range nodes[:2] {
			if _, ok := n.a.Opinions()["n3"]; ok {
				return false
			}
		}
		return true
	})
	for _, n := range nodes[:2] {
		if d := decide(n); len(d) != 0 {
			t.Fatalf("%s decided %v after a graceful leave", n.name, d)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.RepeatInterval = time.Millisecond
	if err := c.Validate(); err == nil || err.Error() != "agreement: --vote-repeat-interval (1ms) must be between 100ms and 1m0s" {
		t.Fatalf("Validate() = %v", err)
	}
	c = DefaultConfig()
	c.RepeatMax = 0
	if err := c.Validate(); err == nil || err.Error() != "agreement: --vote-repeat-max (0) must be between 1 and 10000" {
		t.Fatalf("Validate() = %v", err)
	}
	c = DefaultConfig()
	c.RecheckInterval = time.Hour
	if err := c.Validate(); err == nil || err.Error() != "agreement: --peer-recheck-interval (1h0m0s) must be between 100ms and 1m0s" {
		t.Fatalf("Validate() = %v", err)
	}
}
