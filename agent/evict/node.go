package evict

import (
	"context"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxReasonBytes bounds the failover-reason annotation.
const maxReasonBytes = 512

// Cordon marks the node unschedulable, unless it already is, and records
// that haagent did it (AnnotationCordonedBy), so that Undo uncordons only a
// cordon of haagent's own. The first call also records reason and the start
// time of the failover; later calls keep them. A node that someone else
// cordoned stays cordoned and gets only the reason. It refuses an opted-out
// node with ErrOptedOut.
func (e *Evictor) Cordon(ctx context.Context, node, reason string) (NodeResult, error) {
	if reason == "" {
		reason = "node confirmed dead"
	}
	if len(reason) > maxReasonBytes {
		reason = strings.ToValidUTF8(reason[:maxReasonBytes], "")
	}
	now := e.clock.Now()
	var cordoned bool
	n, changed, err := e.patchNode(ctx, ActionCordon, node, "", func(n *corev1.Node) (bool, error) {
		if OptedOut(n) {
			return false, ErrOptedOut
		}
		cordoned = false
		if !n.Spec.Unschedulable {
			n.Spec.Unschedulable = true
			setAnnotation(n, AnnotationCordonedBy, CordonedByHAAgent)
			cordoned = true
		}
		if n.Annotations[AnnotationFailoverReason] == "" {
			setAnnotation(n, AnnotationFailoverReason, reason)
			setAnnotation(n, AnnotationFailoverStarted, now.UTC().Format(time.RFC3339))
			return true, nil
		}
		return cordoned, nil
	})
	e.finish(ActionCordon, err)
	if err != nil {
		e.log.Warn("cordon failed", zap.String("node", node), zap.Error(err))
		return NodeResult{}, err
	}
	if changed {
		e.log.Info("node cordoned", zap.String("node", node), zap.String("reason", reason),
			zap.Bool("was_unschedulable", !cordoned), zap.Bool("dry_run", e.cfg.DryRun))
		if cordoned {
			e.event(n, corev1.EventTypeNormal, ReasonCordoned, "Cordoned by haagent: %s", reason)
		} else {
			e.event(n, corev1.EventTypeNormal, ReasonCordoned, "Failover by haagent: %s (node was already cordoned; haagent will not uncordon it)", reason)
		}
	}
	return NodeResult{Changed: changed, DryRun: e.cfg.DryRun}, nil
}

// Taint adds haagent.io/dead:NoSchedule and
// node.kubernetes.io/unreachable:NoExecute (stamped with TimeAdded, as the
// node lifecycle controller does) where absent, and records in
// AnnotationTaintsAdded the ones it added. A taint that was already there,
// whoever put it, is left out of the record, so Undo leaves it alone.
//
// The node lifecycle controller removes the unreachable taint from a node
// whose Ready condition is True; call MarkNodeNotReady first, or call Taint
// again, which adds it back.
func (e *Evictor) Taint(ctx context.Context, node string) (NodeResult, error) {
	return e.addTaints(ctx, ActionTaint, node, ReasonTainted, nil, deadTaint, unreachableTaint)
}

// ApplyOutOfService adds node.kubernetes.io/out-of-service:NoExecute,
// recorded as added by haagent.
//
// CALL ONLY WHEN THE NODE IS KNOWN TO BE FENCED (powered off, or isolated and
// self-fenced with the known bound passed). With this taint the attach/detach
// controller force-detaches the node's volumes at once and pod GC
// force-deletes its terminating pods: if the node still runs its pods, two
// copies of a stateful pod can write the same volume.
//
// As last guards it refuses a node whose kubelet shows signs of life, even
// when the taint is already there: with ErrNodeReady a node whose Ready
// condition is True, since a kubelet that posts status is not fenced, and
// with ErrNodeRenewed a node whose kubelet renewed its Lease since fc.Lease
// was read or, by its own clock, after fc.Confirmed.
func (e *Evictor) ApplyOutOfService(ctx context.Context, node string, fc FenceCheck) (NodeResult, error) {
	guard := func(n *corev1.Node) error { return e.fenced(ctx, ActionOutOfService, n, fc) }
	return e.addTaints(ctx, ActionOutOfService, node, ReasonOutOfService, guard, outOfServiceTaint)
}

// addTaints adds the taints that are missing. guard, when not nil, may
// refuse the node as read just before the write.
func (e *Evictor) addTaints(ctx context.Context, a Action, node, reason string, guard func(*corev1.Node) error, taints ...corev1.Taint) (NodeResult, error) {
	now := metav1.NewTime(e.clock.Now())
	var added []string
	n, changed, err := e.patchNode(ctx, a, node, "", func(n *corev1.Node) (bool, error) {
		if OptedOut(n) {
			return false, ErrOptedOut
		}
		if guard != nil {
			if err := guard(n); err != nil {
				return false, err
			}
		}
		added = nil
		record := parseTaintsAdded(n.Annotations[AnnotationTaintsAdded])
		for _, t := range taints {
			if hasTaint(n, t) {
				continue
			}
			if t.Effect == corev1.TaintEffectNoExecute {
				t.TimeAdded = &now
			}
			n.Spec.Taints = append(n.Spec.Taints, t)
			record = append(record, t)
			added = append(added, taintID(t))
		}
		if len(added) == 0 {
			return false, nil
		}
		setAnnotation(n, AnnotationTaintsAdded, formatTaintsAdded(record))
		return true, nil
	})
	e.finish(a, err)
	if err != nil {
		e.log.Warn("taint failed", zap.String("node", node), zap.String("action", string(a)), zap.Error(err))
		return NodeResult{}, err
	}
	if changed {
		e.log.Info("node tainted", zap.String("node", node), zap.Strings("taints", added), zap.Bool("dry_run", e.cfg.DryRun))
		e.event(n, corev1.EventTypeNormal, reason, "Taints added by haagent: %s", strings.Join(added, ", "))
	}
	return NodeResult{Changed: changed, DryRun: e.cfg.DryRun}, nil
}

// MarkNodeNotReady sets the node's Ready condition to Unknown with reason
// HAAgentNodeDead, as the node lifecycle controller would about 50 s later
// when the node's lease has expired. Pod GC force-deletes terminating pods
// only on a node that is not Ready (and has the out-of-service taint), and
// the lifecycle controller takes the unreachable taint off a Ready node, so
// the failover needs it early. A Ready condition that is already False or
// Unknown is left as it is. If the kubelet is alive after all, it writes
// Ready=True again at its next status update.
func (e *Evictor) MarkNodeNotReady(ctx context.Context, node string) (NodeResult, error) {
	now := metav1.NewTime(e.clock.Now())
	n, changed, err := e.patchNode(ctx, ActionMarkNodeNotReady, node, "status", func(n *corev1.Node) (bool, error) {
		if OptedOut(n) {
			return false, ErrOptedOut
		}
		msg := "haagent: peers confirmed the node dead; its kubelet is not posting status"
		if r := n.Annotations[AnnotationFailoverReason]; r != "" {
			msg += " (" + r + ")"
		}
		for i := range n.Status.Conditions {
			c := &n.Status.Conditions[i]
			if c.Type != corev1.NodeReady {
				continue
			}
			if c.Status != corev1.ConditionTrue {
				return false, nil
			}
			c.Status, c.Reason, c.Message, c.LastTransitionTime = corev1.ConditionUnknown, ConditionReasonNodeDead, msg, now
			return true, nil
		}
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{
			Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: ConditionReasonNodeDead,
			Message: msg, LastHeartbeatTime: now, LastTransitionTime: now,
		})
		return true, nil
	})
	e.finish(ActionMarkNodeNotReady, err)
	if err != nil {
		e.log.Warn("marking node not ready failed", zap.String("node", node), zap.Error(err))
		return NodeResult{}, err
	}
	if changed {
		e.log.Info("node marked not ready", zap.String("node", node), zap.Bool("dry_run", e.cfg.DryRun))
		e.event(n, corev1.EventTypeWarning, ReasonNodeNotReady, "Node Ready condition set to Unknown by haagent")
	}
	return NodeResult{Changed: changed, DryRun: e.cfg.DryRun}, nil
}

// UndoResult says what Undo handed back.
type UndoResult struct {
	NodeResult
	// Uncordoned is true when haagent had cordoned the node and uncordoned
	// it now.
	Uncordoned bool
	// TaintsRemoved lists the removed taints as "key:Effect".
	TaintsRemoved []string
}

// Undo hands back what haagent took from a node that has returned: it
// removes exactly the taints recorded in AnnotationTaintsAdded, uncordons
// the node only if AnnotationCordonedBy says haagent cordoned it, and removes
// the haagent annotations. A cordon or taint that someone else set is never
// touched. The Ready condition is the kubelet's and is not touched. Undo also
// runs on an opted-out node. Call it only once the node is back and stable.
func (e *Evictor) Undo(ctx context.Context, node string) (UndoResult, error) {
	var res UndoResult
	n, changed, err := e.patchNode(ctx, ActionUndo, node, "", func(n *corev1.Node) (bool, error) {
		res = UndoResult{}
		changed := false
		if recorded := parseTaintsAdded(n.Annotations[AnnotationTaintsAdded]); len(recorded) > 0 {
			kept := n.Spec.Taints[:0:0]
			for _, t := range n.Spec.Taints {
				if matchesAny(t, recorded) {
					res.TaintsRemoved = append(res.TaintsRemoved, taintID(t))
					continue
				}
				kept = append(kept, t)
			}
			if len(kept) != len(n.Spec.Taints) {
				n.Spec.Taints = kept
				if len(kept) == 0 {
					n.Spec.Taints = nil
				}
				changed = true
			}
		}
		if n.Annotations[AnnotationCordonedBy] == CordonedByHAAgent && n.Spec.Unschedulable {
			n.Spec.Unschedulable = false
			res.Uncordoned, changed = true, true
		}
		for _, k := range []string{AnnotationCordonedBy, AnnotationFailoverReason, AnnotationFailoverStarted, AnnotationTaintsAdded} {
			if _, ok := n.Annotations[k]; ok {
				delete(n.Annotations, k)
				changed = true
			}
		}
		return changed, nil
	})
	e.finish(ActionUndo, err)
	if err != nil {
		e.log.Warn("undo failed", zap.String("node", node), zap.Error(err))
		return UndoResult{}, err
	}
	if !changed {
		return UndoResult{NodeResult: NodeResult{DryRun: e.cfg.DryRun}}, nil
	}
	res.NodeResult = NodeResult{Changed: true, DryRun: e.cfg.DryRun}
	e.log.Info("node handed back", zap.String("node", node), zap.Bool("uncordoned", res.Uncordoned),
		zap.Strings("taints", res.TaintsRemoved), zap.Bool("dry_run", e.cfg.DryRun))
	if res.Uncordoned {
		e.event(n, corev1.EventTypeNormal, ReasonUncordoned, "Uncordoned by haagent: node is back")
	}
	if len(res.TaintsRemoved) > 0 {
		e.event(n, corev1.EventTypeNormal, ReasonUntainted, "Taints removed by haagent: %s", strings.Join(res.TaintsRemoved, ", "))
	}
	return res, nil
}

// NodeState is what the Node object says about a failover of it: a
// coordinator that takes over reads it to resume.
type NodeState struct {
	OptedOut bool
	// Ready is the status of the Ready condition (Unknown when missing).
	Ready         corev1.ConditionStatus
	Unschedulable bool
	// CordonedByHAAgent: haagent set spec.unschedulable.
	CordonedByHAAgent bool
	// Reason and Started come from the first Cordon; Started is zero when
	// absent or unparsable.
	Reason  string
	Started time.Time
	// TaintsAdded lists, as "key:Effect", the taints haagent added and that
	// are still recorded.
	TaintsAdded []string
	// OutOfService: the node has the out-of-service NoExecute taint,
	// whoever added it.
	OutOfService bool
}

// InFailover reports whether haagent has left any mark on the node.
func (s NodeState) InFailover() bool {
	return s.Reason != "" || s.CordonedByHAAgent || len(s.TaintsAdded) > 0
}

// State reads the node and reports the failover state recorded on it. It
// writes nothing.
func (e *Evictor) State(ctx context.Context, node string) (NodeState, error) {
	n, err := e.getNode(ctx, ActionState, node)
	if err != nil {
		return NodeState{}, err
	}
	s := NodeState{
		OptedOut:          OptedOut(n),
		Ready:             nodeReady(n),
		Unschedulable:     n.Spec.Unschedulable,
		CordonedByHAAgent: n.Annotations[AnnotationCordonedBy] == CordonedByHAAgent,
		Reason:            n.Annotations[AnnotationFailoverReason],
		OutOfService:      hasTaint(n, outOfServiceTaint),
	}
	if t, err := time.Parse(time.RFC3339, n.Annotations[AnnotationFailoverStarted]); err == nil {
		s.Started = t
	}
	for _, t := range parseTaintsAdded(n.Annotations[AnnotationTaintsAdded]) {
		s.TaintsAdded = append(s.TaintsAdded, taintID(t))
	}
	return s, nil
}

func setAnnotation(n *corev1.Node, k, v string) {
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[k] = v
}

// taintID is the identity of a taint for the API: key and effect.
func taintID(t corev1.Taint) string { return t.Key + ":" + string(t.Effect) }

func hasTaint(n *corev1.Node, t corev1.Taint) bool {
	for _, have := range n.Spec.Taints {
		if have.Key == t.Key && have.Effect == t.Effect {
			return true
		}
	}
	return false
}

func matchesAny(t corev1.Taint, set []corev1.Taint) bool {
	for _, s := range set {
		if t.Key == s.Key && t.Effect == s.Effect {
			return true
		}
	}
	return false
}

// parseTaintsAdded reads AnnotationTaintsAdded. It keeps only the taints
// haagent itself adds; anything else in the annotation is ignored.
func parseTaintsAdded(s string) []corev1.Taint {
	var out []corev1.Taint
	for _, id := range strings.Split(s, ",") {
		id = strings.TrimSpace(id)
		for _, t := range ownTaints {
			if id == taintID(t) && !matchesAny(t, out) {
				out = append(out, t)
			}
		}
	}
	return out
}

func formatTaintsAdded(ts []corev1.Taint) string {
	ids := make([]string, 0, len(ts))
	for _, t := range ts {
		ids = append(ids, taintID(t))
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}
