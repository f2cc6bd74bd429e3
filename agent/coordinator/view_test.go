package coordinator

import (
	"fmt"
	"testing"

	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
)

// TestFailoverState walks every state gossip names, so that a state added
// to gossip without a conversion here fails the test.
func TestFailoverState(t *testing.T) {
	want := map[gossip.State]failover.State{
		gossip.StateAlive:   failover.StateAlive,
		gossip.StateSuspect: failover.StateSuspect,
		gossip.StateDead:    failover.StateDead,
		gossip.StateLeft:    failover.StateLeft,
	}
	n := 0
	for s := gossip.State(0); s.String() != fmt.Sprintf("State(%d)", int(s)); s++ {
		n++
		w, ok := want[s]
		if !ok {
			t.Errorf("gossip state %s has no failover state in this test", s)
			continue
		}
		if got := FailoverState(s); got != w {
			t.Errorf("FailoverState(%s) = %s, want %s", s, got, w)
		}
		if got := FailoverState(s).String(); got != s.String() {
			t.Errorf("FailoverState(%s) is named %q", s, got)
		}
	}
	if n != len(want) {
		t.Errorf("gossip names %d states, want %d", n, len(want))
	}
	for _, s := range []gossip.State{-1, 4, 99} {
		if got := FailoverState(s); got != 0 {
			t.Errorf("FailoverState(%s) = %s, want the zero State", s, got)
		}
	}
}

func TestFailoverMember(t *testing.T) {
	m := gossip.Member{Name: "n1", Addr: "10.0.0.1:7946", State: gossip.StateSuspect,
		Meta: gossip.Meta{NodeName: "n1", Zone: "z1", StartEpoch: 42, Ready: false, Reason: "kubelet: down"}}
	want := failover.Member{Name: "n1", State: failover.StateSuspect, Zone: "z1", Epoch: 42}
	if got := FailoverMember(m); got != want {
		t.Errorf("FailoverMember = %+v, want %+v", got, want)
	}
}
