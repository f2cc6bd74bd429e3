package agreement

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/probe"
	"github.com/haagent/haagent/internal/testlog"
)

// scriptedKubelet answers every check the same way and counts them; with
// a gate, each check waits until the gate is closed.
type scriptedKubelet struct {
	mu        sync.Mutex
	calls     int
	reachable bool
	gate      chan struct{}
}

func (k *scriptedKubelet) Check(_ context.Context, addr string) probe.PeerResult {
	k.mu.Lock()
	k.calls++
	gate, reachable := k.gate, k.reachable
	k.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return probe.PeerResult{Addr: addr, Reachable: reachable}
}

func (k *scriptedKubelet) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls
}

// newPrecheckAgreement is an agreement whose Run is taken as running (its
// context set), on a table where all are alive and "c" holds the Lease.
func newPrecheckAgreement(t *testing.T, k *scriptedKubelet) (*Agreement, *fakeGossip, *clocktesting.FakeClock) {
	t.Helper()
	g := &fakeGossip{name: "me", members: map[string]gossip.Member{
		"me": {Name: "me", State: gossip.StateAlive, Local: true},
		"p":  {Name: "p", State: gossip.StateAlive},
		"c":  {Name: "c", State: gossip.StateAlive},
		"x":  {Name: "x", State: gossip.StateAlive, Meta: gossip.Meta{StartEpoch: 7}},
	}}
	clk := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	a, err := New(DefaultConfig(), Deps{Gossip: g, Peer: k, Logger: testlog.New(t, zap.ErrorLevel),
		Registerer: prometheus.NewRegistry(), Clock: clk, Coordinator: func() string { return "c" }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	startForTest(a, ctx)
	return a, g, clk
}

// suspectVote is p's vote that x is suspect.
func suspectVote(seq uint64, at time.Time) []byte {
	return failover.Vote{Voter: "p", Target: "x", Opinion: failover.OpinionSuspect, VoterEpoch: 1, Seq: seq, TargetEpoch: 7, At: at}.Encode()
}

// sentOpinions lists the opinions of this agent's votes about x broadcast
// since the mark.
func sentOpinions(t *testing.T, g *fakeGossip, mark int) []failover.Opinion {
	t.Helper()
	var out []failover.Opinion
	for _, m := range g.sent[mark:] {
		if m.kind != VoteKind || m.to != "" {
			continue
		}
		v, err := failover.DecodeVote(m.payload)
		if err != nil {
			t.Fatal(err)
		}
		if v.Voter == "me" && v.Target == "x" {
			out = append(out, v.Opinion)
		}
	}
	return out
}

func (f *fakeGossip) setState(name string, s gossip.State) {
	m := f.members[name]
	m.State = s
	f.members[name] = m
}

// gossipSays puts x in the state of the event in the table and hands the
// event to a, as the membership would.
func gossipSays(a *Agreement, g *fakeGossip, t gossip.EventType, s gossip.State) {
	g.setState("x", s)
	a.onEvent(gossip.Event{Type: t, Member: g.members["x"]})
}

// hearSuspicion hands a p's suspect vote about x, waits for the checks it
// started and returns whether a passes the vote on.
func hearSuspicion(t *testing.T, a *Agreement, seq uint64, at time.Time) bool {
	t.Helper()
	relay, err := a.receive(suspectVote(seq, at))
	if err != nil {
		t.Fatal(err)
	}
	a.checks.Wait()
	return relay
}

func TestPrecheck_peerSuspicionChecksEarlyAndDeathVotesAtOnce(t *testing.T) {
	k := &scriptedKubelet{}
	a, g, clk := newPrecheckAgreement(t, k)

	if !hearSuspicion(t, a, 1, clk.Now()) {
		t.Fatal("suspect vote about a member held alive not passed on: every voter must hear of it to check early")
	}
	if got := k.count(); got != 1 {
		t.Fatalf("kubelet checks after a peer's suspicion = %d, want 1", got)
	}
	if ops := sentOpinions(t, g, 0); len(ops) != 0 {
		t.Fatalf("the early check changed the opinion of a member gossip holds alive: votes %v", ops)
	}
	if got := a.Opinions()["x"]; got != 0 && got != failover.OpinionAlive {
		t.Fatalf("opinion of x before its death = %s, want none or alive", got)
	}

	// A second suspect vote (another voter, or a repeat) within half the
	// recheck interval checks nothing again, and is not passed on: only the
	// first news of a suspicion floods.
	clk.Step(200 * time.Millisecond)
	relay := hearSuspicion(t, a, 2, clk.Now())
	if got := k.count(); got != 1 {
		t.Fatalf("kubelet checks after a repeated suspicion = %d, want still 1", got)
	}
	if relay {
		t.Error("a suspect vote about a member checked a moment ago was passed on")
	}

	// Gossip declares x dead 1 s after the check began: the vote is dead
	// at once, from the check already made, with no suspect vote first.
	clk.Step(800 * time.Millisecond)
	gossipSays(a, g, gossip.EventDead, gossip.StateDead)
	a.checks.Wait()
	if got := k.count(); got != 1 {
		t.Errorf("kubelet checks after the death = %d, want 1 (the early one)", got)
	}
	if ops := sentOpinions(t, g, 0); len(ops) != 1 || ops[0] != failover.OpinionDead {
		t.Errorf("votes about x = %v, want [dead]", ops)
	}
	if got := testutil.ToFloat64(a.metrics.earlyVerdicts); got != 1 {
		t.Errorf("early_verdicts_total = %g, want 1", got)
	}
	if got := testutil.ToFloat64(a.metrics.prechecks); got != 1 {
		t.Errorf("prechecks_total = %g, want 1", got)
	}
}

func TestPrecheck_staleResultIsCheckedAgain(t *testing.T) {
	k := &scriptedKubelet{reachable: true}
	a, g, clk := newPrecheckAgreement(t, k)
	hearSuspicion(t, a, 1, clk.Now())

	// The kubelet answered, but that was longer ago than the recheck
	// interval: the death is checked anew, and this time nothing answers.
	clk.Step(DefaultConfig().RecheckInterval + time.Millisecond)
	k.mu.Lock()
	k.reachable = false
	k.mu.Unlock()
	gossipSays(a, g, gossip.EventDead, gossip.StateDead)
	a.checks.Wait()
	if got := k.count(); got != 2 {
		t.Fatalf("kubelet checks = %d, want 2 (the stale result is not used)", got)
	}
	if got := a.Opinions()["x"]; got != failover.OpinionDead {
		t.Fatalf("opinion of x = %s, want dead from the new check", got)
	}
	if ops := sentOpinions(t, g, 0); len(ops) != 2 || ops[0] != failover.OpinionSuspect || ops[1] != failover.OpinionDead {
		t.Errorf("votes about x = %v, want [suspect dead]", ops)
	}
	if got := testutil.ToFloat64(a.metrics.earlyVerdicts); got != 0 {
		t.Errorf("early_verdicts_total = %g, want 0", got)
	}
}

func TestPrecheck_reachableKubeletMakesAgentDown(t *testing.T) {
	k := &scriptedKubelet{reachable: true}
	a, g, clk := newPrecheckAgreement(t, k)
	hearSuspicion(t, a, 1, clk.Now())
	clk.Step(time.Second)
	gossipSays(a, g, gossip.EventDead, gossip.StateDead)
	a.checks.Wait()
	if got := a.Opinions()["x"]; got != failover.OpinionAgentDown {
		t.Fatalf("opinion of x = %s, want agent-down: its kubelet answered while it was suspect", got)
	}
	if got := k.count(); got != 1 {
		t.Errorf("kubelet checks = %d, want 1", got)
	}
}

func TestPrecheck_deathDuringTheCheckWaitsForIt(t *testing.T) {
	k := &scriptedKubelet{gate: make(chan struct{})}
	a, g, clk := newPrecheckAgreement(t, k)
	if _, err := a.receive(suspectVote(1, clk.Now())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the early check to start", func() bool { return k.count() == 1 })

	gossipSays(a, g, gossip.EventDead, gossip.StateDead)
	if got := a.Opinions()["x"]; got != failover.OpinionSuspect {
		t.Fatalf("opinion of x while its check runs = %s, want suspect", got)
	}
	close(k.gate)
	a.checks.Wait()
	if got := k.count(); got != 1 {
		t.Errorf("kubelet checks = %d, want 1: the running check decides", got)
	}
	if got := a.Opinions()["x"]; got != failover.OpinionDead {
		t.Errorf("opinion of x after its check = %s, want dead", got)
	}
}

func TestPrecheck_oldNewsIsNotPassedOn(t *testing.T) {
	for _, state := range []gossip.State{gossip.StateSuspect, gossip.StateDead} {
		t.Run(state.String(), func(t *testing.T) {
			k := &scriptedKubelet{}
			a, g, clk := newPrecheckAgreement(t, k)
			g.setState("x", state)
			if hearSuspicion(t, a, 1, clk.Now()) {
				t.Errorf("suspect vote about a member held %s was passed on: every voter's suspect vote at a death would flood", state)
			}
			if got := k.count(); got != 0 {
				t.Errorf("kubelet checks = %d, want 0 (gossip's own events check it)", got)
			}
		})
	}
}

func TestPrecheck_comingBackDropsTheResult(t *testing.T) {
	k := &scriptedKubelet{}
	a, g, clk := newPrecheckAgreement(t, k)
	// This agent's own probe fails: suspect, and the kubelet is checked.
	gossipSays(a, g, gossip.EventSuspect, gossip.StateSuspect)
	a.checks.Wait()
	if got := k.count(); got != 1 {
		t.Fatalf("kubelet checks after this agent's suspicion = %d, want 1", got)
	}
	// It refutes, is suspected again at once and dies: the result of the
	// earlier suspicion is gone, so the death is checked anew.
	gossipSays(a, g, gossip.EventAlive, gossip.StateAlive)
	clk.Step(100 * time.Millisecond)
	gossipSays(a, g, gossip.EventDead, gossip.StateDead)
	a.checks.Wait()
	if got := k.count(); got != 2 {
		t.Fatalf("kubelet checks = %d, want 2", got)
	}
	if got := a.Opinions()["x"]; got != failover.OpinionDead {
		t.Fatalf("opinion of x = %s, want dead", got)
	}
}

func TestPrecheck_recheckKeepsSuspectFreshAndForgetsOldOnes(t *testing.T) {
	k := &scriptedKubelet{}
	a, g, clk := newPrecheckAgreement(t, k)
	g.members["y"] = gossip.Member{Name: "y", State: gossip.StateAlive}
	gossipSays(a, g, gossip.EventSuspect, gossip.StateSuspect)
	if _, err := a.receive(failover.Vote{Voter: "p", Target: "y", Opinion: failover.OpinionSuspect, VoterEpoch: 1, Seq: 1, At: clk.Now()}.Encode()); err != nil {
		t.Fatal(err)
	}
	a.checks.Wait()
	if got := k.count(); got != 2 {
		t.Fatalf("kubelet checks = %d, want 2 (x by this agent's suspicion, y by p's)", got)
	}
	// x stays suspect past the recheck interval: checked again. y's
	// suspicion was refuted without an event here: its result is dropped.
	clk.Step(DefaultConfig().RecheckInterval + time.Millisecond)
	a.step(recheckTick{})
	a.checks.Wait()
	if got := k.count(); got != 3 {
		t.Fatalf("kubelet checks after recheck = %d, want 3 (x again)", got)
	}
	a.mu.Lock()
	_, keptY := a.core.kubelet["y"]
	a.mu.Unlock()
	if keptY {
		t.Error("the old check of y, which gossip holds alive, was kept")
	}
}

// blockingKubelet answers only when the check's context ends.
type blockingKubelet struct{ started, ended chan string }

func (k *blockingKubelet) Check(ctx context.Context, addr string) probe.PeerResult {
	k.started <- addr
	<-ctx.Done()
	k.ended <- addr
	return probe.PeerResult{Addr: addr, Inconclusive: true}
}

// A member that comes back ends the check of its suspicion at once: its
// result is moot, and a node whose kubelet is gone would hold a check for
// its whole timeout.
func TestPrecheck_comingBackCancelsTheCheck(t *testing.T) {
	k := &blockingKubelet{started: make(chan string, 1), ended: make(chan string, 1)}
	g := &fakeGossip{name: "me", members: map[string]gossip.Member{
		"me": {Name: "me", State: gossip.StateAlive, Local: true},
		"x":  {Name: "x", Addr: "10.0.0.9:7946", State: gossip.StateAlive},
	}}
	a, err := New(DefaultConfig(), Deps{Gossip: g, Peer: k, Logger: testlog.New(t, zap.ErrorLevel),
		Registerer: prometheus.NewRegistry(), Clock: clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); a.checks.Wait() }()
	startForTest(a, ctx)
	gossipSays(a, g, gossip.EventSuspect, gossip.StateSuspect)
	if addr := <-k.started; addr != "10.0.0.9" {
		t.Fatalf("checked %q, want the host of x's gossip address", addr)
	}
	gossipSays(a, g, gossip.EventAlive, gossip.StateAlive)
	select {
	case <-k.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the check of x still runs 5s after x came back")
	}
	if got := a.Opinions()["x"]; got != failover.OpinionAlive {
		t.Errorf("opinion of x = %s, want alive", got)
	}
}
