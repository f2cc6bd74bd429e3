package coordinator

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/record"
)

// maxStepsPerTick bounds how many phases one record may pass in one tick.
const maxStepsPerTick = 8

// advance moves one record on, one step at a time, writing it after each
// step that changed it, for as long as steps complete at once: a failover
// does not wait a tick between cordon, taints, pods not ready and eviction.
// It stops at the first step that waits (for PDBs, the fence bound, the
// workloads, the node) or fails; a step that failed or was blocked is
// tried again after a backoff (see paced).
func (c *Coordinator) advance(ctx context.Context, f *record.NodeFailover, members []failover.Member) {
	if f.Status.Phase.Final() {
		// Ended on an earlier pass whose write did not go through (see
		// supersede): finish it once the write does.
		if c.persist(ctx, f) == nil {
			c.finish(ctx, f)
		}
		return
	}
	for i := 0; i < maxStepsPerTick && ctx.Err() == nil; i++ {
		before := *f.Status.DeepCopy()
		err := c.stepRecord(ctx, f, members)
		retry := ""
		switch {
		case errors.Is(err, evict.ErrNodeNotFound):
			c.nodeGone(f)
		case errors.Is(err, evict.ErrOptedOut):
			c.fail(f, record.ReasonOptedOut, "the Node was opted out of automatic failover during the failover")
		case errors.Is(err, evict.ErrNodeRenewed), errors.Is(err, evict.ErrNodeReady):
			c.fenceRefused(f, err)
			retry = retryBlocked
		case errors.Is(err, errBlocked):
			retry = retryBlocked // the step wrote why into the message
		case err != nil:
			f.Status.Message = truncate(err.Error(), 512)
			retry = retryError
		}
		c.paced(f, before.Phase, retry, err)
		if reflect.DeepEqual(before, f.Status) {
			return
		}
		c.observePhases(&before, &f.Status)
		_ = c.persist(ctx, f)
		c.phaseEvent(f, before.Phase)
		if f.Status.Phase.Final() {
			c.finish(ctx, f)
			return
		}
		if err != nil || f.Status.Phase == before.Phase {
			return // failed, or still waiting in the same phase
		}
	}
}

// fail ends f Failed, for reason (a record.Reason* of a failure, the
// Failed condition's reason), saying why.
func (c *Coordinator) fail(f *record.NodeFailover, reason, why string) {
	if err := f.Status.Fail(c.clock.Now(), reason, why); err != nil {
		c.log.Error("end the failover Failed", zap.String("node", f.Spec.Node), zap.Error(err))
		return
	}
	c.log.Error("failover failed", zap.String("node", f.Spec.Node), zap.String("reason", why))
}

// Messages of a record whose Node was deleted.
const (
	msgDeletedBeforeEvictions = "the Node was deleted before its pods were evicted: Kubernetes deletes them, haagent did not move them"
	msgDeletedAwaitingPods    = "the Node was deleted: Kubernetes deletes its pods, stateful ones included; waiting for the workloads"
	msgDeletedNothingToReturn = "the Node was deleted: nothing to hand back"
)

// nodeGone carries on a failover whose Node was deleted. Kubernetes' pod
// garbage collector deletes the pods bound to a Node that no longer exists,
// stateful ones included, and nothing is left to fence or hand back. Once
// haagent has evicted what it could (from AwaitingFence on), the record
// only waits for the workloads, or ends once they are back. Before that it
// ends Failed: the pods left without haagent's evictions, and someone
// should see where their workloads went.
func (c *Coordinator) nodeGone(f *record.NodeFailover) {
	st := &f.Status
	switch st.Phase {
	case record.PhaseAwaitingFence, record.PhaseFenced, record.PhaseRecovering:
		st.Message = msgDeletedAwaitingPods
		_ = st.Advance(record.PhaseRecovering)
	case record.PhaseRecovered, record.PhaseNodeReturned:
		st.Message = msgDeletedNothingToReturn
		_ = st.Advance(record.PhaseCompleted)
	default:
		c.fail(f, record.ReasonNodeDeletedBeforeEvictions, msgDeletedBeforeEvictions)
	}
}

// persist writes the status. On a conflict (an earlier coordinator's
// queued write landed late, or a person edited the record) it re-reads the
// record and merges: the further phase wins and each timestamp keeps its
// earliest value.
func (c *Coordinator) persist(ctx context.Context, f *record.NodeFailover) error {
	err := c.d.Store.UpdateStatus(ctx, f)
	if errors.Is(err, record.ErrConflict) {
		fresh, gerr := c.d.Store.Get(ctx, f.Name)
		if gerr == nil {
			fresh.Status.Merge(&f.Status)
			if err = c.d.Store.UpdateStatus(ctx, fresh); err == nil {
				*f = *fresh
			}
		}
	}
	if err != nil && !errors.Is(err, record.ErrPending) {
		c.log.Error("write failover record", zap.String("node", f.Spec.Node), zap.Error(err))
	}
	return err
}

// finish takes a final record out of the active set and drops its active
// label.
func (c *Coordinator) finish(ctx context.Context, f *record.NodeFailover) {
	if f.SyncLabels() {
		if err := c.d.Store.Update(ctx, f); err != nil {
			c.log.Warn("update failover record labels", zap.String("node", f.Spec.Node), zap.Error(err))
		}
	}
	c.mu.Lock()
	delete(c.active, f.Spec.Node)
	delete(c.taken, f.Spec.Node)
	delete(c.pace, f.Spec.Node)
	if f.Status.Confirmed != nil {
		c.history[f.Spec.Node] = append(c.history[f.Spec.Node], f.Status.Confirmed.Time)
	}
	if f.Status.Phase == record.PhaseFailed && c.failed != nil {
		c.failed[f.Spec.Node] = true
	}
	c.mu.Unlock()
	c.metrics.failovers.WithLabelValues(outcomeLabel(f.Status.Outcome)).Inc()
	c.log.Info("failover finished", zap.String("node", f.Spec.Node), zap.String("outcome", string(f.Status.Outcome)),
		zap.String("time_to_detect", f.Status.TimeToDetect), zap.String("time_to_repair", f.Status.TimeToRepair))
}

// stepRecord does the next thing the record's phase calls for.
func (c *Coordinator) stepRecord(ctx context.Context, f *record.NodeFailover, members []failover.Member) error {
	node, st, ev := f.Spec.Node, &f.Status, c.d.Evictor
	switch st.Phase {
	case record.PhaseConfirmed, record.PhaseCordoned, record.PhaseTainted, record.PhasePodsNotReady, record.PhaseEvicting:
		if err := c.checkHolder(ctx); err != nil {
			return err
		}
		// Until the node is fully failed over, every action is checked
		// against the current view: the record may have been resumed from
		// the API long after it was decided, or this pass may have spent
		// seconds on evictions. A node that is back ends the failover.
		if f.Spec.Cause != record.CauseNotReady && c.aliveOnGossip(node, members) {
			return c.abort(ctx, f)
		}
		// A record that only this agent holds must not act: should this
		// agent lose the Lease, nobody could find the record to hand back
		// what was done. The queued create goes out on a later pass.
		if c.d.Store.PendingCreate(f.Name) {
			return nil
		}
	}
	switch st.Phase {
	case record.PhaseConfirmed:
		if _, err := ev.Cordon(ctx, node, f.Spec.Reason); err != nil {
			return err
		}
		st.Cordoned = record.At(c.clock.Now())
		st.Message = "cordoned"
		return st.Advance(record.PhaseCordoned)

	case record.PhaseCordoned:
		if f.Spec.Cause == record.CauseNotReady {
			// The kubelet lives: it keeps the Ready conditions itself, and
			// terminates the evicted pods. Evict as a drain does.
			st.Message = "node alive but not ready: draining it"
			return st.Advance(record.PhasePodsNotReady)
		}
		// Ready=Unknown first: the node lifecycle controller removes the
		// unreachable taint from a node it still sees Ready.
		if _, err := ev.MarkNodeNotReady(ctx, node); err != nil {
			return err
		}
		if _, err := ev.Taint(ctx, node); err != nil {
			return err
		}
		st.Tainted = record.At(c.clock.Now())
		st.Message = "node not ready and tainted"
		return st.Advance(record.PhaseTainted)

	case record.PhaseTainted:
		owners, err := c.affectedOwners(ctx, node)
		if err != nil {
			return err
		}
		st.AffectedOwners = owners
		res, err := ev.MarkPodsNotReady(ctx, node)
		if err != nil {
			return err
		}
		st.PodsNotReady = record.At(c.clock.Now())
		st.Message = fmt.Sprintf("pods marked not ready: %+v", res)
		return st.Advance(record.PhasePodsNotReady)

	case record.PhasePodsNotReady, record.PhaseEvicting:
		res, err := ev.EvictPods(ctx, node)
		if err != nil {
			return err
		}
		c.podEvents(f, res, evict.PodEvicted)
		countPods(st, res)
		if !res.Done() {
			st.Message = fmt.Sprintf("evictions pending: %d blocked by a PodDisruptionBudget, %d failed",
				res.Count(evict.PodPDBBlocked), res.Count(evict.PodFailed))
			if err := st.Advance(record.PhaseEvicting); err != nil {
				return err
			}
			if res.Count(evict.PodEvicted)+res.Count(evict.PodGone) > 0 {
				return nil // deferred pods go on the next pass
			}
			return errBlocked
		}
		st.EvictionsAccepted = record.At(c.clock.Now())
		if len(res.FencedOnly()) > 0 {
			st.Message = fmt.Sprintf("%d stateful pods wait for the node to be fenced", len(res.FencedOnly()))
			return st.Advance(record.PhaseAwaitingFence)
		}
		st.Message = "evictions accepted; waiting for the workloads to recover"
		return st.Advance(record.PhaseRecovering)

	case record.PhaseAwaitingFence:
		if f.Spec.Cause == record.CauseNotReady {
			st.Message = "stateful pods stay on the live node: move them by hand, or wait for the node to be ready"
			return c.handBack(ctx, f, members)
		}
		if c.aliveOnGossip(node, members) {
			st.Message = "the node came back before it was fenced: its stateful pods stay with it"
			return st.Advance(record.PhaseRecovering)
		}
		if c.cfg.FenceBound == 0 {
			st.Message = "stateful pods wait for the node or a person: --fence-bound is 0"
			return c.recheckFence(ctx, f)
		}
		tk, err := c.takenOver(ctx, f)
		if err != nil {
			return err
		}
		// The bound runs on this agent's own monotonic clock, from when this
		// term took the record over. st.Confirmed was stamped by the wall
		// clock of whichever coordinator confirmed the node; against it, a
		// successor whose clock runs ahead would cut the bound short, or
		// skip it. The takeover came after the confirmation, so the bound
		// timed from it never ends before the bound since confirmation has
		// passed in real time, and no skew between machines can shorten it.
		// A wall-clock condition on top could never end the wait sooner,
		// only later when this clock runs behind the confirming one, so
		// there is none.
		if c.clock.Since(tk.at) < c.cfg.FenceBound {
			return nil
		}
		fc := evict.FenceCheck{Lease: tk.lease}
		if st.Confirmed != nil {
			fc.Confirmed = st.Confirmed.Time
		}
		// The node counts as fenced from the moment the bound has passed
		// and the out-of-service taint goes on: from then on Kubernetes
		// itself may delete its pods.
		fencedAt := c.clock.Now()
		if err := c.checkHolder(ctx); err != nil {
			return err
		}
		if _, err := ev.ApplyOutOfService(ctx, node, fc); err != nil {
			return err
		}
		res, err := ev.EvictPods(ctx, node)
		if err != nil {
			return err
		}
		c.podEvents(f, res, evict.PodEvicted)
		del, err := ev.ForceDeletePods(ctx, node, res.FencedOnly(), fc)
		c.podEvents(f, del, evict.PodDeleted)
		if err != nil {
			return err
		}
		if err := del.Err(); err != nil {
			return err
		}
		st.Fenced = record.At(fencedAt)
		st.Message = fmt.Sprintf("fence bound passed: out-of-service applied, %d stateful pods removed", del.Count(evict.PodDeleted))
		return st.Advance(record.PhaseFenced)

	case record.PhaseFenced:
		return st.Advance(record.PhaseRecovering)

	case record.PhaseRecovering:
		if !c.recoveryCheckDue(node) {
			return nil
		}
		short, err := c.shortOwners(ctx, node, st.AffectedOwners)
		if err != nil {
			return err
		}
		if len(short) == 0 {
			st.WorkloadsRecovered = record.At(c.clock.Now())
			st.Message = "every affected workload is back to its desired ready replicas"
			return st.Advance(record.PhaseRecovered)
		}
		// A node back before its workloads is handed back all the same.
		if err := c.handBack(ctx, f, members); err != nil || st.Phase != record.PhaseRecovering {
			return err
		}
		if c.clock.Since(c.recoveringSince(node)) >= c.cfg.RecoveryTimeout {
			c.fail(f, record.ReasonRecoveryTimedOut, recoveryTimedOut(short, c.cfg.RecoveryTimeout))
		}
		return nil

	case record.PhaseRecovered, record.PhaseNodeReturned:
		return c.handBack(ctx, f, members)
	}
	return nil
}

// takenOver returns when this term took f over and the node's Lease then.
// A Lease that could not be read at takeover is read now, and the takeover
// moves to now, so that the bound runs entirely while the Lease is watched:
// a renewal before this read would not show as a change.
func (c *Coordinator) takenOver(ctx context.Context, f *record.NodeFailover) (takeover, error) {
	node := f.Spec.Node
	c.mu.Lock()
	tk, ok := c.taken[node]
	c.mu.Unlock()
	if ok && tk.leaseRead {
		return tk, nil
	}
	lease, err := c.d.Evictor.NodeLease(ctx, node)
	if err != nil {
		return takeover{}, err
	}
	tk = takeover{at: c.clock.Now(), lease: lease, leaseRead: true, recovering: tk.recovering}
	c.mu.Lock()
	if c.taken == nil {
		c.taken = map[string]takeover{}
	}
	c.taken[node] = tk
	c.mu.Unlock()
	return tk, nil
}

// aliveOnGossip reports whether the node is alive in the view this pass
// decided on, or in gossip as it is now.
func (c *Coordinator) aliveOnGossip(node string, members []failover.Member) bool {
	if memberState(members, node) == failover.StateAlive {
		return true
	}
	for _, m := range c.d.Gossip.Members() {
		if m.Name == node {
			return m.State == gossip.StateAlive
		}
	}
	return false
}

// abort ends a failover whose node came back before it was fully failed
// over. It hands back what haagent added (Undo removes exactly that, and
// nothing someone else set) and keeps the record, Aborted. The Ready
// condition haagent set to Unknown is the kubelet's to write again, as it
// does at its next status update; pods already evicted stay evicted.
func (c *Coordinator) abort(ctx context.Context, f *record.NodeFailover) error {
	node, st := f.Spec.Node, &f.Status
	from := st.Phase
	res, err := c.d.Evictor.Undo(ctx, node)
	if err != nil {
		return err
	}
	now := c.clock.Now()
	if st.NodeReturned == nil {
		st.NodeReturned = record.At(now)
	}
	st.Message = "the node came back before it was failed over: failover stopped, nothing had been done to the node yet"
	if res.Changed {
		st.Uncordoned = record.At(now)
		st.Message = "the node came back before it was failed over: failover stopped, haagent's cordon and taints removed"
	}
	c.log.Warn("failover aborted: the node came back before it was failed over", zap.String("node", node),
		zap.String("phase", string(from)), zap.Bool("uncordoned", res.Uncordoned), zap.Strings("taints_removed", res.TaintsRemoved))
	return st.Advance(record.PhaseAborted)
}

// observePhases feeds the histograms with the phases this step reached,
// measured from the last time the node was heard from.
func (c *Coordinator) observePhases(before, after *record.NodeFailoverStatus) {
	if after.LastHeard == nil {
		return
	}
	from := after.LastHeard.Time
	for _, p := range []struct {
		phase      string
		old, fresh *metav1.MicroTime
	}{
		{"cordoned", before.Cordoned, after.Cordoned},
		{"tainted", before.Tainted, after.Tainted},
		{"pods_not_ready", before.PodsNotReady, after.PodsNotReady},
		{"evictions_accepted", before.EvictionsAccepted, after.EvictionsAccepted},
		{"fenced", before.Fenced, after.Fenced},
		{"workloads_recovered", before.WorkloadsRecovered, after.WorkloadsRecovered},
		{"uncordoned", before.Uncordoned, after.Uncordoned},
	} {
		if p.old == nil && p.fresh != nil {
			c.metrics.phase.WithLabelValues(p.phase).Observe(p.fresh.Sub(from).Seconds())
		}
	}
	if before.WorkloadsRecovered == nil && after.WorkloadsRecovered != nil {
		c.metrics.repair.Observe(after.WorkloadsRecovered.Sub(from).Seconds())
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
