package gossip

import (
	"encoding/json"
	"fmt"
	"time"
)

// State is a member's state as this agent sees it.
type State int

const (
	// StateAlive: the member answers probes (or nobody has doubted it).
	StateAlive State = iota
	// StateSuspect: this agent's probe of the member failed, directly and
	// through the indirect probes; the member has a suspicion timeout to
	// refute before it is declared dead.
	StateSuspect
	// StateDead: the group declared the member dead without it leaving.
	StateDead
	// StateLeft: the member left gracefully.
	StateLeft
)

var stateNames = [...]string{"alive", "suspect", "dead", "left"}

// String returns the lower-case state name used in metrics, logs and JSON.
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// MarshalText makes State print as its name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a state name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("gossip: unknown member state %q", b)
}

// Member is one entry of the membership table.
type Member struct {
	// Name is the member (and Kubernetes Node) name.
	Name string `json:"name"`
	// Addr is the member's gossip address, host:port.
	Addr string `json:"addr"`
	// State is this agent's view of the member.
	State State `json:"state"`
	// Since is when the member entered State, as seen here.
	Since time.Time `json:"since"`
	// Meta is the member's last decodable metadata.
	Meta Meta `json:"meta"`
	// MetaError is set while the member's latest metadata does not decode;
	// Meta then keeps the last good value.
	MetaError string `json:"metaError,omitempty"`
	// LastAck is when this agent last got an answer to its own probe of
	// the member (zero if it never probed it).
	LastAck time.Time `json:"lastAck,omitzero"`
	// Local marks this agent's own entry.
	Local bool `json:"local,omitempty"`
}

// EventType says what changed about a member.
type EventType int

const (
	// EventAlive: a member joined, came back from dead or left, or
	// refuted a suspicion.
	EventAlive EventType = iota
	// EventSuspect: this agent suspects the member.
	EventSuspect
	// EventDead: the member was declared dead.
	EventDead
	// EventLeft: the member left gracefully.
	EventLeft
	// EventUpdate: the member's metadata changed (readiness, leaving, a
	// new start epoch).
	EventUpdate
)

var eventNames = [...]string{"alive", "suspect", "dead", "left", "update"}

// String returns the event name used in metrics and logs.
func (t EventType) String() string {
	if t < 0 || int(t) >= len(eventNames) {
		return fmt.Sprintf("EventType(%d)", int(t))
	}
	return eventNames[t]
}

// MarshalJSON prints the event type as its name.
func (t EventType) MarshalJSON() ([]byte, error) { return json.Marshal(t.String()) }

// Event is one membership change, timestamped when this agent learned it.
type Event struct {
	Type   EventType `json:"type"`
	Member Member    `json:"member"`
	Time   time.Time `json:"time"`
}
