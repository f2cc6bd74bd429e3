package agreement

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/internal/testlog"
)

func newDeliveryAgreement(t *testing.T, delivery string, holder *string) (*Agreement, *fakeGossip) {
	t.Helper()
	g := &fakeGossip{name: "me", members: map[string]gossip.Member{
		"me":    {Name: "me", State: gossip.StateAlive, Local: true},
		"coord": {Name: "coord", State: gossip.StateAlive},
		"x":     {Name: "x", State: gossip.StateDead},
	}}
	cfg := DefaultConfig()
	cfg.Delivery = delivery
	a, err := New(cfg, Deps{Gossip: g, Peer: &kubelets{down: map[string]bool{}}, Logger: testlog.New(t, zap.ErrorLevel),
		Registerer: prometheus.NewRegistry(), Clock: clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0)),
		Coordinator: func() string { return *holder }})
	if err != nil {
		t.Fatal(err)
	}
	return a, g
}

func (f *fakeGossip) direct(to string) (n int) {
	for _, m := range f.sent {
		if m.kind == VoteKind && m.to == to {
			n++
		}
	}
	return n
}

func TestDelivery_votesGoToTheCoordinator(t *testing.T) {
	holder := "coord"
	a, g := newDeliveryAgreement(t, DeliveryCoordinator, &holder)
	set(a, "x", failover.OpinionDead)
	if got := g.direct("coord"); got != 1 {
		t.Fatalf("%d votes sent to the coordinator, want 1", got)
	}
	if got := g.votesAbout(t, "x", 0); got != 1 {
		t.Fatalf("%d votes gossiped, want 1: the gossip copy stays, for peers near the voter", got)
	}
	if got := testutil.ToFloat64(a.metrics.direct.WithLabelValues("success")); got != 1 {
		t.Errorf("votes_sent_to_coordinator_total{result=success} = %g, want 1", got)
	}

	// A vote about the coordinator itself is not sent to it, and no vote
	// goes to a coordinator that is not a live member.
	mark := len(g.sent)
	set(a, "coord", failover.OpinionSuspect)
	holder = "x"
	set(a, "x", failover.OpinionAgentDown)
	for _, m := range g.sent[mark:] {
		if m.to != "" {
			t.Errorf("vote sent to %s", m.to)
		}
	}
	if got := testutil.ToFloat64(a.metrics.direct.WithLabelValues("failure")); got != 0 {
		t.Errorf("votes_sent_to_coordinator_total{result=failure} = %g, want 0: the coordinator is the target", got)
	}
	holder = "gone"
	set(a, "x", failover.OpinionDead)
	if got := testutil.ToFloat64(a.metrics.direct.WithLabelValues("failure")); got != 1 {
		t.Errorf("votes_sent_to_coordinator_total{result=failure} = %g, want 1", got)
	}
}

func TestDelivery_peersPassOnOnlyVotesAboutTheCoordinator(t *testing.T) {
	holder := "coord"
	a, _ := newDeliveryAgreement(t, DeliveryCoordinator, &holder)
	about := func(target string, seq uint64) []byte {
		return failover.Vote{Voter: "v", Target: target, Opinion: failover.OpinionDead, Seq: seq}.Encode()
	}
	if relay, err := a.receive(about("x", 1)); err != nil || relay {
		t.Fatalf("vote about x: relay=%v err=%v, want kept but not passed on", relay, err)
	}
	if n := len(a.core.ballots.Votes("x")); n != 1 {
		t.Fatalf("ballots hold %d votes about x, want 1", n)
	}
	if relay, _ := a.receive(about("coord", 2)); !relay {
		t.Fatal("a vote about the coordinator was not passed on: candidates need it to take the Lease from a dead holder")
	}
	// No coordinator known: flood, as before.
	holder = ""
	if relay, _ := a.receive(about("x", 3)); !relay {
		t.Fatal("with no coordinator known, a fresh vote was not passed on")
	}
}

func TestDelivery_gossipFloodsEverything(t *testing.T) {
	holder := "coord"
	a, g := newDeliveryAgreement(t, DeliveryGossip, &holder)
	set(a, "x", failover.OpinionDead)
	if got := g.direct("coord"); got != 0 {
		t.Fatalf("--vote-delivery=gossip sent %d votes to the coordinator", got)
	}
	if relay, _ := a.receive(failover.Vote{Voter: "v", Target: "x", Opinion: failover.OpinionDead, Seq: 1}.Encode()); !relay {
		t.Fatal("--vote-delivery=gossip did not pass a fresh vote on")
	}
}

func TestConfigValidate_delivery(t *testing.T) {
	c := DefaultConfig()
	c.Delivery = "carrier-pigeon"
	if err := c.Validate(); err == nil || err.Error() != `agreement: --vote-delivery ("carrier-pigeon") must be "coordinator" or "gossip"` {
		t.Fatalf("Validate() = %v", err)
	}
}
