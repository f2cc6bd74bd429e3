package coordinator

import (
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/record"
)

// errBlocked is returned by a step that did what it could and waits on
// something outside haagent's hands: evictions that a PodDisruptionBudget
// refused, or that failed or were deferred, with none accepted. It is no
// failure, but asking again at once would not help either.
var errBlocked = errors.New("blocked")

// Values of the reason label of haagent_failover_step_retries_total.
const (
	retryError   = "error"
	retryBlocked = "blocked"
)

// Backoff of a step that failed or was blocked: the first retry after
// minRetry, each further one after twice as long, up to maxRetry.
const (
	minRetry = time.Second
	maxRetry = 30 * time.Second
)

// pace is how this term paces the steps of one record.
type pace struct {
	// next is when the record may be stepped again after a step that failed
	// or was blocked; delay is the backoff that set it.
	next  time.Time
	delay time.Duration
	// view is how gossip saw the node at the last step; a change ends the
	// backoff.
	view nodeView
	// lastErr is the error of the failing step as last logged.
	lastErr string
	// fenceChecked is when the pods awaiting the fence were last looked
	// for (with --fence-bound 0).
	fenceChecked time.Time
	// recoveryChecked is when the affected workloads were last counted.
	recoveryChecked time.Time
	// evented is the last phase recorded as an Event (see phaseEvent).
	evented record.Phase
}

// nodeView is what the next step of a failover may depend on in gossip.
type nodeView struct {
	state failover.State
	ready bool
}

// paceOf returns the pace of node's record. Callers hold c.mu.
func (c *Coordinator) paceOf(node string) *pace {
	if c.pace == nil {
		c.pace = map[string]*pace{}
	}
	p := c.pace[node]
	if p == nil {
		p = &pace{}
		c.pace[node] = p
	}
	return p
}

// backingOff reports whether node's record is to wait out the backoff of
// a step that failed or was blocked. A change in how gossip sees the node
// ends the wait at once: the next step may then be another one (an abort,
// the record moving on to Recovering, a hand-back).
func (c *Coordinator) backingOff(node string, members []failover.Member, now time.Time) bool {
	v := nodeView{state: memberState(members, node), ready: memberReady(members, node)}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.paceOf(node)
	if p.view != v {
		p.view, p.next = v, time.Time{}
		return false
	}
	return now.Before(p.next)
}

// paced sets the backoff after one step of f, which was in phase before
// it. retry is "" or the reason the step is to be tried again. A step that
// failed or was blocked waits minRetry, then twice as long each further
// time, up to maxRetry: a PDB that allows no disruption for an hour costs
// two requests a minute, not four a second. Any other outcome ends the
// backoff. A failing step is logged when its error changes, not on every
// try, and once when it works again.
func (c *Coordinator) paced(f *record.NodeFailover, before record.Phase, retry string, err error) {
	node := f.Spec.Node
	moved := f.Status.Phase != before
	c.mu.Lock()
	p := c.paceOf(node)
	var logErr, recovered bool
	if retry == "" || moved {
		recovered = p.lastErr != ""
		p.next, p.delay, p.lastErr = time.Time{}, 0, ""
	} else {
		p.delay = min(max(2*p.delay, minRetry), maxRetry)
		p.next = c.clock.Now().Add(p.delay)
		if retry == retryError && err.Error() != p.lastErr {
			p.lastErr, logErr = err.Error(), true
		}
	}
	delay := p.delay
	c.mu.Unlock()
	switch {
	case logErr:
		c.log.Warn("failover step failed; retrying", zap.String("node", node), zap.String("phase", string(before)),
			zap.Duration("retry_in", delay), zap.Error(err))
	case recovered:
		c.log.Info("failover step succeeded after retries", zap.String("node", node), zap.String("phase", string(before)))
	}
	if retry != "" && !moved {
		c.metrics.retries.WithLabelValues(phaseLabel(before), retry).Inc()
	}
}
