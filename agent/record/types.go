package record

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// API coordinates of the NodeFailover custom resource, defined by
// deploy/crd-nodefailover.yaml.
const (
	Group    = "haagent.io"
	Version  = "v1alpha1"
	Kind     = "NodeFailover"
	ListKind = "NodeFailoverList"
	Resource = "nodefailovers"
)

// Labels set on every record.
const (
	// LabelNode holds NodeLabelValue(spec.node), so that the records of one
	// node can be listed with a label selector.
	LabelNode = "haagent.io/node"
	// LabelActive is "true" while the failover is not in a final phase,
	// and absent afterwards. ListActive selects on it.
	LabelActive = "haagent.io/active"
)

// GroupVersionResource returns the resource of NodeFailover records.
func GroupVersionResource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: Group, Version: Version, Resource: Resource}
}

// GroupVersionKind returns the kind of NodeFailover records.
func GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: Group, Version: Version, Kind: Kind}
}

// NodeFailover is the record of one failover of one node: what was decided,
// what was done, and when each phase was reached. It is cluster-scoped.
type NodeFailover struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeFailoverSpec   `json:"spec"`
	Status NodeFailoverStatus `json:"status,omitempty"`
}

// NodeFailoverList is a list of records, as the API returns it and as
// WriteJSON prints it.
type NodeFailoverList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []NodeFailover `json:"items"`
}

// NodeFailoverSpec says which node failed over and how. It does not change
// after the record is created (the CRD rejects changes).
type NodeFailoverSpec struct {
	// Node is the name of the Node that was confirmed dead.
	Node string `json:"node"`
	// DryRun is true when haagent only recorded what it would have done.
	DryRun bool `json:"dryRun,omitempty"`
	// Reason is a short human explanation of why the node was failed over.
	Reason string `json:"reason,omitempty"`
	// Cause is CauseDead or CauseNotReady; empty means CauseDead.
	Cause Cause `json:"cause,omitempty"`
}

// Cause is why a failover started.
type Cause string

// Causes of a failover.
const (
	// CauseDead: a quorum of peers voted the node dead.
	CauseDead Cause = "dead"
	// CauseNotReady: the node, alive on gossip, failed its own checks for
	// longer than --not-ready-failover-after. Its kubelet lives, so its
	// pods are evicted as by a drain, and its stateful pods are never
	// force-removed.
	CauseNotReady Cause = "not-ready"
)

// Phase is how far a failover has got. Phases only move forward, in the
// order of Phases; Aborted and Failed may follow any phase that is not
// final.
type Phase string

// Phases of a failover, in order. A failover may skip phases that do not
// apply (a node without stateful pods goes from Evicting to Recovering).
const (
	PhaseConfirmed     Phase = "Confirmed"     // a quorum of peers voted the node dead
	PhaseCordoned      Phase = "Cordoned"      // the node is unschedulable
	PhaseTainted       Phase = "Tainted"       // haagent's NoExecute taint is on the node
	PhasePodsNotReady  Phase = "PodsNotReady"  // the node's pods are out of Service endpoints
	PhaseEvicting      Phase = "Evicting"      // evictions are being requested
	PhaseAwaitingFence Phase = "AwaitingFence" // stateful pods wait until the node is fenced
	PhaseFenced        Phase = "Fenced"        // out-of-service taint applied
	PhaseRecovering    Phase = "Recovering"    // waiting for owners to be ready again
	PhaseRecovered     Phase = "Recovered"     // every affected owner is back
	PhaseNodeReturned  Phase = "NodeReturned"  // the node is back and stable
	PhaseCompleted     Phase = "Completed"     // cordon and taints handed back; final
	PhaseAborted       Phase = "Aborted"       // the node came back before it was failed over, or a not-ready drain was superseded; final
	PhaseFailed        Phase = "Failed"        // given up; final
)

// Outcome is how a failover ended, or why it is not progressing.
type Outcome string

// Outcomes. The empty outcome means the failover is still running.
const (
	OutcomeNone      Outcome = ""
	OutcomeCompleted Outcome = "completed"
	OutcomeFailed    Outcome = "failed"
	// OutcomePaused: the guards (too many nodes dead, rate limit) stopped
	// automatic failover; the record stays active.
	OutcomePaused Outcome = "paused"
	// OutcomeDryRun: nothing was changed on the cluster.
	OutcomeDryRun Outcome = "dry-run"
	// OutcomeAborted: the node came back (alive on gossip) before it was
	// fully failed over, so the failover stopped and haagent handed back
	// the cordon and taints it had added. Pods already evicted stay
	// evicted. Also the end of a not-ready drain (CauseNotReady) whose node
	// a quorum then confirmed dead: a failover of the dead node took it
	// over, with the cordon, and hands it back in the end.
	OutcomeAborted Outcome = "aborted"
)

// Opinion is a voter's view of the node, as in the gossiped votes.
type Opinion string

// Opinions; the same names the failover package uses.
const (
	OpinionAlive     Opinion = "alive"
	OpinionSuspect   Opinion = "suspect"
	OpinionDead      Opinion = "dead"
	OpinionAgentDown Opinion = "agent-down"
)

// NodeFailoverStatus is the progress of a failover. All timestamps are
// metav1.MicroTime: metav1.Time is serialized to whole seconds, which would
// make second-scale timings meaningless. MicroTime is written as RFC 3339
// with exactly six fractional digits, always in UTC, and read back in the
// local zone (compare with Equal, not ==).
type NodeFailoverStatus struct {
	// Phase is the furthest phase reached; see Advance.
	Phase Phase `json:"phase,omitempty"`
	// Outcome is set when the failover ends, or while it is paused.
	Outcome Outcome `json:"outcome,omitempty"`
	// Message is a human-readable note on the current phase.
	Message string `json:"message,omitempty"`

	// LastHeard is the last time any peer heard from the node: the start
	// of the outage.
	LastHeard *metav1.MicroTime `json:"lastHeard,omitempty"`
	// Suspected is when the first peer suspected the node.
	Suspected *metav1.MicroTime `json:"suspected,omitempty"`
	// Confirmed is when a quorum of peers voted the node dead.
	Confirmed *metav1.MicroTime `json:"confirmed,omitempty"`
	// Cordoned is when the node was marked unschedulable.
	Cordoned *metav1.MicroTime `json:"cordoned,omitempty"`
	// Tainted is when haagent's NoExecute taint was added.
	Tainted *metav1.MicroTime `json:"tainted,omitempty"`
	// PodsNotReady is when the node's pods were marked not ready.
	PodsNotReady *metav1.MicroTime `json:"podsNotReady,omitempty"`
	// EvictionsAccepted is when the API accepted the last eviction.
	EvictionsAccepted *metav1.MicroTime `json:"evictionsAccepted,omitempty"`
	// Fenced is when the out-of-service taint was applied.
	Fenced *metav1.MicroTime `json:"fenced,omitempty"`
	// WorkloadsRecovered is when every affected owner was back to its
	// desired ready replicas: the end of the outage.
	WorkloadsRecovered *metav1.MicroTime `json:"workloadsRecovered,omitempty"`
	// NodeReturned is when the node came back and stayed healthy.
	NodeReturned *metav1.MicroTime `json:"nodeReturned,omitempty"`
	// Uncordoned is when haagent handed the node back.
	Uncordoned *metav1.MicroTime `json:"uncordoned,omitempty"`

	// Votes are the opinions that made up the quorum, one per voter.
	Votes []Vote `json:"votes,omitempty"`
	// Pods counts what happened to the pods of the node.
	Pods PodCounts `json:"pods,omitempty"`
	// AffectedOwners are the workloads that lost pods on the node; the
	// failover is repaired when all of them are back.
	AffectedOwners []AffectedOwner `json:"affectedOwners,omitempty"`

	// TimeToDetect is Confirmed − LastHeard, set by Derive ("1.234s").
	TimeToDetect string `json:"timeToDetect,omitempty"`
	// TimeToRepair is WorkloadsRecovered − LastHeard, set by Derive.
	TimeToRepair string `json:"timeToRepair,omitempty"`

	// Conditions are optional standard conditions.
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Vote is one peer's opinion of the node.
type Vote struct {
	// Voter is the name of the node whose agent voted.
	Voter string `json:"voter"`
	// Opinion is what the voter thought.
	Opinion Opinion `json:"opinion"`
	// At is when the voter formed the opinion, by its own clock.
	At metav1.MicroTime `json:"at"`
}

// PodCounts counts the pods that were on the node.
type PodCounts struct {
	// Total is the number of pods bound to the node when it was confirmed
	// dead, without DaemonSet and mirror pods.
	Total int32 `json:"total,omitempty"`
	// Evicted pods had an eviction accepted.
	Evicted int32 `json:"evicted,omitempty"`
	// PDBBlocked pods had an eviction refused by a PodDisruptionBudget.
	PDBBlocked int32 `json:"pdbBlocked,omitempty"`
	// FencedOnly pods (stateful) may only go once the node is fenced.
	FencedOnly int32 `json:"fencedOnly,omitempty"`
	// Gone pods had already been deleted.
	Gone int32 `json:"gone,omitempty"`
	// Failed pods could not be evicted or deleted.
	Failed int32 `json:"failed,omitempty"`
}

// AffectedOwner is a workload that lost pods on the node.
type AffectedOwner struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// DesiredReplicas is the owner's desired replica count when the node
	// failed.
	DesiredReplicas int32 `json:"desiredReplicas"`
}

// DeepCopy returns a copy of f that shares no memory with it.
func (f *NodeFailover) DeepCopy() *NodeFailover {
	if f == nil {
		return nil
	}
	out := &NodeFailover{TypeMeta: f.TypeMeta, Spec: f.Spec}
	f.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Status = f.Status.DeepCopy()
	return out
}

// DeepCopy returns a copy of s that shares no memory with it.
func (s NodeFailoverStatus) DeepCopy() NodeFailoverStatus {
	out := s
	for _, p := range out.timestamps() {
		if *p != nil {
			t := **p
			*p = &t
		}
	}
	if s.Votes != nil {
		out.Votes = append([]Vote(nil), s.Votes...)
	}
	if s.AffectedOwners != nil {
		out.AffectedOwners = append([]AffectedOwner(nil), s.AffectedOwners...)
	}
	if s.Conditions != nil {
		out.Conditions = make([]metav1.Condition, len(s.Conditions))
		for i := range s.Conditions {
			s.Conditions[i].DeepCopyInto(&out.Conditions[i])
		}
	}
	return out
}

// timestamps returns the addresses of the phase timestamps, in phase order.
func (s *NodeFailoverStatus) timestamps() []**metav1.MicroTime {
	return []**metav1.MicroTime{
		&s.LastHeard, &s.Suspected, &s.Confirmed, &s.Cordoned, &s.Tainted,
		&s.PodsNotReady, &s.EvictionsAccepted, &s.Fenced,
		&s.WorkloadsRecovered, &s.NodeReturned, &s.Uncordoned,
	}
}

// At returns t as a timestamp for the status fields, or nil for the zero
// time.
func At(t time.Time) *metav1.MicroTime {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewMicroTime(t)
	return &mt
}
