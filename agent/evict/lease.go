package evict

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeLease is a node's kubelet Lease (kube-node-lease/<node>) as read at
// one moment. The kubelet renews it every 10 s or so, even when it cannot
// post the Node's status, so a Lease that moves on is the surest sign, short
// of gossip, that the node runs.
type NodeLease struct {
	// Found is false when the node had no Lease.
	Found bool
	// ResourceVersion changes with every write to the Lease.
	ResourceVersion string
	// RenewTime is spec.renewTime by the kubelet's own clock; zero when
	// unset.
	RenewTime time.Time
}

// FenceCheck is what the fence guards of ApplyOutOfService and
// ForceDeletePods compare the node's Lease with. The coordinator fills it
// in when it takes a failover over.
type FenceCheck struct {
	// Lease is the node's Lease as the coordinator read it when it took
	// the failover over: at confirmation for a failover it started, when
	// it loaded the record otherwise.
	Lease NodeLease
	// Confirmed is when the node was confirmed dead, as the record says;
	// zero to leave that comparison out.
	Confirmed time.Time
}

// NodeLease reads the node's kubelet Lease. A missing Lease is no error:
// it returns a NodeLease with Found false.
func (e *Evictor) NodeLease(ctx context.Context, node string) (NodeLease, error) {
	l, err := e.nodeLease(ctx, ActionNodeLease, node)
	e.finish(ActionNodeLease, err)
	if err != nil {
		return NodeLease{}, &APIError{Action: ActionNodeLease, Node: node, Err: err}
	}
	return l, nil
}

// nodeLease reads the Lease for action a; its errors are the client's,
// with context, for the caller to classify.
func (e *Evictor) nodeLease(ctx context.Context, a Action, node string) (NodeLease, error) {
	start := e.clock.Now()
	l, err := e.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
	e.metrics.observe(a, e.clock.Since(start))
	switch {
	case apierrors.IsNotFound(err):
		return NodeLease{}, nil
	case err != nil:
		return NodeLease{}, fmt.Errorf("read Lease %s/%s: %w", corev1.NamespaceNodeLease, node, err)
	}
	out := NodeLease{Found: true, ResourceVersion: l.ResourceVersion}
	if l.Spec.RenewTime != nil {
		out.RenewTime = l.Spec.RenewTime.Time
	}
	return out, nil
}

// fenced is the last guard before an action that is only safe on a fenced
// node: it refuses a node that shows any sign of a running kubelet. An error
// reading the Lease is returned as the client gave it: the action fails and
// is retried, it does not go ahead unchecked.
func (e *Evictor) fenced(ctx context.Context, a Action, n *corev1.Node, fc FenceCheck) error {
	if nodeReady(n) == corev1.ConditionTrue {
		return ErrNodeReady
	}
	// Ready is not enough: haagent itself set it to Unknown, and a kubelet
	// that reaches the API server again may renew its Lease well before it
	// posts the Node's status.
	cur, err := e.nodeLease(ctx, a, n.Name)
	if err != nil {
		return err
	}
	if !cur.Found {
		return nil // no Lease, nothing renewed (a deleted Lease is no renewal)
	}
	base := fc.Lease
	switch {
	case !base.Found:
		return fmt.Errorf("%w: its Lease %s/%s appeared after the failover was taken over", ErrNodeRenewed, corev1.NamespaceNodeLease, n.Name)
	case cur.ResourceVersion != base.ResourceVersion && !cur.RenewTime.Equal(base.RenewTime):
		// Only versions and times from the API server are compared here,
		// never two machines' clocks.
		return fmt.Errorf("%w: its Lease %s/%s was renewed at %s, after %s when the failover was taken over",
			ErrNodeRenewed, corev1.NamespaceNodeLease, n.Name, formatTime(cur.RenewTime), formatTime(base.RenewTime))
	case !fc.Confirmed.IsZero() && cur.RenewTime.After(fc.Confirmed):
		// A renewal stamped after the confirmation by the node's own clock.
		// This compares two machines' clocks, but it can only refuse more,
		// never allow more: a node clock that runs ahead may hold stateful
		// pods back until a person acts, and one that runs behind leaves the
		// check above to catch the renewal.
		return fmt.Errorf("%w: its Lease %s/%s says renewed at %s, after the confirmation at %s",
			ErrNodeRenewed, corev1.NamespaceNodeLease, n.Name, formatTime(cur.RenewTime), formatTime(fc.Confirmed))
	}
	return nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
