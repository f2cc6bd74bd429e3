package failover

import "fmt"

// State is a member's state in the view decisions are made on. The
// coordinator converts its gossip view into it: this package reads no
// membership of its own.
//
// The zero State names no state. A member in it counts among the known
// members, which only raises the quorum, but neither votes nor is ever
// decided about.
type State uint8

const (
	// StateAlive: the member answers probes (or nobody has doubted it).
	StateAlive State = iota + 1
	// StateSuspect: a probe of the member failed; it may yet refute the
	// suspicion.
	StateSuspect
	// StateDead: the group declared the member dead without it leaving.
	StateDead
	// StateLeft: the member left gracefully, or its Node was deleted: it
	// no longer counts at all.
	StateLeft
)

var stateNames = [...]string{StateAlive: "alive", StateSuspect: "suspect", StateDead: "dead", StateLeft: "left"}

// String returns the lower-case state name, as gossip names its states.
func (s State) String() string {
	if s == 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", uint8(s))
	}
	return stateNames[s]
}
