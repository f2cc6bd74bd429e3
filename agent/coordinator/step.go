package coordinator

import (
	"context"
	"sort"

	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/record"
)

// confirmedDead reports whether a quorum confirms the node dead, from this
// agent's gossip view and ballots.
func (c *Coordinator) confirmedDead(node string) bool {
	members := c.gossipView()
	var ok bool
	c.d.Ballots.WithBallots(func(b *failover.Ballots) {
		_, ok = c.decider.ConfirmedDead(failover.Input{Now: c.clock.Now(), Members: members, Ballots: b}, node)
	})
	return ok
}

// gossipView is this agent's membership as the decision core sees it,
// without the API's opt-out labels or readiness history (members adds
// those for the leader).
func (c *Coordinator) gossipView() []failover.Member {
	var out []failover.Member
	for _, m := range c.d.Gossip.Members() {
		out = append(out, FailoverMember(m))
	}
	return c.withUnseen(out)
}

// withUnseen adds the members of the expected group that this agent's
// gossip never saw (Nodes an agent ran on, known from the API only) as
// dead: they count in the quorum and the dead fraction, as the gossip
// majority tests count them, so that a coordinator restarted after some
// members died does not confirm a death with a majority of what it sees
// alone. With no votes of their own and no epoch, they are never failed
// over from this view.
func (c *Coordinator) withUnseen(members []failover.Member) []failover.Member {
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		seen[m.Name] = true
	}
	for _, name := range c.d.Gossip.ExpectedNames() {
		if !seen[name] {
			members = append(members, failover.Member{Name: name, State: failover.StateDead})
		}
	}
	return members
}

// step is one pass: decide, start, advance.
func (c *Coordinator) step(ctx context.Context) {
	if err := c.d.Store.Flush(ctx); err != nil {
		c.log.Warn("retry queued record writes", zap.Error(err))
	}
	now := c.clock.Now()
	members := c.members(ctx)
	activeSet, draining := map[string]bool{}, map[string]bool{}
	for _, f := range c.activeRecords() {
		activeSet[f.Spec.Node] = true
		if f.Spec.Cause == record.CauseNotReady {
			draining[f.Spec.Node] = true
		}
	}
	var decisions []failover.Decision
	var pause string
	c.d.Ballots.WithBallots(func(b *failover.Ballots) {
		decisions, pause = c.decider.Decide(failover.Input{Now: now, Members: members, Ballots: b, Active: activeSet, Draining: draining})
	})
	c.metrics.paused.Set(boolFloat(pause != ""))
	agentDown := 0
	for _, d := range decisions {
		switch d.Action {
		case failover.ActionStart:
			c.start(ctx, d, now)
		case failover.ActionHold:
			c.hold(ctx, d)
		case failover.ActionAgentDown:
			agentDown++
		}
	}
	c.metrics.agentDown.Set(float64(agentDown))

	for _, f := range c.activeRecords() {
		if ctx.Err() != nil {
			return
		}
		if c.backingOff(f.Spec.Node, members, now) {
			continue
		}
		c.advance(ctx, f, members)
	}
	active := c.activeRecords()
	if c.d.Notices != nil {
		// Once started, a failover of a dead node reads no vote again.
		for _, f := range active {
			if f.Spec.Cause != record.CauseNotReady {
				c.d.Notices.UnderWay(f.Spec.Node)
			}
		}
	}
	c.metrics.active.Set(float64(len(active)))
	c.metrics.setMemberStatus(c.memberStatus(members, decisions, active))
}

// memberStatus is what haagent_failover_member_status shows after a pass:
// the members held or agent-down by this pass's decisions, those with an
// active failover (returning once they are alive again), and those whose
// last failover failed. A failure stays the finding, through the new
// failover that fresh votes start, until the node is alive again, its Node
// is deleted, or a later failover has its workloads back.
func (c *Coordinator) memberStatus(members []failover.Member, decisions []failover.Decision, active []*record.NodeFailover) map[string]string {
	status := map[string]string{}
	alive := map[string]bool{}
	for _, m := range members {
		alive[m.Name] = m.State == failover.StateAlive
	}
	for _, d := range decisions {
		switch d.Action {
		case failover.ActionHold:
			status[d.Target] = statusHeld
		case failover.ActionAgentDown:
			status[d.Target] = statusAgentDown
		}
	}
	for _, f := range active {
		switch {
		case f.Spec.Cause == record.CauseNotReady:
			status[f.Spec.Node] = statusDraining
		case alive[f.Spec.Node] || f.Status.Phase == record.PhaseNodeReturned:
			// Back on gossip: no longer dead, whatever the hand-back
			// still waits for.
			status[f.Spec.Node] = statusReturning
		case f.Status.Phase == record.PhaseRecovered:
			status[f.Spec.Node] = statusFailedOver
		default:
			status[f.Spec.Node] = statusFailingOver
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range members {
		if m.State == failover.StateAlive || m.State == failover.StateLeft {
			delete(c.failed, m.Name)
		}
	}
	for n := range c.failed {
		switch status[n] {
		case statusFailedOver, statusReturning:
			delete(c.failed, n) // a later failover succeeded
		default:
			status[n] = statusFailed
		}
	}
	return status
}

// activeRecords returns the records this term acts on, by node name. The
// records themselves are the lead loop's: only the map needs the lock.
func (c *Coordinator) activeRecords() []*record.NodeFailover {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*record.NodeFailover, 0, len(c.active))
	for _, f := range c.active {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Node < out[j].Spec.Node })
	return out
}

// members converts the gossip view: the opt-out label of the members
// gossip holds dead (the only ones a vote can be about), and since when
// each alive member has reported itself not ready.
func (c *Coordinator) members(ctx context.Context) []failover.Member {
	now := c.clock.Now()
	var out []failover.Member
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.d.Gossip.Members() {
		fm := FailoverMember(m)
		switch {
		case m.State == gossip.StateAlive && !m.Meta.Ready && m.MetaError == "":
			if _, ok := c.unready[m.Name]; !ok {
				c.unready[m.Name] = now
			}
			fm.NotReadySince, fm.NotReadyReason = c.unready[m.Name], m.Meta.Reason
		default:
			delete(c.unready, m.Name)
		}
		if m.State == gossip.StateDead || !fm.NotReadySince.IsZero() {
			n, err := c.node(ctx, m.Name)
			switch {
			case err == nil:
				fm.OptOut = evict.OptedOut(n)
			case apierrors.IsNotFound(err) && m.State == gossip.StateDead:
				// Removed from the cluster: there is nothing to fail over,
				// and it must not count towards the quorum or the dead
				// fraction, as if it had left.
				fm.State = failover.StateLeft
			}
		}
		out = append(out, fm)
	}
	return c.withUnseen(out)
}
