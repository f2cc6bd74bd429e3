package coordinator

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/record"
)

// statefulPod is a pod of the StatefulSet db on nodeName: it leaves a dead
// node only once the node is fenced.
func statefulPod(name, nodeName string) *corev1.Pod {
	return pod(name, nodeName, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: ptr.To(true)})
}

// failedNode is a Node as the first phases of a failover leave it:
// cordoned, Ready=Unknown.
func failedNode(name string) *corev1.Node {
	n := node(name)
	n.Spec.Unschedulable = true
	n.Status.Conditions[0].Status = corev1.ConditionUnknown
	return n
}

// nodeLease is the kubelet Lease of node, last renewed at renewed.
func nodeLease(node string, renewed time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: corev1.NamespaceNodeLease, ResourceVersion: "1"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node), RenewTime: ptr.To(metav1.NewMicroTime(renewed))},
	}
}

// renewLease does what a kubelet that reaches the API server does every
// 10 s: it writes a new renewTime, by its own clock.
func (tc *testCoordinator) renewLease(t *testing.T, node string, at time.Time) {
	t.Helper()
	leases := tc.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	l, err := leases.Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv, _ := strconv.Atoi(l.ResourceVersion)
	l.ResourceVersion = strconv.Itoa(rv + 1)
	l.Spec.RenewTime = ptr.To(metav1.NewMicroTime(at))
	if _, err := leases.Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// addRecord writes to the API a record of node in phase, as another
// coordinator would have, confirmed at confirmed by that coordinator's clock.
func (tc *testCoordinator) addRecord(t *testing.T, node string, phase record.Phase, confirmed time.Time) *record.NodeFailover {
	t.Helper()
	f, err := record.NewNodeFailover(node, "confirmed dead by an earlier coordinator", false, confirmed)
	if err != nil {
		t.Fatal(err)
	}
	f.Spec.Cause = record.CauseDead
	f.Status.LastHeard = record.At(confirmed.Add(-2 * time.Second))
	f.Status.Confirmed = record.At(confirmed)
	if err := f.Status.Advance(phase); err != nil {
		t.Fatal(err)
	}
	if err := tc.store.Create(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	return f
}

func (tc *testCoordinator) getNode(t *testing.T, name string) *corev1.Node {
	t.Helper()
	n, err := tc.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (tc *testCoordinator) podExists(name string) bool {
	_, err := tc.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	return err == nil
}

func outOfService(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeOutOfService {
			return true
		}
	}
	return false
}

// TestCoordinator_fenceBoundIsTimedFromTakeover: a record confirmed an hour
// ago by its writer's clock (a successor's clock an hour ahead looks the
// same) is loaded by a fresh coordinator. The fence bound runs on the
// successor's own clock from the takeover: nothing is fenced or deleted
// before it has passed, and both happen once it has.
func TestCoordinator_fenceBoundIsTimedFromTakeover(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.FenceBound = 30 * time.Second
	start := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	confirmed := start.Add(-time.Hour)
	tc := newTestCoordinator(t, cfg, []string{"n1", "n2", "n3"}, node("n1"), node("n2"), failedNode("n3"),
		statefulPod("db-0", "n3"), nodeLease("n3", confirmed.Add(-5*time.Second)))
	tc.gossip.set("n3", gossip.StateDead)
	tc.addRecord(t, "n3", record.PhaseAwaitingFence, confirmed)
	if err := tc.load(ctx); err != nil {
		t.Fatal(err)
	}
	tc.steps(4 * 29)
	if n := tc.getNode(t, "n3"); outOfService(n) || !tc.podExists("db-0") {
		t.Fatalf("29 s after takeover: out-of-service %v, pod there %v; want neither fenced nor deleted before the 30 s bound", outOfService(n), tc.podExists("db-0"))
	}
	tc.steps(8)
	if n := tc.getNode(t, "n3"); !outOfService(n) || tc.podExists("db-0") {
		t.Fatalf("31 s after takeover: out-of-service %v, pod there %v; want the node fenced and the pod deleted", outOfService(n), tc.podExists("db-0"))
	}
	if evs := tc.events.about("Pod", "db-0"); len(evs) != 1 || evs[0].reason != evict.ReasonForceDeleted || !strings.Contains(evs[0].message, "node n3") {
		t.Errorf("Events on the force-deleted pod = %+v, want one %s naming n3", evs, evict.ReasonForceDeleted)
	}
}

// TestCoordinator_renewedNodeLeaseHoldsTheFence: the node's agent is cut
// off from its peers, so a quorum confirms it dead, but its kubelet still
// reaches the API server and renews its Lease. Its Ready condition says
// Unknown only because haagent set it. The record waits in AwaitingFence
// past the bound, with no out-of-service taint and its stateful pod kept.
func TestCoordinator_renewedNodeLeaseHoldsTheFence(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FenceBound = 30 * time.Second
	start := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	tc := newTestCoordinator(t, cfg, []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"),
		statefulPod("db-0", "n3"), nodeLease("n3", start.Add(-4*time.Second)))
	tc.gossip.set("n3", gossip.StateDead)
	tc.voteDead("n3", "n1", "n2")
	tc.steps(1)
	f := tc.active["n3"]
	if f == nil || f.Status.Phase != record.PhaseAwaitingFence {
		t.Fatalf("record = %+v, want AwaitingFence", f)
	}
	tc.renewLease(t, "n3", tc.clock.Now())
	tc.steps(4 * 40)
	n := tc.getNode(t, "n3")
	if f.Status.Phase != record.PhaseAwaitingFence || outOfService(n) || !tc.podExists("db-0") {
		t.Fatalf("after a Lease renewal: phase %s (%s), out-of-service %v, pod there %v; want AwaitingFence, no taint, the pod kept",
			f.Status.Phase, f.Status.Message, outOfService(n), tc.podExists("db-0"))
	}
	if f.Status.Message != msgNodeRenewed {
		t.Errorf("message = %q, want %q", f.Status.Message, msgNodeRenewed)
	}
	if got := testutil.ToFloat64(tc.refusedFences.WithLabelValues(fenceRefusedRenewed)); got != 1 {
		t.Errorf("haagent_failover_fence_refused_total{reason=node_renewed} = %v, want 1 (once per spell)", got)
	}
	if got := reasons(tc.events.about(record.Kind, f.Name)); !slices.Equal(got, []string{"Normal Confirmed", "Normal Cordoned",
		"Normal Tainted", "Normal PodsNotReady", "Normal AwaitingFence", "Warning " + ReasonFenceRefused}) {
		t.Errorf("Events on the record = %v, want the phases and one %s", got, ReasonFenceRefused)
	}
	// The node's agent is heard from again: the record moves on, and the
	// pod stays with its node.
	tc.gossip.set("n3", gossip.StateAlive)
	tc.steps(1)
	if f.Status.Phase != record.PhaseRecovered || !tc.podExists("db-0") {
		t.Errorf("node back: phase %s (%s), pod there %v; want Recovered, the pod kept", f.Status.Phase, f.Status.Message, tc.podExists("db-0"))
	}
}

// TestCoordinator_staleQueuedRecordIsDroppedWithTheLease: the create of a
// record fails (the API server answers 503) and is queued; the agent loses
// the Lease; days later the node is healthy and the agent leads again. The
// stale queued record must not come back: nothing is done to the node,
// neither in the first term (the record was never in the API) nor later.
func TestCoordinator_staleQueuedRecordIsDroppedWithTheLease(t *testing.T) {
	ctx := context.Background()
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"))
	var down atomic.Bool
	down.Store(true)
	tc.dyn.PrependReactor("create", record.Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
		}
		return false, nil, nil
	})
	tc.gossip.set("n3", gossip.StateDead)
	tc.voteDead("n3", "n1", "n2")
	tc.steps(4)
	if tc.store.Pending() != 1 {
		t.Fatalf("pending writes = %d, want the create queued", tc.store.Pending())
	}
	lost, cancel := context.WithCancel(ctx)
	cancel()
	tc.lead(lost)
	if tc.store.Pending() != 0 {
		t.Fatalf("pending writes = %d after the Lease was lost, want none", tc.store.Pending())
	}

	tc.clock.Step(72 * time.Hour)
	tc.gossip.set("n3", gossip.StateAlive)
	down.Store(false)
	if err := tc.load(ctx); err != nil {
		t.Fatal(err)
	}
	tc.steps(8)
	n3 := tc.getNode(t, "n3")
	if n3.Spec.Unschedulable || len(n3.Spec.Taints) != 0 || nodeReady(n3) != corev1.ConditionTrue {
		t.Errorf("healthy n3: unschedulable=%v taints=%v ready=%s; want it untouched", n3.Spec.Unschedulable, n3.Spec.Taints, nodeReady(n3))
	}
	for _, a := range tc.client.Actions() {
		if a.GetResource().Resource == "nodes" && a.GetVerb() != "get" && a.GetVerb() != "list" {
			t.Errorf("wrote to n3: %s %s/%s", a.GetVerb(), a.GetResource().Resource, a.GetSubresource())
		}
	}
	if len(tc.active) != 0 {
		t.Errorf("active failovers %v, want none", tc.active)
	}
}

// TestCoordinator_nodeBackBeforeFailoverAborts: a failover stops halfway
// (node status writes fail after the cordon), and the node is back on gossip
// before the next pass. The failover ends Aborted, what haagent added is
// handed back, and the record is kept.
func TestCoordinator_nodeBackBeforeFailoverAborts(t *testing.T) {
	ctx := context.Background()
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"))
	var broken atomic.Bool
	broken.Store(true)
	tc.client.PrependReactor("patch", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if broken.Load() && a.GetSubresource() == "status" {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	tc.gossip.set("n3", gossip.StateDead)
	tc.voteDead("n3", "n1", "n2")
	tc.steps(1)
	f := tc.active["n3"]
	if f == nil || f.Status.Phase != record.PhaseCordoned || !tc.getNode(t, "n3").Spec.Unschedulable {
		t.Fatalf("record = %+v, want Cordoned", f)
	}
	tc.gossip.set("n3", gossip.StateAlive)
	broken.Store(false)
	tc.steps(3)
	n3 := tc.getNode(t, "n3")
	if n3.Spec.Unschedulable || len(n3.Spec.Taints) != 0 || nodeReady(n3) != corev1.ConditionTrue || len(n3.Annotations) != 0 {
		t.Errorf("n3 back: unschedulable=%v taints=%v ready=%s annotations=%v; want it as it was", n3.Spec.Unschedulable, n3.Spec.Taints, nodeReady(n3), n3.Annotations)
	}
	if tc.active["n3"] != nil {
		t.Errorf("record still active: %s (%s)", f.Status.Phase, f.Status.Message)
	}
	all, err := tc.store.ListAll(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("records = %d, %v; want the one, kept", len(all), err)
	}
	if st := all[0].Status; st.Phase != record.PhaseAborted || st.Outcome != record.OutcomeAborted ||
		!strings.Contains(st.Message, "came back") || st.NodeReturned == nil || st.Cordoned == nil || all[0].Labels[record.LabelActive] != "" {
		t.Errorf("record = phase %s outcome %s message %q returned %v cordoned %v labels %v; want it Aborted and kept",
			st.Phase, st.Outcome, st.Message, st.NodeReturned, st.Cordoned, all[0].Labels)
	}
	if got := testutil.ToFloat64(tc.metrics.failovers.WithLabelValues(string(record.OutcomeAborted))); got != 1 {
		t.Errorf("haagent_failover_total{outcome=aborted} = %v, want 1", got)
	}
	tc.steps(4)
	if len(tc.active) != 0 {
		t.Errorf("a failover of the live node started again: %v", tc.active)
	}
}

// TestCoordinator_abortBeforeEachAction: whatever phase before the fence a
// record resumed from the API is in, a node alive on gossip ends it Aborted
// before any further action. Nothing haagent did not add is removed.
func TestCoordinator_abortBeforeEachAction(t *testing.T) {
	for _, phase := range []record.Phase{record.PhaseConfirmed, record.PhaseCordoned, record.PhaseTainted, record.PhasePodsNotReady, record.PhaseEvicting} {
		t.Run(string(phase), func(t *testing.T) {
			ctx := context.Background()
			n3 := node("n3")
			n3.Spec.Unschedulable = true // by a person, before the failover
			tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), n3,
				pod("web-a", "n3", metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", Controller: ptr.To(true)}))
			tc.addRecord(t, "n3", phase, tc.clock.Now().Add(-time.Hour))
			if err := tc.load(ctx); err != nil {
				t.Fatal(err)
			}
			writes := len(tc.client.Actions())
			tc.steps(1)
			for _, a := range tc.client.Actions()[writes:] {
				if v := a.GetVerb(); v != "get" && v != "list" {
					t.Errorf("acted on a live node: %s %s/%s", v, a.GetResource().Resource, a.GetSubresource())
				}
			}
			if n := tc.getNode(t, "n3"); !n.Spec.Unschedulable {
				t.Error("uncordoned a node that a person had cordoned")
			}
			all, err := tc.store.ListAll(ctx)
			if err != nil || len(all) != 1 || all[0].Status.Phase != record.PhaseAborted {
				t.Fatalf("records = %+v, %v; want the one, Aborted", all, err)
			}
		})
	}
}

// TestCoordinator_adoptsAnActiveRecordOfTheNode: another coordinator wrote
// a record of n3 after this one loaded the records (two agents may both
// believe they hold the Lease for a moment). When this one confirms n3 dead
// it carries that record on instead of creating a second active one.
func TestCoordinator_adoptsAnActiveRecordOfTheNode(t *testing.T) {
	ctx := context.Background()
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"))
	other := tc.addRecord(t, "n3", record.PhaseConfirmed, tc.clock.Now().Add(-10*time.Second))
	tc.gossip.set("n3", gossip.StateDead)
	tc.voteDead("n3", "n1", "n2")
	tc.steps(2)
	all, err := tc.store.ListAll(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("records = %d, %v; want only the one already there", len(all), err)
	}
	if f := tc.active["n3"]; f == nil || f.Name != other.Name || f.Status.Phase == record.PhaseConfirmed {
		t.Fatalf("active record = %+v, want %s adopted and carried on", f, other.Name)
	}
	if !tc.getNode(t, "n3").Spec.Unschedulable {
		t.Error("the adopted failover did not cordon n3")
	}
}
