package coordinator

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

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

// recoveryCheck is how often a recovering failover counts its workloads'
// ready replicas. Each count reads every affected owner and lists its
// pods, so at the tick's pace a failover of a node with 10 workloads
// would cost the API server about 80 requests a second. Pods are listed
// per owner rather than watched: a watch of every Pod in the cluster
// would cost the coordinator a full list of them at each takeover.
const recoveryCheck = 500 * time.Millisecond

// recoveryCheckDue reports whether node's workloads are due to be counted
// again, and if so notes that they are.
func (c *Coordinator) recoveryCheckDue(node string) bool {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.paceOf(node)
	if !p.recoveryChecked.IsZero() && now.Sub(p.recoveryChecked) < recoveryCheck {
		return false
	}
	p.recoveryChecked = now
	return true
}

// nodeView is what the next step of a failover may depend on in gossip.
type nodeView struct {
	state gossip.State
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

// Messages of a record that the fence guards hold in AwaitingFence.
const (
	msgNodeRenewed = "the node's kubelet renewed its Lease after the failover was confirmed: it is not fenced; " +
		"its stateful pods stay until it is back or a person acts"
	msgNodeReady = "the node is Ready: it is not fenced; its stateful pods stay until it is back or a person acts"
)

// fenceRefused keeps the record waiting in AwaitingFence: the guards found
// the node's kubelet alive, so the node is not fenced. It is no failure:
// the record moves on when the node is back on gossip (Recovering, then the
// hand-back), or a person steps in. Logged and counted once per refusal
// spell, not on every tick.
func (c *Coordinator) fenceRefused(f *record.NodeFailover, err error) {
	reason, msg := fenceRefusedRenewed, msgNodeRenewed
	if errors.Is(err, evict.ErrNodeReady) {
		reason, msg = fenceRefusedReady, msgNodeReady
	}
	if f.Status.Message == msg {
		return
	}
	f.Status.Message = msg
	c.refusedFences.WithLabelValues(reason).Inc()
	if c.d.Recorder != nil {
		c.d.Recorder.Event(recordRef(f), corev1.EventTypeWarning, ReasonFenceRefused, msg)
	}
	c.log.Warn("fence refused: the node's kubelet is alive; stateful pods stay", zap.String("node", f.Spec.Node),
		zap.String("reason", reason), zap.Error(err))
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

// fenceRecheck is how often a record that waits with --fence-bound 0 looks
// whether its stateful pods are still on the node: each look lists the
// node's pods, and a person acts in minutes, not milliseconds.
const fenceRecheck = 10 * time.Second

// recheckFence moves a record that waits with no fence bound on to
// Recovering once no pod awaiting the fence is left on the node: a person
// force-deleted them, or, for a deleted Node, Kubernetes did (the look
// then fails with evict.ErrNodeNotFound, see nodeGone). The first look is
// fenceRecheck after this term found the record waiting: the evictions
// that led here had just listed the pods.
func (c *Coordinator) recheckFence(ctx context.Context, f *record.NodeFailover) error {
	node, st := f.Spec.Node, &f.Status
	now := c.clock.Now()
	c.mu.Lock()
	p := c.paceOf(node)
	due := !p.fenceChecked.IsZero() && now.Sub(p.fenceChecked) >= fenceRecheck
	if due || p.fenceChecked.IsZero() {
		p.fenceChecked = now
	}
	c.mu.Unlock()
	if !due {
		return nil
	}
	left, err := c.d.Evictor.PodsAwaitingFence(ctx, node)
	if err != nil || len(left) > 0 {
		return err
	}
	st.Message = "no stateful pods left on the node (a person or Kubernetes removed them): nothing waits for the fence"
	return st.Advance(record.PhaseRecovering)
}

// recoveringSince returns when this term first found node's record in
// Recovering (when it took the record over, or later when the record got
// there), on this agent's clock.
func (c *Coordinator) recoveringSince(node string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taken == nil {
		c.taken = map[string]takeover{}
	}
	tk, ok := c.taken[node]
	if !ok {
		tk.at = c.clock.Now()
	}
	if tk.recovering.IsZero() {
		tk.recovering = c.clock.Now()
	}
	c.taken[node] = tk
	return tk.recovering
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
	if memberState(members, node) == gossip.StateAlive {
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

// handBack ends the failover once the node has been back (alive on
// gossip and Ready by its kubelet) for the stabilization period: it
// removes exactly what haagent added and records the repair.
func (c *Coordinator) handBack(ctx context.Context, f *record.NodeFailover, members []failover.Member) error {
	node, st := f.Spec.Node, &f.Status
	if memberState(members, node) != gossip.StateAlive || !memberReady(members, node) {
		c.returned(node, time.Time{})
		// A node removed for good never returns: once its workloads are
		// back, its record ends instead of waiting for ever.
		if st.Phase != record.PhaseRecovering && c.nodeDeleted(ctx, node) {
			st.Message = msgDeletedNothingToReturn
			return st.Advance(record.PhaseCompleted)
		}
		return nil
	}
	n, err := c.node(ctx, node)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %q: %w", evict.ErrNodeNotFound, node, err)
	}
	if err != nil {
		return err
	}
	if nodeReady(n) != corev1.ConditionTrue {
		c.returned(node, time.Time{})
		return nil
	}
	now := c.clock.Now()
	since := c.returned(node, now)
	need := c.stabilization(node)
	if now.Sub(since) < need {
		st.Message = fmt.Sprintf("node is back; uncordon after %s of good health", need)
		return nil
	}
	if st.NodeReturned == nil {
		st.NodeReturned = record.At(since)
	}
	from := st.Phase
	if err := st.Advance(record.PhaseNodeReturned); err != nil {
		return err
	}
	if from != record.PhaseNodeReturned {
		// A phase of its own, though the hand-back usually follows at
		// once: its Event says when the node was found back for good.
		st.Message = fmt.Sprintf("node back and healthy for %s", now.Sub(since).Round(time.Second))
		c.phaseEvent(f, from)
	}
	if err := c.checkHolder(ctx); err != nil {
		return err
	}
	if _, err := c.d.Evictor.Undo(ctx, node); err != nil {
		return err
	}
	st.Uncordoned = record.At(c.clock.Now())
	st.Message = "node handed back: haagent's cordon and taints removed"
	c.returned(node, time.Time{})
	return st.Advance(record.PhaseCompleted)
}

// nodeDeleted reports whether the API says the Node no longer exists. Any
// other answer, an error included, counts as "still there".
func (c *Coordinator) nodeDeleted(ctx context.Context, node string) bool {
	_, err := c.node(ctx, node)
	return apierrors.IsNotFound(err)
}

// returned tracks since when a node has been back; a zero now resets it.
func (c *Coordinator) returned(node string, now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.back == nil {
		c.back = map[string]time.Time{}
	}
	if now.IsZero() {
		delete(c.back, node)
		return time.Time{}
	}
	if t, ok := c.back[node]; ok {
		return t
	}
	c.back[node] = now
	return now
}

// stabilization doubles for each other failover of the node within the
// last hour: a flapping node stays cordoned longer.
func (c *Coordinator) stabilization(node string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.cfg.Stabilization
	for _, t := range c.history[node] {
		if c.clock.Since(t) < time.Hour && d < time.Hour {
			d *= 2
		}
	}
	return d
}

// memberReady reports whether the member's own checks pass.
func memberReady(members []failover.Member, name string) bool {
	for _, m := range members {
		if m.Name == name {
			return m.NotReadySince.IsZero()
		}
	}
	return false
}

func memberState(members []failover.Member, name string) gossip.State {
	for _, m := range members {
		if m.Name == name {
			return m.State
		}
	}
	return gossip.StateLeft
}

func countPods(st *record.NodeFailoverStatus, res evict.PodsResult) {
	p := &st.Pods
	p.Total = int32(len(res.Pods) - res.Count(evict.PodSkipped))
	p.Evicted = int32(res.Count(evict.PodEvicted))
	p.PDBBlocked = int32(res.Count(evict.PodPDBBlocked))
	p.FencedOnly = int32(len(res.FencedOnly()))
	p.Gone = int32(res.Count(evict.PodGone))
	p.Failed = int32(res.Count(evict.PodFailed))
}

// affectedOwners lists the workloads with pods on the node: Deployments
// (through their ReplicaSets), bare ReplicaSets and StatefulSets, with the
// replicas they want.
func (c *Coordinator) affectedOwners(ctx context.Context, node string) ([]record.AffectedOwner, error) {
	pods, err := c.d.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", node, err)
	}
	seen := map[record.AffectedOwner]bool{}
	var out []record.AffectedOwner
	apps := c.d.Client.AppsV1()
	for _, p := range pods.Items {
		ref := metav1.GetControllerOf(&p)
		if ref == nil {
			continue
		}
		o := record.AffectedOwner{Kind: ref.Kind, Namespace: p.Namespace, Name: ref.Name}
		switch ref.Kind {
		case "ReplicaSet":
			rs, err := apps.ReplicaSets(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			o.DesiredReplicas = replicas(rs.Spec.Replicas)
			if d := metav1.GetControllerOf(rs); d != nil && d.Kind == "Deployment" {
				dep, err := apps.Deployments(p.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				o = record.AffectedOwner{Kind: "Deployment", Namespace: p.Namespace, Name: d.Name, DesiredReplicas: replicas(dep.Spec.Replicas)}
			}
		case "StatefulSet":
			ss, err := apps.StatefulSets(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			o.DesiredReplicas = replicas(ss.Spec.Replicas)
		default:
			continue // DaemonSets stay with their node; Jobs are not replicas
		}
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out, nil
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// shortfall is an affected owner with fewer pods ready elsewhere than it
// wants.
type shortfall struct {
	owner       record.AffectedOwner
	ready, want int32
	// onNode are its pods still bound to the failed node.
	onNode []string
}

// shortOwners returns the owners that are not back: with fewer pods
// running and ready on other nodes, not terminating, than the smaller of
// the replicas they wanted when the node failed and those they want now.
// An owner scaled down since wants fewer, one scaled to 0 or deleted none.
func (c *Coordinator) shortOwners(ctx context.Context, node string, owners []record.AffectedOwner) ([]shortfall, error) {
	var out []shortfall
	for _, o := range owners {
		sel, wantNow, err := c.ownerNow(ctx, o)
		if err != nil {
			return nil, err
		}
		if sel == nil {
			continue // the owner is gone: nothing left to recover
		}
		s := shortfall{owner: o, want: min(o.DesiredReplicas, wantNow)}
		if s.want <= 0 {
			continue
		}
		pods, err := c.d.Client.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, err
		}
		for _, p := range pods.Items {
			switch {
			case p.Spec.NodeName == node && p.DeletionTimestamp != nil:
				s.onNode = append(s.onNode, p.Namespace+"/"+p.Name+" (terminating)")
			case p.Spec.NodeName == node:
				s.onNode = append(s.onNode, p.Namespace+"/"+p.Name)
			case p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(&p):
				s.ready++
			}
		}
		if s.ready < s.want {
			out = append(out, s)
		}
	}
	return out, nil
}

// recoveryTimedOut says which owners are still short after the timeout,
// and which of their pods are still bound to the node (a stateful pod
// awaiting the fence, typically).
func recoveryTimedOut(short []shortfall, after time.Duration) string {
	parts := make([]string, 0, len(short))
	var stuck []string
	for _, s := range short {
		parts = append(parts, fmt.Sprintf("%s %s/%s: %d of %d ready elsewhere", s.owner.Kind, s.owner.Namespace, s.owner.Name, s.ready, s.want))
		stuck = append(stuck, s.onNode...)
	}
	msg := fmt.Sprintf("workloads not back: %s after %s", strings.Join(parts, "; "), after)
	if len(stuck) > 0 {
		msg += "; still bound to the node: " + strings.Join(stuck, ", ")
	}
	return truncate(msg, 512)
}

// ownerNow returns the owner's pod selector and the replicas it wants now,
// or a nil selector when it is gone or of a kind that is not recovered.
func (c *Coordinator) ownerNow(ctx context.Context, o record.AffectedOwner) (labels.Selector, int32, error) {
	apps := c.d.Client.AppsV1()
	var ls *metav1.LabelSelector
	var want *int32
	switch o.Kind {
	case "Deployment":
		d, err := apps.Deployments(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return nil, 0, ignoreNotFound(err)
		}
		ls, want = d.Spec.Selector, d.Spec.Replicas
	case "ReplicaSet":
		rs, err := apps.ReplicaSets(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return nil, 0, ignoreNotFound(err)
		}
		ls, want = rs.Spec.Selector, rs.Spec.Replicas
	case "StatefulSet":
		ss, err := apps.StatefulSets(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return nil, 0, ignoreNotFound(err)
		}
		ls, want = ss.Spec.Selector, ss.Spec.Replicas
	default:
		return nil, 0, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	return sel, replicas(want), err
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
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
