package evict

import (
	"errors"
	"fmt"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNodeNotFound: the Node object does not exist. There is nothing to
	// fail over; pod GC removes the pods of a deleted node by itself.
	ErrNodeNotFound = errors.New("evict: node not found")
	// ErrOptedOut: the node carries haagent.io/failover=disabled.
	ErrOptedOut = errors.New("evict: node opted out of failover (label " + LabelFailover + "=" + FailoverDisabled + ")")
	// ErrNodeReady: the node's Ready condition is True, so its kubelet is
	// posting status and the node cannot be fenced. ApplyOutOfService and
	// ForceDeletePods refuse to run.
	ErrNodeReady = errors.New("evict: node is Ready, so it is not fenced")
	// ErrNodeRenewed: the node's kubelet renewed its Lease in
	// kube-node-lease after the failover was taken over or confirmed, so
	// the node runs and is not fenced, though its Ready condition is not
	// True (haagent itself set it to Unknown). ApplyOutOfService and
	// ForceDeletePods refuse to run.
	ErrNodeRenewed = errors.New("evict: node's kubelet renewed its Lease, so it is not fenced")
	// ErrNotOutOfService: ForceDeletePods was called on a node without the
	// out-of-service taint; call ApplyOutOfService first.
	ErrNotOutOfService = errors.New("evict: node has no out-of-service taint")
	// ErrNoUID: a pod was given to ForceDeletePods without a UID, which the
	// delete precondition needs.
	ErrNoUID = errors.New("evict: pod reference has no UID")
)

// APIError is an API request that failed for a reason worth retrying with
// backoff: a server error, a timeout, a conflict that outlasted the
// conflict retries, a refused connection. Err is the client-go error.
type APIError struct {
	Action Action
	Node   string
	// Pod is "namespace/name" when the request was about a pod.
	Pod string
	Err error
}

func (e *APIError) Error() string {
	if e.Pod != "" {
		return fmt.Sprintf("evict: %s of node %q, pod %s: %v", e.Action, e.Node, e.Pod, e.Err)
	}
	return fmt.Sprintf("evict: %s of node %q: %v", e.Action, e.Node, e.Err)
}

func (e *APIError) Unwrap() error { return e.Err }

// PDBBlockedError is an eviction that the API server refused with 429 Too
// Many Requests, normally because it would violate a PodDisruptionBudget.
// Retry later with backoff; never delete the pod instead.
type PDBBlockedError struct {
	Node string
	Pod  PodRef
	Err  error
}

func (e *PDBBlockedError) Error() string {
	return fmt.Sprintf("evict: eviction of pod %s on node %q blocked: %v", e.Pod, e.Node, e.Err)
}

func (e *PDBBlockedError) Unwrap() error { return e.Err }

func nodeNotFound(act Action, node string, err error) error {
	return fmt.Errorf("%w: %q (%s): %w", ErrNodeNotFound, node, act, err)
}
