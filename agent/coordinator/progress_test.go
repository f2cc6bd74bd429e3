package coordinator

import (
	"context"
	"errors"
	"flag"
	"io"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/record"
)

// statefulSet is the StatefulSet db that statefulPod's pods belong to.
func statefulSet(replicas int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
}

// deployment is the Deployment web, selecting the pods of pod().
func deployment(replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
}

var rsRef = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", Controller: ptr.To(true)}

// addRecovering writes a dead node's record that another coordinator left
// in Recovering, waiting for owners.
func (tc *testCoordinator) addRecovering(t *testing.T, node string, confirmed time.Time, owners ...record.AffectedOwner) {
	t.Helper()
	f, err := record.NewNodeFailover(node, "confirmed dead by an earlier coordinator", false, confirmed)
	if err != nil {
		t.Fatal(err)
	}
	f.Spec.Cause = record.CauseDead
	f.Status.LastHeard = record.At(confirmed.Add(-2 * time.Second))
	f.Status.Confirmed = record.At(confirmed)
	f.Status.AffectedOwners = owners
	if err := f.Status.Advance(record.PhaseRecovering); err != nil {
		t.Fatal(err)
	}
	if err := tc.store.Create(context.Background(), f); err != nil {
		t.Fatal(err)
	}
}

// count returns how many requests the fake API received with this verb,
// resource and subresource.
func (tc *testCoordinator) count(verb, resource, subresource string) int {
	n := 0
	for _, a := range tc.client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource && a.GetSubresource() == subresource {
			n++
		}
	}
	return n
}

// record returns the node's only record as the API holds it.
func (tc *testCoordinator) record(t *testing.T, node string) record.NodeFailover {
	t.Helper()
	all, err := tc.store.ListAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []record.NodeFailover
	for _, f := range all {
		if f.Spec.Node == node {
			out = append(out, f)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%d records of %s, want 1", len(out), node)
	}
	return out[0]
}

// TestCoordinator_awaitingFenceRechecksItsPods: with --fence-bound 0 the
// stateful pods of a dead node wait for the node or a person. Once a person
// has force-deleted them, the record moves on to Recovering instead of
// waiting for ever; it looks every 10 s, not every tick.
func TestCoordinator_awaitingFenceRechecksItsPods(t *testing.T) {
	ctx := context.Background()
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"),
		statefulSet(1), statefulPod("db-0", "n3"))
	tc.gossip.set("n3", gossip.StateDead)
	tc.voteDead("n3", "n1", "n2")
	tc.steps(4)
	f := tc.active["n3"]
	if f == nil || f.Status.Phase != record.PhaseAwaitingFence {
		t.Fatalf("record = %+v, want AwaitingFence", f)
	}
	lists := tc.count("list", "pods", "")
	tc.steps(4 * 30)
	if f.Status.Phase != record.PhaseAwaitingFence {
		t.Fatalf("phase = %s (%s) with the pod still there, want AwaitingFence", f.Status.Phase, f.Status.Message)
	}
	if got := tc.count("list", "pods", "") - lists; got > 4 {
		t.Errorf("%d pod lists in 30 s of waiting, want at most 4 (one per 10 s)", got)
	}
	if err := tc.client.CoreV1().Pods("default").Delete(ctx, "db-0", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	tc.steps(4 * 11)
	if f.Status.Phase != record.PhaseRecovering || !strings.Contains(f.Status.Message, "no stateful pods left") {
		t.Fatalf("11 s after the pod was force-deleted: phase %s (%s), want Recovering, saying why", f.Status.Phase, f.Status.Message)
	}
}

// TestCoordinator_deletedNodeAwaitingFenceRecovers: a Node deleted while its
// stateful pods wait for the fence is no failure: Kubernetes deletes the
// pods of a Node that no longer exists, so the record moves on to
// Recovering, with or without a fence bound. Deleted before its pods were
// evicted, the failover still ends Failed: haagent did not move them.
func TestCoordinator_deletedNodeAwaitingFenceRecovers(t *testing.T) {
	ctx := context.Background()
	for _, bound := range []time.Duration{0, 30 * time.Second} {
		t.Run("fence-bound="+bound.String(), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.FenceBound = bound
			tc := newTestCoordinator(t, cfg, []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"),
				statefulSet(1), statefulPod("db-0", "n3"), nodeLease("n3", tc0.Add(-4*time.Second)))
			tc.gossip.set("n3", gossip.StateDead)
			tc.voteDead("n3", "n1", "n2")
			tc.steps(4)
			f := tc.active["n3"]
			if f == nil || f.Status.Phase != record.PhaseAwaitingFence {
				t.Fatalf("record = %+v, want AwaitingFence", f)
			}
			if err := tc.client.CoreV1().Nodes().Delete(ctx, "n3", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			tc.steps(4 * 40)
			st := tc.record(t, "n3").Status
			if st.Phase != record.PhaseRecovering || !strings.Contains(st.Message, "deleted") {
				t.Fatalf("record = phase %s outcome %s (%s), want Recovering, saying the Node was deleted", st.Phase, st.Outcome, st.Message)
			}
			if got := testutil.ToFloat64(tc.metrics.failovers.WithLabelValues(string(record.OutcomeFailed))); got != 0 {
				t.Errorf("haagent_failover_total{outcome=failed} = %v, want 0", got)
			}
		})
	}
	t.Run("before the evictions", func(t *testing.T) {
		tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), failedNode("n3"),
			pod("web-a", "n3", rsRef))
		tc.gossip.set("n3", gossip.StateDead)
		tc.addRecord(t, "n3", record.PhasePodsNotReady, tc.clock.Now().Add(-time.Minute))
		if err := tc.client.CoreV1().Nodes().Delete(ctx, "n3", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := tc.load(ctx); err != nil {
			t.Fatal(err)
		}
		tc.steps(2)
		if st := tc.record(t, "n3").Status; st.Phase != record.PhaseFailed || !strings.Contains(st.Message, "the Node was deleted") {
			t.Fatalf("record = phase %s (%s), want Failed: the Node was deleted", st.Phase, st.Message)
		}
	})
}

// tc0 is the start time of every testCoordinator's clock.
var tc0 = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

// TestCoordinator_recoveredAgainstCurrentReplicas: an owner scaled down
// since the failover (or to 0) is recovered once it has the replicas it
// wants now, not those it wanted when the node died.
func TestCoordinator_recoveredAgainstCurrentReplicas(t *testing.T) {
	ctx := context.Background()
	web := record.AffectedOwner{Kind: "Deployment", Namespace: "default", Name: "web", DesiredReplicas: 3}
	for _, tt := range []struct {
		name     string
		replicas int32
		pods     []runtime.Object
	}{
		{"scaled to 1", 1, []runtime.Object{pod("web-b", "n2", rsRef)}},
		{"scaled to 0", 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs := append([]runtime.Object{node("n1"), node("n2"), failedNode("n3"), deployment(tt.replicas)}, tt.pods...)
			tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, objs...)
			tc.gossip.set("n3", gossip.StateDead)
			tc.addRecovering(t, "n3", tc.clock.Now().Add(-time.Minute), web)
			if err := tc.load(ctx); err != nil {
				t.Fatal(err)
			}
			tc.steps(2)
			if st := tc.record(t, "n3").Status; st.Phase != record.PhaseRecovered {
				t.Fatalf("phase = %s (%s), want Recovered", st.Phase, st.Message)
			}
		})
	}
}

// TestCoordinator_recoveryTimesOut: a record whose workloads do not come
// back ends Failed after --recovery-timeout (30m), counted on this
// coordinator's clock from when it took the record over (the record was
// confirmed two hours earlier by another coordinator's clock), naming the
// owners that are short. The record is kept.
// recoveringStatefulN3 is a coordinator that took over a failover of dead
// node n3 from its record: confirmed two hours earlier by another
// coordinator's clock, recovering StatefulSet db (1 replica, pod db-0
// still on n3).
func recoveringStatefulN3(ctx context.Context, t *testing.T) *testCoordinator {
	t.Helper()
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), failedNode("n3"),
		statefulSet(1), statefulPod("db-0", "n3"))
	tc.gossip.set("n3", gossip.StateDead)
	tc.addRecovering(t, "n3", tc.clock.Now().Add(-2*time.Hour),
		record.AffectedOwner{Kind: "StatefulSet", Namespace: "default", Name: "db", DesiredReplicas: 1})
	if err := tc.load(ctx); err != nil {
		t.Fatal(err)
	}
	return tc
}

func TestCoordinator_recoveryTimesOut(t *testing.T) {
	ctx := context.Background()
	tc := recoveringStatefulN3(ctx, t)
	for i := 0; i < 4*29*60; i++ { // 29 minutes
		tc.clock.Step(250 * time.Millisecond)
		tc.step(ctx)
	}
	if st := tc.record(t, "n3").Status; st.Phase != record.PhaseRecovering {
		t.Fatalf("after 29m: phase %s (%s), want still Recovering", st.Phase, st.Message)
	}
	tc.steps(4 * 61)
	st := tc.record(t, "n3").Status
	if st.Phase != record.PhaseFailed || st.Outcome != record.OutcomeFailed {
		t.Fatalf("after 30m: phase %s outcome %s (%s), want Failed", st.Phase, st.Outcome, st.Message)
	}
	for _, want := range []string{"StatefulSet default/db: 0 of 1 ready elsewhere after 30m0s", "still bound to the node: default/db-0"} {
		if !strings.Contains(st.Message, want) {
			t.Errorf("message = %q, want it to say %q", st.Message, want)
		}
	}
	if len(tc.active) != 0 {
		t.Errorf("active = %v, want none", tc.active)
	}
}

// TestConfig_recoveryTimeout: --recovery-timeout is checked against its
// bounds with a message that names the flag.
func TestConfig_recoveryTimeout(t *testing.T) {
	for _, tt := range []struct {
		arg, want string
	}{
		{"30m", ""},
		{"1m", ""},
		{"24h", ""},
		{"59s", "coordinator: --recovery-timeout (59s) must be between 1m0s and 24h0m0s"},
		{"0s", "coordinator: --recovery-timeout (0s) must be between 1m0s and 24h0m0s"},
		{"25h", "coordinator: --recovery-timeout (25h0m0s) must be between 1m0s and 24h0m0s"},
	} {
		t.Run(tt.arg, func(t *testing.T) {
			cfg := DefaultConfig()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg.RegisterFlags(fs)
			if err := fs.Parse([]string{"--recovery-timeout=" + tt.arg}); err != nil {
				t.Fatal(err)
			}
			if got := errString(withFence(cfg).Validate()); got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg := DefaultConfig()
	cfg.RegisterFlags(fs)
	if got := fs.Lookup("recovery-timeout"); got == nil || got.DefValue != "30m0s" {
		t.Errorf("--recovery-timeout default = %v, want 30m0s", got)
	}
}

// TestCoordinator_deadConfirmationSupersedesANotReadyDrain: a node that is
// being drained because it reported itself not ready then dies. The dead
// confirmation takes over: the not-ready record ends, saying why, and a dead
// record starts in the same step, so the node is tainted and its stateful
// pod waits for the fence. The cordon stays on throughout, and the node
// never has two active records.
func TestCoordinator_deadConfirmationSupersedesANotReadyDrain(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Decide.NotReadyAfter = 30 * time.Second
	tc := newTestCoordinator(t, cfg, []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"),
		pod("web-a", "n3", rsRef), statefulPod("db-0", "n3"))
	oneActive := func() {
		t.Helper()
		all, err := tc.store.ListAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range all {
			if f.Active() {
				n++
			}
		}
		if n > 1 {
			t.Fatalf("%d active records of n3", n)
		}
	}
	tc.gossip.setReady("n3", false, "container-runtime: dial unix: no such file")
	for i := 0; i < 4*35; i++ {
		tc.steps(1)
		oneActive()
	}
	drain := tc.active["n3"]
	if drain == nil || drain.Spec.Cause != record.CauseNotReady || !tc.getNode(t, "n3").Spec.Unschedulable {
		t.Fatalf("record = %+v, want a not-ready drain of the cordoned node", drain)
	}
	patches := len(tc.client.Actions())

	tc.gossip.set("n3", gossip.StateDead)
	tc.voteDead("n3", "n1", "n2")
	tc.steps(1)
	oneActive()
	all, err := tc.store.ListAll(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("records = %d, %v; want the drain and the dead failover", len(all), err)
	}
	for _, f := range all {
		switch f.Spec.Cause {
		case record.CauseNotReady:
			if f.Active() || !strings.Contains(f.Status.Message, "superseded: the node was then confirmed dead") {
				t.Errorf("not-ready record: phase %s (%s), want ended as superseded", f.Status.Phase, f.Status.Message)
			}
			if a := f.ToAvailability(); a.Recovered.IsZero() {
				t.Errorf("not-ready record: its outage never ends (%+v); want it to end when superseded", f.Status.Conditions)
			}
		default:
			if !f.Active() || f.Status.Tainted == nil {
				t.Errorf("dead record: phase %s (%s), want active and tainted", f.Status.Phase, f.Status.Message)
			}
		}
	}
	dead := tc.active["n3"]
	if dead == nil || dead.Spec.Cause != record.CauseDead {
		t.Fatalf("active record = %+v, want the dead one", dead)
	}
	n3 := tc.getNode(t, "n3")
	if !n3.Spec.Unschedulable || len(n3.Spec.Taints) != 2 || nodeReady(n3) != corev1.ConditionUnknown {
		t.Errorf("n3: unschedulable=%v taints=%v ready=%s; want the dead node's cordon, taints and Ready=Unknown", n3.Spec.Unschedulable, n3.Spec.Taints, nodeReady(n3))
	}
	for _, a := range tc.client.Actions()[patches:] {
		if p, ok := a.(interface{ GetPatch() []byte }); ok && strings.Contains(string(p.GetPatch()), "unschedulable") {
			t.Errorf("the node's cordon was touched in between: %s", p.GetPatch())
		}
	}
	tc.steps(2)
	if dead.Status.Phase != record.PhaseAwaitingFence || !tc.podExists("db-0") {
		t.Errorf("dead record: phase %s (%s), pod there %v; want its stateful pod to wait for the fence", dead.Status.Phase, dead.Status.Message, tc.podExists("db-0"))
	}
}

// pdbBlocked makes every eviction fail with 429, as a PodDisruptionBudget
// that allows no disruption does, while blocked is set.
func (tc *testCoordinator) pdbBlocked(blocked *atomic.Bool) {
	tc.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "eviction" && blocked.Load() {
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
		}
		return false, nil, nil
	})
}

// TestCoordinator_blockedEvictionBacksOff: an eviction that a PDB refuses is
// retried after 1 s, 2 s, 4 s, ... not on every tick; once the budget
// allows it, the failover goes on at the next retry, and on at once from
// there.
func TestCoordinator_blockedEvictionBacksOff(t *testing.T) {
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"),
		pod("web-a", "n3", rsRef))
	var blocked atomic.Bool
	blocked.Store(true)
	tc.pdbBlocked(&blocked)
	tc.gossip.set("n3", gossip.StateDead)
	tc.voteDead("n3", "n1", "n2")
	tc.steps(40) // 10 s
	f := tc.active["n3"]
	if f == nil || f.Status.Phase != record.PhaseEvicting {
		t.Fatalf("record = %+v, want Evicting", f)
	}
	evictions, lists := tc.count("create", "pods", "eviction"), tc.count("list", "pods", "")
	if evictions < 2 || evictions > 6 {
		t.Errorf("%d eviction requests in 10 s, want between 2 and 6", evictions)
	}
	if lists > 8 {
		t.Errorf("%d pod lists in 10 s, want at most 8", lists)
	}
	if got := testutil.ToFloat64(tc.metrics.retries.WithLabelValues("evicting", retryBlocked)); got < 2 {
		t.Errorf("haagent_failover_step_retries_total{phase=evicting,reason=blocked} = %v, want the blocked retries", got)
	}

	blocked.Store(false)
	start := tc.clock.Now()
	for f.Status.Phase == record.PhaseEvicting && tc.clock.Since(start) < time.Minute {
		tc.steps(1)
	}
	// The backoff had reached 8 s: the next retry is due within it.
	if waited := tc.clock.Since(start); waited > 8*time.Second {
		t.Errorf("the unblocked eviction went through after %s, want within the 8 s backoff", waited)
	}
	if f.Status.Phase != record.PhaseRecovered {
		t.Errorf("phase = %s (%s), want Recovered in the same pass as the eviction", f.Status.Phase, f.Status.Message)
	}
}

// TestCoordinator_failingStepBacksOffAndLogsOnce: a step that keeps failing
// with the same error is retried with backoff and logged once; a different
// error is logged again; the step goes on once the API answers.
func TestCoordinator_failingStepBacksOffAndLogsOnce(t *testing.T) {
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"))
	core, logs := observer.New(zapcore.InfoLevel)
	tc.Coordinator.log = zap.New(core)
	var failure atomic.Value
	failure.Store("connection refused")
	tc.client.PrependReactor("patch", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if msg := failure.Load().(string); msg != "" && a.GetSubresource() == "status" {
			return true, nil, errors.New(msg)
		}
		return false, nil, nil
	})
	tc.gossip.set("n3", gossip.StateDead)
	tc.voteDead("n3", "n1", "n2")
	tc.steps(40)
	f := tc.active["n3"]
	if f == nil || f.Status.Phase != record.PhaseCordoned || !strings.Contains(f.Status.Message, "connection refused") {
		t.Fatalf("record = %+v, want Cordoned with the error", f)
	}
	failed := func() int { return logs.FilterMessage("failover step failed; retrying").Len() }
	if got := failed(); got != 1 {
		t.Errorf("logged the failing step %d times in 10 s, want once", got)
	}
	if got := tc.count("patch", "nodes", "status"); got > 6 {
		t.Errorf("%d node status writes in 10 s, want at most 6", got)
	}
	failure.Store("etcdserver: request timed out")
	tc.steps(4 * 30)
	if got := failed(); got != 2 {
		t.Errorf("logged the failing step %d times after its error changed, want twice", got)
	}
	failure.Store("")
	tc.steps(4 * 31)
	if f.Status.Phase == record.PhaseCordoned {
		t.Errorf("phase = %s (%s) 31 s after the API answered again, want further", f.Status.Phase, f.Status.Message)
	}
}

// TestCoordinator_leadRacesWithNobody: lead's loop reads the active records
// only under the lock, so a concurrent writer (the Lease-loss path) cannot
// race with it. Run with -race.
func TestCoordinator_leadRacesWithNobody(t *testing.T) {
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tc.lead(ctx)
	}()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			tc.stepDown()
			goruntime.Gosched()
		}
	}()
	for i := 0; i < 200; i++ {
		tc.clock.Step(250 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	cancel()
	<-done
}
