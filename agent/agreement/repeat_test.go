package agreement

import (
	"fmt"
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

// A repeat round sends at most RepeatMax opinions: dead ones first, then
// those waiting longest, so that every opinion is sent again within a few
// rounds and none starves.
func TestRepeat_boundedRoundsDeadFirstThenOldest(t *testing.T) {
	g := &fakeGossip{name: "me", members: map[string]gossip.Member{"me": {Name: "me", State: gossip.StateAlive, Local: true}}}
	clk := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	cfg := DefaultConfig()
	cfg.RepeatMax = 4
	a, err := New(cfg, Deps{Gossip: g, Peer: &kubelets{down: map[string]bool{}}, Logger: testlog.New(t, zap.ErrorLevel),
		Registerer: prometheus.NewRegistry(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	var suspects []string
	for i := range 10 {
		name := fmt.Sprintf("s%d", i)
		suspects = append(suspects, name)
		g.members[name] = gossip.Member{Name: name, State: gossip.StateSuspect}
		set(a, name, failover.OpinionSuspect)
		clk.Step(time.Millisecond) // s0 was voted first, s9 last
	}
	g.members["d"] = gossip.Member{Name: "d", State: gossip.StateDead}
	set(a, "d", failover.OpinionDead)

	sentTimes := map[string]int{}
	for round := range 3 {
		clk.Step(cfg.RepeatInterval)
		mark := len(g.sent)
		a.step(repeatTick{})
		got := g.voteTargets(t, mark)
		if len(got) != cfg.RepeatMax {
			t.Fatalf("round %d sent %d votes %v, want RepeatMax = %d", round, len(got), got, cfg.RepeatMax)
		}
		if got[0] != "d" {
			t.Errorf("round %d sent %v: the dead opinion should go first", round, got)
		}
		for _, name := range got {
			sentTimes[name]++
		}
	}
	// 3 rounds of 4: the dead one each time, and 9 suspects, the oldest first.
	if sentTimes["d"] != 3 {
		t.Errorf("the dead opinion was sent %d times in 3 rounds, want 3", sentTimes["d"])
	}
	for i, name := range suspects {
		want := 1
		if i == len(suspects)-1 {
			want = 0 // the newest waits for the 4th round
		}
		if sentTimes[name] != want {
			t.Errorf("%s repeated %d times in 3 rounds, want %d (sent: %v)", name, sentTimes[name], want, sentTimes)
		}
	}
	// Each round left 7 of its 11 non-alive opinions for later.
	if got := testutil.ToFloat64(a.metrics.deferred); got != 3*7 {
		t.Errorf("repeats_deferred_total = %g, want 21", got)
	}
	clk.Step(cfg.RepeatInterval)
	mark := len(g.sent)
	a.step(repeatTick{})
	if got := g.voteTargets(t, mark); len(got) != 4 || got[1] != suspects[len(suspects)-1] {
		t.Errorf("4th round sent %v, want d then %s, the one left waiting", got, suspects[len(suspects)-1])
	}
}
