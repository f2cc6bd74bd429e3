package coordinator

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/record"
)

// Events. The coordinator, and only while it leads, records through
// Deps.Recorder (client-go's event recorder, which writes core/v1 Events,
// counts repeats and drops a flood, see cmd/haagent):
//
//   - on the NodeFailover record, one Normal Event per phase reached, whose
//     reason is the phase (Confirmed, Cordoned, Tainted, PodsNotReady,
//     Evicting, AwaitingFence, Fenced, Recovering, Recovered, NodeReturned,
//     Completed, Aborted) and whose message is the status message; Failed
//     is a Warning. Events of a cluster-scoped object land in the
//     "default" namespace; kubectl describe nodefailover shows them.
//   - Warnings ReasonFailoverHeld and ReasonFailoverPaused when a guard
//     holds a confirmed dead node back (once per node and reason), on the
//     node's record if it has one, else on the Node; ReasonFenceRefused on
//     the record once per refusal spell.
//   - on each pod that a failover evicted or force-deleted, one Normal
//     Event (evict.ReasonEvicted, evict.ReasonForceDeleted) that names the
//     node and the record, where the pod's owners look: they may read their
//     namespace's Events but not Nodes or NodeFailovers. That is one Event
//     per pod, at most two (an evicted pod left Terminating on a fenced
//     node is force-deleted later), the same order of writes as the
//     evictions themselves; none in a dry run, where no pod is touched.
//
// The evictor records its own Events on the Node (agent/evict).
const (
	// ReasonFailoverHeld: a guard about this node alone (opted out, the
	// failover rate limit) holds back the failover of a node confirmed
	// dead.
	ReasonFailoverHeld = "HAAgentFailoverHeld"
	// ReasonFailoverPaused: automatic failover is paused (too many nodes
	// dead in the cluster or in the node's zone, or by the operator), so
	// the failover of a node confirmed dead waits.
	ReasonFailoverPaused = "HAAgentFailoverPaused"
	// ReasonFenceRefused: the fence guards found the kubelet of a node past
	// its fence bound alive; its stateful pods stay.
	ReasonFenceRefused = "HAAgentFenceRefused"
)

// EventReasons returns every reason the coordinator records, the phases
// included: the fixed set that docs/operations.md documents.
func EventReasons() []string {
	var out []string
	for _, p := range record.Phases() {
		out = append(out, string(p))
	}
	return append(out, ReasonFailoverHeld, ReasonFailoverPaused, ReasonFenceRefused, evict.ReasonEvicted, evict.ReasonForceDeleted)
}

// recordRef is the object of the Events about f. A record whose create is
// still queued has no UID yet: its Events then match it by name only.
func recordRef(f *record.NodeFailover) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: record.Group + "/" + record.Version, Kind: record.Kind, Name: f.Name, UID: f.UID}
}

// phaseEvent records that f reached its phase, coming from phase from,
// once.
func (c *Coordinator) phaseEvent(f *record.NodeFailover, from record.Phase) {
	to := f.Status.Phase
	if to == from || to == "" || c.d.Recorder == nil {
		return
	}
	// A phase passed within a step (NodeReturned on the way to Completed)
	// is recorded when it is reached; the step's own Event must not repeat
	// it.
	c.mu.Lock()
	p := c.paceOf(f.Spec.Node)
	repeat := p.evented == to
	p.evented = to
	c.mu.Unlock()
	if repeat {
		return
	}
	typ := corev1.EventTypeNormal
	if to == record.PhaseFailed {
		typ = corev1.EventTypeWarning
	}
	msg := f.Status.Message
	if msg == "" {
		msg = "failover of node " + f.Spec.Node + " reached phase " + string(to)
	}
	c.d.Recorder.Event(recordRef(f), typ, string(to), msg)
}

// holdEvent records why the failover of d.Target is held back: on its
// record when it has one (a drain that a dead confirmation would
// supersede), else on its Node.
func (c *Coordinator) holdEvent(ctx context.Context, d failover.Decision) {
	if c.d.Recorder == nil || d.Target == "*" || !c.leading.Load() {
		return
	}
	reason := ReasonFailoverHeld
	if d.Paused {
		reason = ReasonFailoverPaused
	}
	msg := "failover of node " + d.Target + " held back: " + d.Reason
	c.mu.Lock()
	f := c.active[d.Target]
	c.mu.Unlock()
	if f != nil && f.UID != "" {
		c.d.Recorder.Event(recordRef(f), corev1.EventTypeWarning, reason, msg)
		return
	}
	c.d.Recorder.Event(c.nodeRef(ctx, d.Target), corev1.EventTypeWarning, reason, msg)
}

// nodeRef is the object of Events about the Node name: the Node as the
// coordinator knows it, or, when it cannot be read, a reference with the
// name as UID, as the kubelet records its Events (kubectl describe node
// shows both).
func (c *Coordinator) nodeRef(ctx context.Context, name string) *corev1.ObjectReference {
	ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: name, UID: types.UID(name)}
	if n, err := c.node(ctx, name); err == nil && n.UID != "" {
		ref.UID = n.UID
	}
	return ref
}

// podEvents records on each pod of res that outcome befell (evicted or
// deleted) what happened to it and why.
func (c *Coordinator) podEvents(f *record.NodeFailover, res evict.PodsResult, outcome evict.PodOutcome) {
	if c.d.Recorder == nil || res.DryRun {
		return
	}
	reason, msg := evict.ReasonEvicted, "Evicted by haagent: node "+f.Spec.Node+" failed over (NodeFailover "+f.Name+")"
	if outcome == evict.PodDeleted {
		reason, msg = evict.ReasonForceDeleted, "Force-deleted by haagent: node "+f.Spec.Node+" is fenced (NodeFailover "+f.Name+")"
	}
	for _, p := range res.Pods {
		if p.Outcome != outcome {
			continue
		}
		ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: p.Pod.Namespace, Name: p.Pod.Name, UID: p.Pod.UID}
		c.d.Recorder.Event(ref, corev1.EventTypeNormal, reason, msg)
	}
}
