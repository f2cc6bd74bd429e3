// Package evict performs the Kubernetes API actions of a failover: what the
// coordinator does to a node once a quorum of peers has confirmed it dead,
// and what it hands back when the node returns.
//
// Every action is idempotent and keeps its state in the API objects
// themselves (spec.unschedulable, taints, haagent.io/ annotations, pod
// conditions), so a coordinator that takes over after a restart calls the
// same methods again and they finish what is left without repeating what is
// done. A call that finds nothing to do sends no write.
//
// The order of a failover:
//
//  1. Cordon: no new pods on the node; records the reason and start time.
//  2. MarkNodeNotReady: Ready=Unknown, as the node lifecycle controller would
//     ~50 s later. Before Taint, because the controller takes the unreachable
//     taint off a node that is still Ready.
//  3. Taint: haagent.io/dead:NoSchedule and node.kubernetes.io/unreachable:NoExecute.
//  4. MarkPodsNotReady: the pods leave Service endpoints at once.
//  5. EvictPods: Eviction API for the stateless pods, repeated with backoff
//     while pods are blocked by disruption budgets, failed or deferred.
//     StatefulSet pods and pods with single-node volumes are only reported
//     (fenced-only).
//  6. Only once the node is known to be fenced (powered off, or self-fenced
//     and the bound for that passed): ApplyOutOfService, then
//     ForceDeletePods with the fenced-only pods. Doing this to a node that
//     still runs its pods can run two copies of a stateful pod. Both take a
//     FenceCheck: the node's kubelet Lease as the coordinator read it when
//     it took the failover over (NodeLease), and the confirmation time.
//     Until then PodsAwaitingFence (a read) tells which of those pods are
//     still there: a person, or Kubernetes for a deleted Node, may have
//     removed them.
//  7. When the node is back and stable: Undo removes the taints haagent
//     added and the cordon it set, and nothing that someone else set.
//
// Errors: ErrNodeNotFound (nothing to fail over), ErrOptedOut (the node has
// haagent.io/failover=disabled), ErrNodeReady, ErrNodeRenewed and
// ErrNotOutOfService (the fence guards refused). *APIError is any other API failure: retry with
// backoff. Per-pod outcomes are in the results; a *PDBBlockedError there
// means retry the eviction later, never delete the pod instead.
//
// Every write carries the field manager "haagent" and, with Config.DryRun,
// DryRun=All. Each change is logged, counted (haagent_evict_*) and recorded
// as an Event on the Node (not in a dry run: an Event is a write).
//
// The package touches only the Kubernetes API through the client it is
// given: Nodes (and nodes/status), Pods (list, pods/status, pods/eviction,
// delete), PersistentVolumeClaims and DaemonSets (read), the kubelets'
// Leases in kube-node-lease (read), and Events through the recorder. It keeps no state between calls and starts no goroutine
// that outlives a call.
package evict
