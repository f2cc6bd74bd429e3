package agreement

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
)

// tableGossip is a membership table without a network: it records the
// votes broadcast and answers lookups from a map.
type tableGossip struct {
	mu      sync.Mutex
	members map[string]gossip.Member
	votes   []failover.Vote
}

func (g *tableGossip) LocalName() string { return "self" }
func (g *tableGossip) Members() []gossip.Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []gossip.Member
	for _, m := range g.members {
		out = append(out, m)
	}
	return out
}
func (g *tableGossip) Member(name string) (gossip.Member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.members[name]
	return m, ok
}
func (g *tableGossip) Subscribe() *gossip.Subscription           { return nil }
func (g *tableGossip) SendTo(string, byte, string, []byte) error { return nil }
func (g *tableGossip) Broadcast(_ byte, _ string, payload []byte) error {
	v, err := failover.DecodeVote(payload)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.votes = append(g.votes, v)
	g.mu.Unlock()
	return nil
}
func (g *tableGossip) Handle(byte, gossip.Handler) {}

// The opinion gauges are kept as opinions change; they must match a count
// of the opinions after every kind of change, and votes must carry the
// target's epoch found by the single-member lookup.
func TestAgreement_opinionCountsAndVoteLookup(t *testing.T) {
	g := &tableGossip{members: map[string]gossip.Member{
		"n1": {Name: "n1", State: gossip.StateAlive, Meta: gossip.Meta{StartEpoch: 11}},
		"n2": {Name: "n2", State: gossip.StateDead, Meta: gossip.Meta{StartEpoch: 22}},
		"n3": {Name: "n3", State: gossip.StateAlive, Meta: gossip.Meta{StartEpoch: 33}},
	}}
	a, err := New(DefaultConfig(), Deps{Gossip: g, Peer: &kubelets{down: map[string]bool{}}, Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		want := map[failover.Opinion]int{}
		for _, op := range a.Opinions() {
			want[op]++
		}
		for _, op := range []failover.Opinion{failover.OpinionAlive, failover.OpinionSuspect, failover.OpinionDead, failover.OpinionAgentDown} {
			if got := testutil.ToFloat64(a.metrics.opinions.WithLabelValues(opinionLabel(op))); int(got) != want[op] {
				t.Errorf("%s: gauge %s = %v, want %d", step, op, got, want[op])
			}
		}
	}
	startForTest(a, context.Background())
	for _, n := range []string{"n1", "n2", "n3"} {
		a.onEvent(gossip.Event{Type: gossip.EventAlive, Member: g.members[n]})
	}
	check("three alive")
	if len(g.votes) != 0 {
		t.Fatalf("alive opinions of new members were voted: %+v", g.votes)
	}
	set(a, "n2", failover.OpinionDead)
	check("one dead")
	set(a, "n3", failover.OpinionSuspect)
	set(a, "n3", failover.OpinionSuspect) // no change
	check("one suspect")
	a.onEvent(gossip.Event{Type: gossip.EventLeft, Member: g.members["n3"]})
	check("one left")
	if len(g.votes) != 2 || g.votes[0].Target != "n2" || g.votes[0].TargetEpoch != 22 || g.votes[1].TargetEpoch != 33 {
		t.Fatalf("votes = %+v, want n2 (epoch 22) then n3 (epoch 33)", g.votes)
	}
	// repeat votes the non-alive opinions again, and only those.
	g.votes = nil
	a.step(repeatTick{})
	if len(g.votes) != 1 || g.votes[0].Target != "n2" || g.votes[0].Opinion != failover.OpinionDead {
		t.Fatalf("repeat voted %+v, want n2 dead only", g.votes)
	}
	// recheck checks only members gossip holds dead: n2, whose kubelet
	// answers, so it becomes agent-down.
	a.step(recheckTick{})
	a.checks.Wait()
	if op := a.Opinions()["n2"]; op != failover.OpinionAgentDown {
		t.Fatalf("n2 after recheck = %s, want agent-down", op)
	}
	check("agent_down")
}
