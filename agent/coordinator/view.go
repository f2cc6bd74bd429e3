package coordinator

import (
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
)

// FailoverMember is m as the decision core sees it: name, state, zone and
// agent epoch. What gossip does not know (a Node's opt-out label, since
// when an alive member has been not ready) the coordinator adds itself.
// Tests that run the decision core on a gossip view convert with this too.
func FailoverMember(m gossip.Member) failover.Member {
	return failover.Member{Name: m.Name, State: FailoverState(m.State), Zone: m.Meta.Zone, Epoch: m.Meta.StartEpoch}
}

// FailoverState converts gossip's state of a member. A state gossip might
// add later maps to failover's zero State, which counts the member towards
// the quorum but never lets it vote or be failed over: the safe side,
// until the new state is given its meaning here.
func FailoverState(s gossip.State) failover.State {
	switch s {
	case gossip.StateAlive:
		return failover.StateAlive
	case gossip.StateSuspect:
		return failover.StateSuspect
	case gossip.StateDead:
		return failover.StateDead
	case gossip.StateLeft:
		return failover.StateLeft
	}
	return 0
}
