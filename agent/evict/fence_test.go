package evict

import (
	"errors"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

func kubeletLease(node, rv string, renewed time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: corev1.NamespaceNodeLease, ResourceVersion: rv},
		Spec:       coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: renewed}},
	}
}

// TestFenceGuards_refuseARenewedNode: the node's Ready condition is Unknown
// (haagent set it), but its kubelet is alive enough to renew its Lease.
// Neither the out-of-service taint nor a force delete may go ahead.
func TestFenceGuards_refuseARenewedNode(t *testing.T) {
	confirmed := testNow.Add(-time.Minute)
	taken := kubeletLease("n1", "7", confirmed.Add(-5*time.Second))
	fc := FenceCheck{Lease: NodeLease{Found: true, ResourceVersion: "7", RenewTime: taken.Spec.RenewTime.Time}, Confirmed: confirmed}
	oos := withTaint(corev1.TaintNodeOutOfService, corev1.TaintEffectNoExecute)
	tests := []struct {
		name  string
		lease *coordinationv1.Lease
		fc    FenceCheck
		want  error
	}{
		{name: "unchanged since taken over", lease: taken, fc: fc},
		{name: "no Lease at all", fc: FenceCheck{Confirmed: confirmed}},
		{name: "Lease gone since", fc: fc},
		{name: "renewed since taken over", lease: kubeletLease("n1", "8", confirmed.Add(30*time.Second)), fc: fc, want: ErrNodeRenewed},
		{
			// The RV check alone catches it, whatever the node's clock says.
			name:  "renewed, node clock far behind",
			lease: kubeletLease("n1", "8", confirmed.Add(-time.Hour)), fc: fc, want: ErrNodeRenewed,
		},
		{
			// Taken over late, after the renewal: only the node's own
			// timestamp tells.
			name:  "renewed after confirmation, before the takeover",
			lease: kubeletLease("n1", "8", confirmed.Add(time.Second)),
			fc:    FenceCheck{Lease: NodeLease{Found: true, ResourceVersion: "8", RenewTime: confirmed.Add(time.Second)}, Confirmed: confirmed},
			want:  ErrNodeRenewed,
		},
		{name: "appeared since taken over", lease: taken, fc: FenceCheck{Confirmed: confirmed}, want: ErrNodeRenewed},
		{
			name:  "other write, same renewTime",
			lease: kubeletLease("n1", "9", taken.Spec.RenewTime.Time), fc: fc,
		},
	}
	for _, tc := range tests {
		objs := func(extra ...runtime.Object) []runtime.Object {
			if tc.lease != nil {
				extra = append(extra, tc.lease.DeepCopy())
			}
			return extra
		}
		t.Run(tc.name+"/out-of-service", func(t *testing.T) {
			h := newHarness(t, DefaultConfig(), objs(newNode("n1", corev1.ConditionUnknown))...)
			_, err := h.e.ApplyOutOfService(ctx, "n1", tc.fc)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("ApplyOutOfService = %v, want %v", err, tc.want)
			}
			if tc.want != nil && len(h.writes()) != 0 {
				t.Errorf("wrote %d times to a node whose kubelet renewed its Lease", len(h.writes()))
			}
			if tc.want == nil && !hasTaint(h.node(t, "n1"), outOfServiceTaint) {
				t.Errorf("taints = %v, want out-of-service", taintIDs(h.node(t, "n1")))
			}
		})
		t.Run(tc.name+"/force delete", func(t *testing.T) {
			h := newHarness(t, DefaultConfig(), objs(newNode("n1", corev1.ConditionUnknown, oos),
				newPod("db", "pg-0", "n1", ownedBy("apps/v1", "StatefulSet", "pg")))...)
			_, err := h.e.ForceDeletePods(ctx, "n1", []PodRef{{Namespace: "db", Name: "pg-0", UID: "uid-db-pg-0"}}, tc.fc)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("ForceDeletePods = %v, want %v", err, tc.want)
			}
			if deleted := len(h.deletes()) > 0; deleted != (tc.want == nil) {
				t.Errorf("deleted = %v, want %v", deleted, tc.want == nil)
			}
		})
	}
}

// TestFenceGuards_unreadableLeaseRefuses: a Lease that cannot be read is no
// evidence that the node is fenced; the action fails, to be retried.
func TestFenceGuards_unreadableLeaseRefuses(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown, withTaint(corev1.TaintNodeOutOfService, corev1.TaintEffectNoExecute)),
		newPod("db", "pg-0", "n1", ownedBy("apps/v1", "StatefulSet", "pg")))
	h.cs.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
	})
	_, err := h.e.ApplyOutOfService(ctx, "n1", FenceCheck{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || !strings.Contains(err.Error(), "kube-node-lease/n1") {
		t.Errorf("ApplyOutOfService = %v, want an *APIError about the Lease", err)
	}
	if _, err := h.e.ForceDeletePods(ctx, "n1", []PodRef{{Namespace: "db", Name: "pg-0", UID: "uid-db-pg-0"}}, FenceCheck{}); !errors.As(err, &apiErr) {
		t.Errorf("ForceDeletePods = %v, want an *APIError", err)
	}
	if len(h.writes()) != 0 {
		t.Errorf("%d writes with the Lease unreadable", len(h.writes()))
	}
	if _, err := h.e.NodeLease(ctx, "n1"); !errors.As(err, &apiErr) || apiErr.Action != ActionNodeLease {
		t.Errorf("NodeLease = %v, want an *APIError of %s", err, ActionNodeLease)
	}
}

func TestNodeLease(t *testing.T) {
	renewed := testNow.Add(-3 * time.Second)
	h := newHarness(t, DefaultConfig(), kubeletLease("n1", "42", renewed))
	got, err := h.e.NodeLease(ctx, "n1")
	if err != nil || got != (NodeLease{Found: true, ResourceVersion: "42", RenewTime: got.RenewTime}) || !got.RenewTime.Equal(renewed) {
		t.Errorf("NodeLease(n1) = %+v, %v", got, err)
	}
	if got, err := h.e.NodeLease(ctx, "n2"); err != nil || got.Found {
		t.Errorf("NodeLease(n2) = %+v, %v; want not found, no error", got, err)
	}
}
