package agreement

import (
	"fmt"
	"net"
	"strings"
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

// fakeGossip is a membership table and a record of what was broadcast.
type fakeGossip struct {
	name    string
	members map[string]gossip.Member
	sent    []sentMessage
}

type sentMessage struct {
	kind    byte
	key     string
	payload []byte
	to      string // "" for a broadcast
}

func (f *fakeGossip) LocalName() string { return f.name }
func (f *fakeGossip) Members() []gossip.Member {
	var out []gossip.Member
	for _, m := range f.members {
		out = append(out, m)
	}
	return out
}
func (f *fakeGossip) Member(name string) (gossip.Member, bool) {
	m, ok := f.members[name]
	return m, ok
}
func (f *fakeGossip) Subscribe() *gossip.Subscription { return nil }
func (f *fakeGossip) Broadcast(kind byte, key string, payload []byte) error {
	f.sent = append(f.sent, sentMessage{kind, key, payload, ""})
	return nil
}
func (f *fakeGossip) SendTo(name string, kind byte, key string, payload []byte) error {
	if m, ok := f.members[name]; !ok || m.State != gossip.StateAlive {
		return fmt.Errorf("gossip: %s is not a live member", name)
	}
	f.sent = append(f.sent, sentMessage{kind, key, payload, name})
	return nil
}
func (f *fakeGossip) Handle(byte, gossip.Handler) {}

// voteTargets returns the targets of the votes broadcast since the mark, in
// the order they were sent.
func (f *fakeGossip) voteTargets(t *testing.T, mark int) []string {
	t.Helper()
	var out []string
	for _, m := range f.sent[mark:] {
		if m.kind != VoteKind || m.to != "" {
			continue
		}
		v, err := failover.DecodeVote(m.payload)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v.Target)
	}
	return out
}

// votesAbout counts the votes about target broadcast since the mark.
func (f *fakeGossip) votesAbout(t *testing.T, target string, mark int) int {
	t.Helper()
	n := 0
	for _, got := range f.voteTargets(t, mark) {
		if got == target {
			n++
		}
	}
	return n
}

func (f *fakeGossip) notices(mark int) []failover.Notice {
	var out []failover.Notice
	for _, m := range f.sent[mark:] {
		if m.kind == NoticeKind {
			n, _ := failover.DecodeNotice(m.payload)
			out = append(out, n)
		}
	}
	return out
}

func newNoticeAgreement(t *testing.T) (*Agreement, *fakeGossip, *clocktesting.FakeClock) {
	t.Helper()
	g := &fakeGossip{name: "me", members: map[string]gossip.Member{
		"me": {Name: "me", State: gossip.StateAlive, Local: true},
		"x":  {Name: "x", State: gossip.StateDead, Meta: gossip.Meta{StartEpoch: 7}},
	}}
	clk := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	a, err := New(DefaultConfig(), Deps{Gossip: g, Peer: &kubelets{down: map[string]bool{}}, Logger: testlog.New(t, zap.ErrorLevel),
		Registerer: prometheus.NewRegistry(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return a, g, clk
}

func TestNotice_silencesRepeatsWhileHeard(t *testing.T) {
	a, g, clk := newNoticeAgreement(t)
	set(a, "x", failover.OpinionDead)
	if got := g.votesAbout(t, "x", 0); got != 1 {
		t.Fatalf("votes about x after the opinion formed = %d, want 1", got)
	}
	mark := len(g.sent)
	a.step(repeatTick{})
	if got := g.votesAbout(t, "x", mark); got != 1 {
		t.Fatalf("repeat sent %d votes about x before any notice, want 1", got)
	}

	n := failover.Notice{Coordinator: "c", Target: "x", TargetEpoch: 7, CoordinatorEpoch: 1, Seq: 1}
	if fresh, err := a.receiveNotice(n.Encode()); err != nil || !fresh {
		t.Fatalf("first notice: fresh=%v err=%v, want fresh", fresh, err)
	}
	if fresh, _ := a.receiveNotice(n.Encode()); fresh {
		t.Fatal("the same notice again was fresh: it would be passed on forever")
	}
	mark = len(g.sent)
	for range 5 {
		clk.Step(DefaultConfig().RepeatInterval)
		a.step(repeatTick{})
	}
	if got := g.votesAbout(t, "x", mark); got != 0 {
		t.Fatalf("%d votes about x repeated while its failover is under way, want 0", got)
	}
	if got := testutil.ToFloat64(a.metrics.suppressed); got != 5 {
		t.Errorf("votes_suppressed_total = %g, want 5", got)
	}

	// Nobody says it again: after NoticeTTL the votes resume, in case the
	// coordinator died before its record was written.
	clk.Step(NoticeTTL)
	mark = len(g.sent)
	a.step(repeatTick{})
	if got := g.votesAbout(t, "x", mark); got != 1 {
		t.Fatalf("after the notice expired, repeat sent %d votes about x, want 1", got)
	}
}

func TestNotice_otherLifeOrOpinionStillVotes(t *testing.T) {
	a, g, _ := newNoticeAgreement(t)
	set(a, "x", failover.OpinionDead)
	// About a previous life of x (epoch 6): x's current life is not being
	// failed over.
	if _, err := a.receiveNotice(failover.Notice{Coordinator: "c", Target: "x", TargetEpoch: 6, Seq: 1}.Encode()); err != nil {
		t.Fatal(err)
	}
	mark := len(g.sent)
	a.step(repeatTick{})
	if got := g.votesAbout(t, "x", mark); got != 1 {
		t.Fatalf("a notice about another life of x silenced %d votes", 1-got)
	}

	// A notice of this life, then x comes back: the notice is dropped, and
	// its next death is voted at once.
	if _, err := a.receiveNotice(failover.Notice{Coordinator: "c", Target: "x", TargetEpoch: 7, Seq: 2}.Encode()); err != nil {
		t.Fatal(err)
	}
	set(a, "x", failover.OpinionAlive)
	mark = len(g.sent)
	set(a, "x", failover.OpinionDead)
	if got := g.votesAbout(t, "x", mark); got != 1 {
		t.Fatalf("x died again after coming back: %d dead votes, want 1", got)
	}

	// Agent-down opinions are never silenced: no failover reads them, but
	// the coordinator's alert does.
	set(a, "x", failover.OpinionAgentDown)
	if _, err := a.receiveNotice(failover.Notice{Coordinator: "c", Target: "x", TargetEpoch: 7, Seq: 3}.Encode()); err != nil {
		t.Fatal(err)
	}
	mark = len(g.sent)
	a.step(repeatTick{})
	if got := g.votesAbout(t, "x", mark); got != 1 {
		t.Fatalf("agent-down: %d votes repeated, want 1", got)
	}
}

func TestUnderWay_sendsOncePerInterval(t *testing.T) {
	a, g, clk := newNoticeAgreement(t)
	set(a, "x", failover.OpinionDead)
	a.UnderWay("x")
	a.UnderWay("x")
	clk.Step(NoticeInterval - time.Millisecond)
	a.UnderWay("x")
	got := g.notices(0)
	if len(got) != 1 {
		t.Fatalf("%d notices within one interval, want 1", len(got))
	}
	if want := (failover.Notice{Coordinator: "me", Target: "x", TargetEpoch: 7, Seq: 1}); got[0] != want {
		t.Errorf("notice = %+v, want %+v", got[0], want)
	}
	clk.Step(time.Millisecond)
	a.UnderWay("x")
	if got := g.notices(0); len(got) != 2 || got[1].Seq != 2 {
		t.Fatalf("after the interval: notices %+v, want a second one with Seq 2", got)
	}
	// The coordinator's own repeats stop too.
	mark := len(g.sent)
	a.step(repeatTick{})
	if n := g.votesAbout(t, "x", mark); n != 0 {
		t.Fatalf("the coordinator repeated %d votes about a node it fails over", n)
	}
	// Its own notice, relayed back, is not passed on again.
	if fresh, _ := a.receiveNotice(g.notices(0)[1].Encode()); fresh {
		t.Fatal("own notice relayed back was fresh")
	}
}

func TestNotice_malformedIsAnError(t *testing.T) {
	a, _, _ := newNoticeAgreement(t)
	if _, err := a.receiveNotice([]byte{1, 0}); err == nil || err.Error() != "failover: notice coordinator name is malformed" {
		t.Fatalf("receiveNotice(malformed) error = %v", err)
	}
}

// TestNotice_reachesEveryVoter: on the in-memory network, the notice of one
// survivor silences the repeats of every other.
func TestNotice_reachesEveryVoter(t *testing.T) {
	k := &kubelets{down: map[string]bool{}}
	nodes := startNodes(t, 5, k)
	victim := nodes[4]
	host, _, _ := net.SplitHostPort(victim.tr.Addr())
	k.setDown(host)
	victim.tr.Crash()
	victim.stop()
	survivors := nodes[:4]
	waitFor(t, 20*time.Second, "every survivor to hold n5 dead", func() bool {
		for _, n := range survivors {
			if n.a.Opinions()["n5"] != failover.OpinionDead {
				return false
			}
		}
		return true
	})

	// As the coordinator does on every pass: the notice goes out again each
	// NoticeInterval, should gossip lose it.
	waitFor(t, 3*NoticeInterval, "every survivor to hear the notice and skip a repeat", func() bool {
		survivors[0].a.UnderWay("n5")
		for _, n := range survivors {
			if testutil.ToFloat64(n.a.metrics.suppressed) == 0 {
				return false
			}
		}
		return true
	})
	sent := func() (total float64) {
		for _, n := range survivors {
			total += testutil.ToFloat64(n.a.metrics.sent.WithLabelValues("dead"))
		}
		return total
	}
	before := sent()
	time.Sleep(5 * 300 * time.Millisecond) // five repeat intervals
	if after := sent(); after != before {
		t.Fatalf("survivors sent %g dead votes about n5 after the notice, want 0", after-before)
	}
}

// TestUnderWay_longNames: a notice between two names of 253 bytes still
// fits gossip's 255-byte key.
func TestUnderWay_longNames(t *testing.T) {
	long := strings.Repeat("n", 253)
	g := &fakeGossip{name: long, members: map[string]gossip.Member{
		long:       {Name: long, State: gossip.StateAlive, Local: true},
		long + "x": {Name: long + "x", State: gossip.StateDead},
	}}
	a, err := New(DefaultConfig(), Deps{Gossip: g, Peer: &kubelets{down: map[string]bool{}}, Logger: testlog.New(t, zap.ErrorLevel),
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	a.UnderWay(long + "x")
	if len(g.notices(0)) != 1 || len(g.sent[0].key) > 255 {
		t.Fatalf("notices %d, key of %d bytes", len(g.notices(0)), len(g.sent[0].key))
	}
}
