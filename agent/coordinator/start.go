package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/record"
)

// hold logs, counts and records as an Event (see holdEvent) that a guard
// holds the failover of d.Target back, once per node and reason.
func (c *Coordinator) hold(ctx context.Context, d failover.Decision) {
	c.mu.Lock()
	last := c.held[d.Target]
	c.held[d.Target] = d.Reason
	c.mu.Unlock()
	if last != d.Reason {
		c.log.Warn("failover held back", zap.String("node", d.Target), zap.String("reason", d.Reason), zap.String("tally", d.Tally.String()))
		c.metrics.held.Inc()
		c.holdEvent(ctx, d)
	}
}

// start records a new failover. The record is the failover: once it is in
// the API, any coordinator will carry it through.
func (c *Coordinator) start(ctx context.Context, d failover.Decision, now time.Time) {
	c.mu.Lock()
	mine := c.active[d.Target]
	c.mu.Unlock()
	if mine != nil && !d.NotReady && mine.Spec.Cause == record.CauseNotReady && !c.supersede(ctx, mine) {
		return
	}
	// Never two active records for one node. The records were loaded when
	// this term began; another coordinator may have written one since (two
	// agents can both believe they hold the Lease for a moment). That one
	// is carried on instead, unless it is a drain that this dead
	// confirmation supersedes.
	existing, err := c.d.Store.ActiveFor(ctx, d.Target)
	if err != nil {
		c.log.Warn("look up failover records of the node; not starting", zap.String("node", d.Target), zap.Error(err))
		return
	}
	if existing != nil {
		if d.NotReady || existing.Spec.Cause != record.CauseNotReady {
			c.adopt(ctx, existing)
			return
		}
		if !c.supersede(ctx, existing) {
			return
		}
	}
	var lease evict.NodeLease
	leaseRead := false
	if !d.NotReady {
		// Read at confirmation, before anything is done to the node: from
		// here on, a renewal by its kubelet means it is not fenced.
		if lease, err = c.d.Evictor.NodeLease(ctx, d.Target); err == nil {
			leaseRead = true
		} else {
			c.log.Warn("read the node's Lease at confirmation", zap.String("node", d.Target), zap.Error(err))
		}
	}
	reason := fmt.Sprintf("confirmed dead by %s", d.Tally)
	if d.NotReady {
		reason = d.Cause
	}
	f, err := record.NewNodeFailover(d.Target, reason, c.d.DryRun, now)
	if err != nil {
		c.log.Error("new failover record", zap.String("node", d.Target), zap.Error(err))
		return
	}
	f.Spec.Cause = record.CauseDead
	if d.NotReady {
		f.Spec.Cause = record.CauseNotReady
	}
	st := &f.Status
	lastHeard := d.Tally.LastHeard
	if lastHeard.IsZero() || (!d.Tally.FirstSuspected.IsZero() && d.Tally.FirstSuspected.Before(lastHeard)) {
		// Nobody recorded an ack (or the clocks disagree): the first
		// suspicion is the latest time the node is known to have been fine.
		lastHeard = d.Tally.FirstSuspected
	}
	if lastHeard.IsZero() {
		lastHeard = now
	}
	st.LastHeard = record.At(lastHeard)
	st.Suspected = record.At(d.Tally.FirstSuspected)
	st.Confirmed = record.At(now)
	var votes []failover.Vote
	c.d.Ballots.WithBallots(func(b *failover.Ballots) { votes = b.Votes(d.Target) })
	for _, v := range votes {
		st.Votes = append(st.Votes, record.Vote{Voter: v.Voter, Opinion: record.Opinion(v.Opinion.String()), At: metav1.NewMicroTime(v.At)})
	}
	if err := st.Advance(record.PhaseConfirmed); err != nil {
		c.log.Error("advance", zap.Error(err))
		return
	}
	st.Message = reason
	if c.d.DryRun {
		st.Outcome = record.OutcomeDryRun
	}
	if err := c.d.Store.Create(ctx, f); err != nil && !errors.Is(err, record.ErrPending) {
		c.log.Error("create failover record", zap.String("node", d.Target), zap.Error(err))
		return
	}
	c.mu.Lock()
	c.active[d.Target] = f
	delete(c.held, d.Target)
	c.mu.Unlock()
	c.takeOver(ctx, f, lease, leaseRead)
	c.phaseEvent(f, "")
	c.metrics.failovers.WithLabelValues("started").Inc()
	c.metrics.detection.Observe(now.Sub(lastHeard).Seconds())
	c.log.Warn("failover started", zap.String("node", d.Target), zap.String("tally", d.Tally.String()),
		zap.Duration("since_last_heard", now.Sub(lastHeard)), zap.Bool("dry_run", c.d.DryRun))
}

// msgSuperseded ends a not-ready drain whose node a quorum then confirmed
// dead.
const msgSuperseded = "superseded: the node was then confirmed dead"

// supersede ends a not-ready drain of a node that a quorum now confirms
// dead, so that the failover of a dead node, which taints the node, marks
// it not ready and may fence it, starts in its place. It touches nothing
// on the node: Undo would lift the cordon until the new record put it back,
// and the new record's Cordon finds haagent's own and keeps it, so the
// hand-back at the end still removes it. It reports whether the end of the
// drain is in the API: only then may another record of the node be
// created. A write that was only queued is tried again on the next pass.
func (c *Coordinator) supersede(ctx context.Context, drain *record.NodeFailover) bool {
	node := drain.Spec.Node
	c.mu.Lock()
	if mine := c.active[node]; mine != nil && mine.Name == drain.Name {
		drain = mine // this term's copy is the newest
	}
	c.mu.Unlock()
	from := drain.Status.Phase
	if !from.Final() {
		if err := drain.Status.Supersede(c.clock.Now(), msgSuperseded); err != nil {
			c.log.Error("end the not-ready failover", zap.String("node", node), zap.Error(err))
			return false
		}
	}
	if err := c.persist(ctx, drain); err != nil {
		c.log.Warn("end the not-ready failover of a node confirmed dead; retrying", zap.String("node", node),
			zap.String("nodefailover", drain.Name), zap.Error(err))
		return false
	}
	c.log.Warn("not-ready failover superseded: the node was confirmed dead", zap.String("node", node),
		zap.String("nodefailover", drain.Name), zap.String("phase", string(from)))
	c.phaseEvent(drain, from)
	c.finish(ctx, drain)
	return true
}

// adopt carries on a node's active record that this term did not load.
func (c *Coordinator) adopt(ctx context.Context, f *record.NodeFailover) {
	node := f.Spec.Node
	c.mu.Lock()
	c.active[node] = f
	delete(c.held, node)
	c.mu.Unlock()
	c.takeOver(ctx, f, evict.NodeLease{}, false)
	c.log.Warn("failover of the node already recorded: carrying it on instead of starting another",
		zap.String("node", node), zap.String("nodefailover", f.Name), zap.String("phase", string(f.Status.Phase)))
}

// takeOver notes that this term now acts on f: the fence bound counts from
// now on this agent's clock, and the guards compare the node's Lease with
// how it is now. lease is passed when the caller has just read it (at
// confirmation); otherwise it is read here if the record may still need
// the fence.
func (c *Coordinator) takeOver(ctx context.Context, f *record.NodeFailover, lease evict.NodeLease, leaseRead bool) {
	node := f.Spec.Node
	tk := takeover{at: c.clock.Now(), lease: lease, leaseRead: leaseRead}
	if f.Status.Phase == record.PhaseRecovering {
		tk.recovering = tk.at
	}
	if !leaseRead && f.Spec.Cause != record.CauseNotReady && beforeFence(f.Status.Phase) {
		l, err := c.d.Evictor.NodeLease(ctx, node)
		if err != nil {
			c.log.Warn("read the node's Lease at takeover; read again before fencing", zap.String("node", node), zap.Error(err))
		} else {
			tk.lease, tk.leaseRead = l, true
		}
	}
	c.mu.Lock()
	if c.taken == nil {
		c.taken = map[string]takeover{}
	}
	c.taken[node] = tk
	c.mu.Unlock()
}
