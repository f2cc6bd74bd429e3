package record

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a record, with the semantics of metav1.Condition: one
// per type; Status True or False; a CamelCase Reason from the fixed sets
// below; LastTransitionTime when Status last changed; ObservedGeneration
// the metadata.generation it was computed for. SetConditions derives
// Ready, Completed and Failed from the phase and the timestamps on every
// write (Store.Create, Store.UpdateStatus), so that they never disagree
// with them, and tools can wait on them:
//
//	kubectl wait --for=condition=Completed nodefailover/<name>
//
// While one of them is False its reason is the current phase (Cordoned,
// Evicting, Recovering, ...) and its message the status message.
const (
	// ConditionReady is True once the affected workloads serve again:
	// back to their desired ready replicas on other nodes (reason
	// WorkloadsRecovered), or back with the node itself (NodeReturned).
	ConditionReady = "Ready"
	// ConditionCompleted is True once the failover has ended without
	// failing: the node handed back (HandedBack), the Node deleted
	// (NodeDeleted), the failover stopped because the node came back
	// before it was failed over (Aborted), or a not-ready drain superseded
	// by the failover of the dead node (Superseded). Failed is the other
	// end: wait for either to know that a failover is over.
	ConditionCompleted = "Completed"
	// ConditionFailed is True once the failover has ended Failed; its
	// reason says why (RecoveryTimedOut, OptedOut,
	// NodeDeletedBeforeEvictions, or Failed).
	ConditionFailed = "Failed"
)

// Reasons of the conditions when True. They are stable: tools and alerts
// select on them.
const (
	ReasonWorkloadsRecovered = "WorkloadsRecovered"
	ReasonNodeReturned       = "NodeReturned"
	ReasonHandedBack         = "HandedBack"
	ReasonNodeDeleted        = "NodeDeleted"
	ReasonAborted            = "Aborted"
	ReasonSuperseded         = "Superseded"

	// ReasonRecoveryTimedOut: the workloads were not back within
	// --recovery-timeout.
	ReasonRecoveryTimedOut = "RecoveryTimedOut"
	// ReasonOptedOut: the Node was opted out during the failover.
	ReasonOptedOut = "OptedOut"
	// ReasonNodeDeletedBeforeEvictions: the Node was deleted before its
	// pods were evicted.
	ReasonNodeDeletedBeforeEvictions = "NodeDeletedBeforeEvictions"
	// ReasonFailed: failed, with no more specific reason recorded (Fail
	// records one; Advance(PhaseFailed) alone does not).
	ReasonFailed = "Failed"
)

// Messages of the conditions when True, where the status message (a note
// on the last step) would not describe them.
const (
	msgWorkloadsRecovered = "every affected workload is back to its desired ready replicas"
	msgNodeReturned       = "the node is back and runs its workloads again"
	msgHandedBack         = "the node is back; haagent handed back its cordon and taints"
	msgNodeDeleted        = "the Node was deleted: nothing to hand back"
	msgAborted            = "the node came back before it was failed over; haagent handed back what it had added"
)

// Fail ends the failover Failed at at, for reason (one of the Reason*
// constants of a failure), with message: phase Failed, outcome failed, the
// message, and ConditionFailed True with that reason, which SetConditions
// keeps. A record already in another final phase is left unchanged and
// gives a *PhaseError.
func (s *NodeFailoverStatus) Fail(at time.Time, reason, message string) error {
	if err := s.Advance(PhaseFailed); err != nil {
		return err
	}
	s.Message = message
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: ConditionFailed, Status: metav1.ConditionTrue,
		Reason: reason, Message: message, LastTransitionTime: metav1.NewTime(at), ObservedGeneration: s.ObservedGeneration})
	return nil
}

// SetConditions sets status.observedGeneration to generation (unless it is
// 0: a record not created yet) and derives the Ready, Completed and Failed
// conditions from the phase and timestamps, with meta.SetStatusCondition:
// a condition whose status does not change keeps its LastTransitionTime.
// A condition that becomes True at a recorded time (WorkloadsRecovered,
// NodeReturned, Uncordoned) takes that time; any other change takes now.
// It reads no clock and does nothing for a record without a phase.
func (s *NodeFailoverStatus) SetConditions(generation int64, now time.Time) {
	if s.Phase == "" {
		return
	}
	if generation > 0 {
		s.ObservedGeneration = generation
	}
	for _, c := range s.derivedConditions(now) {
		meta.SetStatusCondition(&s.Conditions, c)
	}
	for i := range s.Conditions {
		s.Conditions[i].ObservedGeneration = s.ObservedGeneration
	}
}

// derivedConditions returns Ready, Completed and Failed as the phase and
// timestamps say, in that order.
func (s *NodeFailoverStatus) derivedConditions(now time.Time) []metav1.Condition {
	notYet := func(typ string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionFalse, Reason: string(s.Phase), Message: s.Message}
	}
	// yes is True since at, or since now when at is nil.
	yes := func(typ, reason, message string, at *metav1.MicroTime) metav1.Condition {
		c := metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: reason, Message: message}
		if at != nil {
			c.LastTransitionTime = metav1.NewTime(at.Time)
		}
		return c
	}
	superseded := !s.supersededAt().IsZero()

	var ready metav1.Condition
	switch {
	case s.WorkloadsRecovered != nil:
		ready = yes(ConditionReady, ReasonWorkloadsRecovered, msgWorkloadsRecovered, s.WorkloadsRecovered)
	case s.Phase == PhaseFailed:
		ready = notYet(ConditionReady)
	case s.NodeReturned != nil:
		ready = yes(ConditionReady, ReasonNodeReturned, msgNodeReturned, s.NodeReturned)
	case superseded:
		ready = notYet(ConditionReady)
		ready.Reason = ReasonSuperseded
	default:
		ready = notYet(ConditionReady)
	}

	completed := notYet(ConditionCompleted)
	switch {
	case s.Phase == PhaseCompleted && s.Uncordoned != nil:
		completed = yes(ConditionCompleted, ReasonHandedBack, msgHandedBack, s.Uncordoned)
	case s.Phase == PhaseCompleted:
		completed = yes(ConditionCompleted, ReasonNodeDeleted, msgNodeDeleted, nil)
	case s.Phase == PhaseAborted && superseded:
		completed = yes(ConditionCompleted, ReasonSuperseded, s.Message, nil)
		completed.LastTransitionTime = metav1.NewTime(s.supersededAt())
	case s.Phase == PhaseAborted:
		completed = yes(ConditionCompleted, ReasonAborted, msgAborted, nil)
	}

	failed := notYet(ConditionFailed)
	if s.Phase == PhaseFailed {
		reason := ReasonFailed
		if c := meta.FindStatusCondition(s.Conditions, ConditionFailed); c != nil && c.Status == metav1.ConditionTrue && c.Reason != "" {
			reason = c.Reason
		}
		failed = yes(ConditionFailed, reason, s.Message, nil)
	}

	out := []metav1.Condition{ready, completed, failed}
	for i := range out {
		if out[i].LastTransitionTime.IsZero() {
			out[i].LastTransitionTime = metav1.NewTime(now)
		}
	}
	return out
}
