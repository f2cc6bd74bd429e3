package coordinator

import (
	"fmt"
	"time"
)

// FenceTerms are the settings, the same on every agent, that bound how long
// a node cut off from the group may keep running its pods. The node's own
// agent must first learn that it is cut off, then wait --fence-after, then
// fence; the coordinator may force-remove its stateful pods only once all
// of that can have happened (rule 5 of docs/design.md).
type FenceTerms struct {
	// IsolationTimeout is how long after the cut a node counts itself
	// isolated: no packet from a majority of the group for this long
	// (--isolation-timeout).
	IsolationTimeout time.Duration
	// APICheck is the longest the node's agent takes to find the API
	// server unreachable after the cut: the period plus the timeout of its
	// apiserver check (one failure counts). The agent is isolated only once
	// both it and the isolation timeout say so. 0 without such a check.
	APICheck time.Duration
	// After is how long a node stays isolated before it fences
	// (--fence-after).
	After time.Duration
	// CheckInterval is how often the fencer looks. It counts twice: once
	// before it sees the isolation, once before it sees --fence-after pass.
	CheckInterval time.Duration
	// ActionTime is the longest the fence action takes to stop the node
	// (the command's timeout, the watchdog's timeout; 0 for none).
	ActionTime time.Duration
	// ActionFlag names the flag that sets ActionTime, for messages.
	ActionFlag string
}

// minMargin is the least slack on top of the terms. The margin covers what
// the terms do not: the two machines' clocks running at slightly different
// rates (each term is measured by one machine's monotonic clock) and the
// scheduling delay of a loaded node.
const minMargin = 2 * time.Second

// Margin is the slack added to the sum of the terms: a tenth of it, at
// least minMargin.
func (t FenceTerms) Margin() time.Duration {
	return max(minMargin, t.sum()/10)
}

func (t FenceTerms) sum() time.Duration {
	return max(t.IsolationTimeout, t.APICheck) + t.After + 2*t.CheckInterval + t.ActionTime
}

// MinBound is the shortest safe --fence-bound. The bound is counted on the
// acting coordinator's clock from when it took the failover over, which is
// after the node was cut off (a node is confirmed dead only once a quorum
// failed to reach it): so by then the node has stopped, or has no agent
// that could stop it, which only a watchdog covers.
func (t FenceTerms) MinBound() time.Duration { return t.sum() + t.Margin() }

// String spells out the formula with its values.
func (t FenceTerms) String() string {
	action := fmt.Sprintf("fence action (%s)", t.ActionTime)
	if t.ActionFlag != "" {
		action = fmt.Sprintf("fence action (%s, %s)", t.ActionTime, t.ActionFlag)
	}
	return fmt.Sprintf("max(--isolation-timeout (%s), apiserver check period + timeout (%s)) + --fence-after (%s) + 2 x fence check interval (%s) + %s + margin (%s)",
		t.IsolationTimeout, t.APICheck, t.After, t.CheckInterval, action, t.Margin())
}

// validateFenceBound checks --fence-bound against the terms.
func validateFenceBound(bound time.Duration, t FenceTerms) error {
	if bound < 0 || (bound > 0 && bound < t.MinBound()) {
		return fmt.Errorf("coordinator: --fence-bound (%s) must be 0 (never) or at least %s: %s", bound, t.MinBound(), t)
	}
	return nil
}
