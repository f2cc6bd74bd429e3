package coordinator

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/record"
)

// recoveryCheck is how often a recovering failover counts its workloads'
// ready replicas. Each count reads every affected owner and lists its
// pods, so at the tick's pace a failover of a node with 10 workloads
// would cost the API server about 80 requests a second. Pods are listed
// per owner rather than watched: a watch of every Pod in the cluster
// would cost the coordinator a full list of them at each takeover.
const recoveryCheck = 500 * time.Millisecond

// recoveryCheckDue reports whether node's workloads are due to be counted
// again, and if so notes that they are.
func (c *Coordinator) recoveryCheckDue(node string) bool {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.paceOf(node)
	if !p.recoveryChecked.IsZero() && now.Sub(p.recoveryChecked) < recoveryCheck {
		return false
	}
	p.recoveryChecked = now
	return true
}

// recoveringSince returns when this term first found node's record in
// Recovering (when it took the record over, or later when the record got
// there), on this agent's clock.
func (c *Coordinator) recoveringSince(node string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taken == nil {
		c.taken = map[string]takeover{}
	}
	tk, ok := c.taken[node]
	if !ok {
		tk.at = c.clock.Now()
	}
	if tk.recovering.IsZero() {
		tk.recovering = c.clock.Now()
	}
	c.taken[node] = tk
	return tk.recovering
}

// memberReady reports whether the member's own checks pass.
func memberReady(members []failover.Member, name string) bool {
	for _, m := range members {
		if m.Name == name {
			return m.NotReadySince.IsZero()
		}
	}
	return false
}

func memberState(members []failover.Member, name string) failover.State {
	for _, m := range members {
		if m.Name == name {
			return m.State
		}
	}
	return failover.StateLeft
}

func countPods(st *record.NodeFailoverStatus, res evict.PodsResult) {
	p := &st.Pods
	p.Total = int32(len(res.Pods) - res.Count(evict.PodSkipped))
	p.Evicted = int32(res.Count(evict.PodEvicted))
	p.PDBBlocked = int32(res.Count(evict.PodPDBBlocked))
	p.FencedOnly = int32(len(res.FencedOnly()))
	p.Gone = int32(res.Count(evict.PodGone))
	p.Failed = int32(res.Count(evict.PodFailed))
}

// affectedOwners lists the workloads with pods on the node: Deployments
// (through their ReplicaSets), bare ReplicaSets and StatefulSets, with the
// replicas they want.
func (c *Coordinator) affectedOwners(ctx context.Context, node string) ([]record.AffectedOwner, error) {
	pods, err := c.d.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", node, err)
	}
	seen := map[record.AffectedOwner]bool{}
	var out []record.AffectedOwner
	apps := c.d.Client.AppsV1()
	for _, p := range pods.Items {
		ref := metav1.GetControllerOf(&p)
		if ref == nil {
			continue
		}
		o := record.AffectedOwner{Kind: ref.Kind, Namespace: p.Namespace, Name: ref.Name}
		switch ref.Kind {
		case "ReplicaSet":
			rs, err := apps.ReplicaSets(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			o.DesiredReplicas = replicas(rs.Spec.Replicas)
			if d := metav1.GetControllerOf(rs); d != nil && d.Kind == "Deployment" {
				dep, err := apps.Deployments(p.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				o = record.AffectedOwner{Kind: "Deployment", Namespace: p.Namespace, Name: d.Name, DesiredReplicas: replicas(dep.Spec.Replicas)}
			}
		case "StatefulSet":
			ss, err := apps.StatefulSets(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			o.DesiredReplicas = replicas(ss.Spec.Replicas)
		default:
			continue // DaemonSets stay with their node; Jobs are not replicas
		}
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out, nil
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// shortfall is an affected owner with fewer pods ready elsewhere than it
// wants.
type shortfall struct {
	owner       record.AffectedOwner
	ready, want int32
	// onNode are its pods still bound to the failed node.
	onNode []string
}

// shortOwners returns the owners that are not back: with fewer pods
// running and ready on other nodes, not terminating, than the smaller of
// the replicas they wanted when the node failed and those they want now.
// An owner scaled down since wants fewer, one scaled to 0 or deleted none.
func (c *Coordinator) shortOwners(ctx context.Context, node string, owners []record.AffectedOwner) ([]shortfall, error) {
	var out []shortfall
	for _, o := range owners {
		sel, wantNow, err := c.ownerNow(ctx, o)
		if err != nil {
			return nil, err
		}
		if sel == nil {
			continue // the owner is gone: nothing left to recover
		}
		s := shortfall{owner: o, want: min(o.DesiredReplicas, wantNow)}
		if s.want <= 0 {
			continue
		}
		pods, err := c.d.Client.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, err
		}
		for _, p := range pods.Items {
			switch {
			case p.Spec.NodeName == node && p.DeletionTimestamp != nil:
				s.onNode = append(s.onNode, p.Namespace+"/"+p.Name+" (terminating)")
			case p.Spec.NodeName == node:
				s.onNode = append(s.onNode, p.Namespace+"/"+p.Name)
			case p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(&p):
				s.ready++
			}
		}
		if s.ready < s.want {
			out = append(out, s)
		}
	}
	return out, nil
}

// recoveryTimedOut says which owners are still short after the timeout,
// and which of their pods are still bound to the node (a stateful pod
// awaiting the fence, typically).
func recoveryTimedOut(short []shortfall, after time.Duration) string {
	parts := make([]string, 0, len(short))
	var stuck []string
	for _, s := range short {
		parts = append(parts, fmt.Sprintf("%s %s/%s: %d of %d ready elsewhere", s.owner.Kind, s.owner.Namespace, s.owner.Name, s.ready, s.want))
		stuck = append(stuck, s.onNode...)
	}
	msg := fmt.Sprintf("workloads not back: %s after %s", strings.Join(parts, "; "), after)
	if len(stuck) > 0 {
		msg += "; still bound to the node: " + strings.Join(stuck, ", ")
	}
	return truncate(msg, 512)
}

// ownerNow returns the owner's pod selector and the replicas it wants now,
// or a nil selector when it is gone or of a kind that is not recovered.
func (c *Coordinator) ownerNow(ctx context.Context, o record.AffectedOwner) (labels.Selector, int32, error) {
	apps := c.d.Client.AppsV1()
	var ls *metav1.LabelSelector
	var want *int32
	switch o.Kind {
	case "Deployment":
		d, err := apps.Deployments(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return nil, 0, ignoreNotFound(err)
		}
		ls, want = d.Spec.Selector, d.Spec.Replicas
	case "ReplicaSet":
		rs, err := apps.ReplicaSets(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return nil, 0, ignoreNotFound(err)
		}
		ls, want = rs.Spec.Selector, rs.Spec.Replicas
	case "StatefulSet":
		ss, err := apps.StatefulSets(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return nil, 0, ignoreNotFound(err)
		}
		ls, want = ss.Spec.Selector, ss.Spec.Replicas
	default:
		return nil, 0, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	return sel, replicas(want), err
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
