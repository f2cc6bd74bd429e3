// The NodeFailover API, group haagent.io, version v1alpha1, for
// controller-gen (make generate):
//
// +groupName=haagent.io
// +versionName=v1alpha1

package record

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// API coordinates of the NodeFailover custom resource. The types below are
// its one source: make generate writes their DeepCopy methods and the CRD,
// charts/haagent/crds/nodefailover.yaml (copied to
// deploy/crd-nodefailover.yaml by make manifests), from the Go types and
// their +kubebuilder markers.
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
//
// +kubebuilder:object:root=true
// +kubebuilder:object:generate=true
// +kubebuilder:resource:scope=Cluster,singular=nodefailover,shortName=nf,categories=haagent
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="app.kubernetes.io/name=haagent"
// +kubebuilder:metadata:labels="app.kubernetes.io/part-of=haagent"
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=".spec.node"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=".status.phase"
// +kubebuilder:printcolumn:name="Outcome",type=string,JSONPath=".status.outcome"
// +kubebuilder:printcolumn:name="Detect",type=string,description="Time to detect, from last heard to confirmed dead.",JSONPath=".status.timeToDetect"
// +kubebuilder:printcolumn:name="Repair",type=string,description="Time to repair, from last heard to every affected workload recovered.",JSONPath=".status.timeToRepair"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type NodeFailover struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says which node failed over and how. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable"
	Spec NodeFailoverSpec `json:"spec"`
	// Status is the progress of the failover; written by the coordinator
	// only.
	// +optional
	Status NodeFailoverStatus `json:"status,omitempty"`
}

// NodeFailoverList is a list of records, as the API returns it and as
// WriteJSON prints it.
//
// +kubebuilder:object:root=true
// +kubebuilder:object:generate=true
type NodeFailoverList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []NodeFailover `json:"items"`
}

// NodeFailoverSpec says which node failed over and how. It does not change
// after the record is created (the CRD rejects changes).
//
// +kubebuilder:object:generate=true
type NodeFailoverSpec struct {
	// Node is the name of the Node that was confirmed dead.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node"`
	// DryRun is true when haagent only recorded what it would have done.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
	// Reason is a short human explanation of why the node was failed over.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Reason string `json:"reason,omitempty"`
	// Cause is dead (a quorum of peers voted the node dead) or not-ready
	// (the node's own checks failed for longer than
	// --not-ready-failover-after). Empty means dead.
	// +optional
	Cause Cause `json:"cause,omitempty"`
}

// Cause is why a failover started.
//
// +kubebuilder:validation:Enum=dead;not-ready
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
//
// +kubebuilder:validation:Enum=Confirmed;Cordoned;Tainted;PodsNotReady;Evicting;AwaitingFence;Fenced;Recovering;Recovered;NodeReturned;Completed;Aborted;Failed
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
//
// +kubebuilder:validation:Enum="";completed;failed;paused;dry-run;aborted
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
//
// +kubebuilder:validation:Enum=alive;suspect;dead;agent-down
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
//
// +kubebuilder:object:generate=true
type NodeFailoverStatus struct {
	// Phase is the furthest phase reached. Phases only move forward;
	// Aborted and Failed may follow any phase that is not final
	// (Completed, Aborted, Failed).
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// Outcome is set when the failover ends (completed, failed, dry-run,
	// aborted when the node came back before it was failed over) or while
	// the guards hold it (paused).
	// +optional
	Outcome Outcome `json:"outcome,omitempty"`
	// Message is a note on the current phase, for people.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Message string `json:"message,omitempty"`

	// LastHeard is the last time any peer heard from the node: the start
	// of the outage.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	LastHeard *metav1.MicroTime `json:"lastHeard,omitempty"`
	// Suspected is when the first peer suspected the node.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	Suspected *metav1.MicroTime `json:"suspected,omitempty"`
	// Confirmed is when a quorum of peers voted the node dead.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	Confirmed *metav1.MicroTime `json:"confirmed,omitempty"`
	// Cordoned is when the node was marked unschedulable.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	Cordoned *metav1.MicroTime `json:"cordoned,omitempty"`
	// Tainted is when haagent's NoExecute taint was added to the node.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	Tainted *metav1.MicroTime `json:"tainted,omitempty"`
	// PodsNotReady is when the node's pods were marked not ready (out of
	// Service endpoints).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	PodsNotReady *metav1.MicroTime `json:"podsNotReady,omitempty"`
	// EvictionsAccepted is when the API server accepted the last eviction.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	EvictionsAccepted *metav1.MicroTime `json:"evictionsAccepted,omitempty"`
	// Fenced is when the out-of-service taint was applied, the node being
	// known to be fenced.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	Fenced *metav1.MicroTime `json:"fenced,omitempty"`
	// WorkloadsRecovered is when every affected owner was back to its
	// desired ready replicas: the end of the outage.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	WorkloadsRecovered *metav1.MicroTime `json:"workloadsRecovered,omitempty"`
	// NodeReturned is when the node came back and stayed healthy.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	NodeReturned *metav1.MicroTime `json:"nodeReturned,omitempty"`
	// Uncordoned is when haagent removed the cordon and taints it had
	// added.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	Uncordoned *metav1.MicroTime `json:"uncordoned,omitempty"`

	// Votes are the opinions that made up the quorum, one per voter.
	// +listType=map
	// +listMapKey=voter
	// +optional
	Votes []Vote `json:"votes,omitempty"`
	// Pods counts what happened to the pods that were on the node.
	// +optional
	Pods PodCounts `json:"pods,omitempty"`
	// AffectedOwners are the workloads that lost pods on the node; the
	// failover is repaired when all of them are back to their desired
	// ready replicas.
	// +listType=atomic
	// +optional
	AffectedOwners []AffectedOwner `json:"affectedOwners,omitempty"`

	// TimeToDetect is Confirmed minus LastHeard, such as 1.234s, set by
	// Derive; empty until measured.
	// +optional
	TimeToDetect string `json:"timeToDetect,omitempty"`
	// TimeToRepair is WorkloadsRecovered minus LastHeard, such as 9.876s,
	// set by Derive; empty until measured.
	// +optional
	TimeToRepair string `json:"timeToRepair,omitempty"`

	// ObservedGeneration is the metadata.generation of the record that
	// this status was written for.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are the standard conditions of the record, one per type:
	// Ready (the affected workloads serve again), Completed (the failover
	// ended without failing: handed back, Node deleted, aborted or
	// superseded), Failed (it ended Failed; the reason says why), all
	// three derived from the phase on every write, and Superseded (a
	// not-ready drain taken over by the failover of the dead node).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Vote is one peer's opinion of the node.
//
// +kubebuilder:object:generate=true
type Vote struct {
	// Voter is the name of the node whose agent voted.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Voter string `json:"voter"`
	// Opinion is what the voter thought.
	Opinion Opinion `json:"opinion"`
	// At is when the voter formed the opinion, by its own clock.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`
	At metav1.MicroTime `json:"at"`
}

// PodCounts counts the pods that were on the node.
//
// +kubebuilder:object:generate=true
type PodCounts struct {
	// Total is the number of pods bound to the node when it was confirmed
	// dead, without DaemonSet and mirror pods.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Total int32 `json:"total,omitempty"`
	// Evicted pods had an eviction accepted by the API.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Evicted int32 `json:"evicted,omitempty"`
	// PDBBlocked pods had an eviction refused by a PodDisruptionBudget.
	// +kubebuilder:validation:Minimum=0
	// +optional
	PDBBlocked int32 `json:"pdbBlocked,omitempty"`
	// FencedOnly pods (stateful) are removed only once the node is fenced.
	// +kubebuilder:validation:Minimum=0
	// +optional
	FencedOnly int32 `json:"fencedOnly,omitempty"`
	// Gone pods had already been deleted.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Gone int32 `json:"gone,omitempty"`
	// Failed pods could be neither evicted nor deleted.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Failed int32 `json:"failed,omitempty"`
}

// AffectedOwner is a workload that lost pods on the node.
//
// +kubebuilder:object:generate=true
type AffectedOwner struct {
	// Kind is the owner's kind, such as StatefulSet.
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`
	// Namespace is the owner's namespace.
	Namespace string `json:"namespace"`
	// Name is the owner's name.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// DesiredReplicas is the owner's desired replica count when the node
	// failed.
	// +kubebuilder:validation:Minimum=0
	DesiredReplicas int32 `json:"desiredReplicas"`
}

// DeepCopy, DeepCopyInto and DeepCopyObject of these types are generated
// by make generate, in zz_generated.deepcopy.go.

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
