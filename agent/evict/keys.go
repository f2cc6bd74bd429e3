package evict

import corev1 "k8s.io/api/core/v1"

// FieldManager is the field manager of every write, so that managedFields
// name haagent as the actor of each change it made.
const FieldManager = "haagent"

// Keys that haagent reads and writes on Nodes. They are part of the API of
// haagent: operators see them, and a restarted coordinator finds the state of
// a half-done failover in them.
const (
	// TaintDead (effect NoSchedule) marks a node that haagent holds dead.
	TaintDead = "haagent.io/dead"
	// OutOfServiceTaintValue is the value of the out-of-service taint that
	// haagent adds; the controllers only look at the key and the effect.
	OutOfServiceTaintValue = "nodeshutdown"

	// AnnotationCordonedBy is set to CordonedByHAAgent only when haagent
	// itself set spec.unschedulable, so that Undo uncordons only what
	// haagent cordoned.
	AnnotationCordonedBy = "haagent.io/cordoned-by"
	// CordonedByHAAgent is the value of AnnotationCordonedBy.
	CordonedByHAAgent = "haagent"
	// AnnotationFailoverReason says why haagent failed the node over. It is
	// written by the first Cordon and kept by later ones.
	AnnotationFailoverReason = "haagent.io/failover-reason"
	// AnnotationFailoverStarted is the RFC 3339 time of the first Cordon.
	AnnotationFailoverStarted = "haagent.io/failover-started"
	// AnnotationTaintsAdded lists, as "key:Effect" separated by commas, the
	// taints that haagent added and that were not there before. Undo removes
	// exactly those.
	AnnotationTaintsAdded = "haagent.io/taints-added"

	// LabelFailover set to FailoverDisabled on a Node opts it out: haagent
	// refuses every failover action on it (Undo still hands back what it
	// took before the label was set).
	LabelFailover = "haagent.io/failover"
	// FailoverDisabled is the opt-out value of LabelFailover.
	FailoverDisabled = "disabled"

	// ConditionReasonNodeDead is the reason of the Node Ready condition and
	// of the pod Ready and ContainersReady conditions that haagent sets.
	ConditionReasonNodeDead = "HAAgentNodeDead"
)

// Event reasons on the Node, one per action. They are stable: alerts and
// dashboards select on them.
const (
	ReasonCordoned        = "HAAgentCordoned"
	ReasonTainted         = "HAAgentTainted"
	ReasonNodeNotReady    = "HAAgentNodeNotReady"
	ReasonPodsNotReady    = "HAAgentPodsNotReady"
	ReasonEvicted         = "HAAgentEvicted"
	ReasonEvictionBlocked = "HAAgentEvictionBlocked"
	ReasonOutOfService    = "HAAgentOutOfService"
	ReasonForceDeleted    = "HAAgentForceDeleted"
	ReasonUncordoned      = "HAAgentUncordoned"
	ReasonUntainted       = "HAAgentUntainted"
)

// The taints haagent may add. Undo removes only these, and only when
// AnnotationTaintsAdded names them, so an edited annotation cannot make
// haagent remove someone else's taint.
var (
	deadTaint         = corev1.Taint{Key: TaintDead, Effect: corev1.TaintEffectNoSchedule}
	unreachableTaint  = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	outOfServiceTaint = corev1.Taint{Key: corev1.TaintNodeOutOfService, Value: OutOfServiceTaintValue, Effect: corev1.TaintEffectNoExecute}
	ownTaints         = []corev1.Taint{deadTaint, unreachableTaint, outOfServiceTaint}
)

// OptedOut reports whether the node carries the opt-out label
// haagent.io/failover=disabled.
func OptedOut(node *corev1.Node) bool {
	return node != nil && node.Labels[LabelFailover] == FailoverDisabled
}
