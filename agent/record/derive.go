package record

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/internal/availability"
)

// Derive recomputes TimeToDetect and TimeToRepair from the timestamps, with
// the definitions of internal/availability. A figure that cannot be measured
// yet (a timestamp missing, or before LastHeard) is left empty. It also cuts
// Message to the 4096 bytes the CRD allows. Store.Create and
// Store.UpdateStatus call it, so the printer columns always agree with the
// timestamps.
func (s *NodeFailoverStatus) Derive() {
	s.Message = truncate(s.Message, maxMessageLen)
	f := s.toAvailability("")
	s.TimeToDetect, s.TimeToRepair = "", ""
	if d, ok := availability.TimeToDetect(f); ok {
		s.TimeToDetect = FormatDuration(d)
	}
	if d, ok := availability.TimeToRepair(f); ok {
		s.TimeToRepair = FormatDuration(d)
	}
}

// ToAvailability returns what internal/availability needs of the record.
// Missing timestamps become zero times. Dry-run records count too: the node
// was down whether or not haagent acted. An aborted failover ends its outage
// when the node came back (NodeReturned), or, for a drain superseded by the
// failover of the dead node, when it was superseded: that record carries
// the outage on, and the node's downtime is the union of the two.
func (f *NodeFailover) ToAvailability() availability.Failover {
	return f.Status.toAvailability(f.Spec.Node)
}

func (s *NodeFailoverStatus) toAvailability(node string) availability.Failover {
	recovered := timeOf(s.WorkloadsRecovered)
	if s.Phase == PhaseAborted && recovered.IsZero() {
		// Its workloads were never moved: they were back with the node.
		// Without this the outage would count as lasting for ever.
		recovered = timeOf(s.NodeReturned)
		if recovered.IsZero() {
			recovered = s.supersededAt()
		}
	}
	return availability.Failover{
		Node:      node,
		LastHeard: timeOf(s.LastHeard),
		Confirmed: timeOf(s.Confirmed),
		Recovered: recovered,
	}
}

// FormatDuration renders a phase duration to the millisecond, as in the
// status and the report: "850ms", "1.234s", "5m3.1s".
func FormatDuration(d time.Duration) string {
	return d.Round(time.Millisecond).String()
}

func timeOf(t *metav1.MicroTime) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// Merge folds the status from into s, for when two writers (a coordinator
// and its successor, or a queued write and a fresh read) hold different
// versions of one record. Its rules hold whatever the order of the writes:
//
//   - the phase is the further of the two;
//   - a timestamp is a fact that only gets recorded once, so each one is
//     the earlier of the two that are set;
//   - votes and conditions are merged by voter and by type (from wins for a
//     voter or type in both);
//   - the observed generation is the larger of the two;
//   - the outcome, message, pod counts and affected owners come from the
//     status with the further phase, and from from on a tie, because from is
//     usually the newer intent of the caller;
//
// then the durations are derived again.
func (s *NodeFailoverStatus) Merge(from *NodeFailoverStatus) {
	if from == nil {
		return
	}
	theirsAhead := from.Phase.rank() >= s.Phase.rank()
	s.Phase = laterPhase(s.Phase, from.Phase)

	mine, theirs := s.timestamps(), from.timestamps()
	for i := range mine {
		a, b := *mine[i], *theirs[i]
		if b != nil && (a == nil || b.Time.Before(a.Time)) {
			t := *b
			*mine[i] = &t
		}
	}

	if theirsAhead {
		if from.Outcome != OutcomeNone || s.Outcome == OutcomeNone {
			s.Outcome = from.Outcome
		}
		if from.Message != "" {
			s.Message = from.Message
		}
		s.Pods = from.Pods
		if from.AffectedOwners != nil {
			s.AffectedOwners = append([]AffectedOwner(nil), from.AffectedOwners...)
		}
	}

	s.ObservedGeneration = max(s.ObservedGeneration, from.ObservedGeneration)
	for _, v := range from.Votes {
		replaced := false
		for i := range s.Votes {
			if s.Votes[i].Voter == v.Voter {
				s.Votes[i], replaced = v, true
				break
			}
		}
		if !replaced {
			s.Votes = append(s.Votes, v)
		}
	}
	for _, c := range from.Conditions {
		replaced := false
		for i := range s.Conditions {
			if s.Conditions[i].Type == c.Type {
				c.DeepCopyInto(&s.Conditions[i])
				replaced = true
				break
			}
		}
		if !replaced {
			s.Conditions = append(s.Conditions, *c.DeepCopy())
		}
	}
	s.Derive()
}

// ConditionSuperseded is True on a not-ready drain (CauseNotReady) that
// ended because a quorum then confirmed its node dead, so that a failover
// of the dead node took over. Its LastTransitionTime is when.
const ConditionSuperseded = "Superseded"

// Supersede ends a not-ready drain whose node a quorum has confirmed dead
// at at: phase Aborted, message, and ConditionSuperseded, which ends the
// drain's outage for the availability figures (see ToAvailability).
func (s *NodeFailoverStatus) Supersede(at time.Time, message string) error {
	if s.Phase.Final() {
		return &PhaseError{From: s.Phase, To: PhaseAborted, Err: ErrPhaseOrder}
	}
	if err := s.Advance(PhaseAborted); err != nil {
		return err
	}
	s.Message = message
	c := metav1.Condition{Type: ConditionSuperseded, Status: metav1.ConditionTrue, Reason: "ConfirmedDead",
		Message: message, LastTransitionTime: metav1.NewTime(at)}
	for i := range s.Conditions {
		if s.Conditions[i].Type == ConditionSuperseded {
			s.Conditions[i] = c
			return nil
		}
	}
	s.Conditions = append(s.Conditions, c)
	return nil
}

// supersededAt returns when the drain was superseded, or the zero time.
func (s *NodeFailoverStatus) supersededAt() time.Time {
	for _, c := range s.Conditions {
		if c.Type == ConditionSuperseded && c.Status == metav1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}
