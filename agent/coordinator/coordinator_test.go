package coordinator

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	kuberecord "k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/record"
)

type fakeGossip struct {
	// local is this agent's name, "" for n1.
	local   string
	members []gossip.Member
	// unseen are members of the expected group gossip never saw.
	unseen []string
}

func (g *fakeGossip) LocalName() string {
	if g.local == "" {
		return "n1"
	}
	return g.local
}
func (g *fakeGossip) Members() []gossip.Member { return g.members }
func (g *fakeGossip) SeesMajority() bool       { return true }
func (g *fakeGossip) ExpectedNames() []string {
	var out []string
	for _, m := range g.members {
		if m.State != gossip.StateLeft {
			out = append(out, m.Name)
		}
	}
	return append(out, g.unseen...)
}
func (g *fakeGossip) setReady(name string, ready bool, reason string) {
	for i := range g.members {
		if g.members[i].Name == name {
			g.members[i].Meta.Ready, g.members[i].Meta.Reason = ready, reason
		}
	}
}

func (g *fakeGossip) set(name string, s gossip.State) {
	for i := range g.members {
		if g.members[i].Name == name {
			g.members[i].State = s
		}
	}
}

type fakeBallots struct{ b *failover.Ballots }

func (f fakeBallots) WithBallots(fn func(*failover.Ballots)) { fn(f.b) }

func node(name string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
}

func pod(name, nodeName string, owner metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name),
			Labels: map[string]string{"app": "web"}, OwnerReferences: []metav1.OwnerReference{owner}},
		Spec: corev1.PodSpec{NodeName: nodeName},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

// webWorkload is Deployment web with its ReplicaSet web-1, both of the
// given replicas, and the owner reference of the ReplicaSet's pods.
func webWorkload(replicas int32) (*appsv1.Deployment, *appsv1.ReplicaSet, metav1.OwnerReference) {
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(replicas), Selector: deploy.Spec.Selector},
	}
	return deploy, rs, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", Controller: ptr.To(true)}
}

// TestCoordinator_failsOverAndHandsBack drives one failover through every
// step on fake API clients: start on a quorum, cordon, taint, pods not
// ready, eviction, recovery, and the hand-back when the node returns.
func TestCoordinator_failsOverAndHandsBack(t *testing.T) {
	ctx := context.Background()
	deploy, rs, rsRef := webWorkload(2)
	client := fake.NewClientset(leaseHeldBy("n1"), node("n1"), node("n2"), node("n3"), node("n4"), node("n5"), deploy, rs,
		pod("web-a", "n5", rsRef), pod("web-b", "n1", rsRef))

	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{record.GroupVersionResource(): record.ListKind})
	store, err := record.NewStore(record.DefaultConfig(), record.Deps{Client: dyn})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	evictor, err := evict.New(evict.DefaultConfig(), evict.Deps{Client: client, Recorder: kuberecord.NewFakeRecorder(100), Logger: zap.NewNop(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGossip{}
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
		g.members = append(g.members, gossip.Member{Name: n, State: gossip.StateAlive, Meta: gossip.Meta{NodeName: n, StartEpoch: 1, Ready: true}})
	}
	ballots := failover.NewBallots()
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC))
	cfg := DefaultConfig()
	cfg.Stabilization = 10 * time.Second
	notices := &fakeNotices{}
	events := &eventLog{}
	c, err := New(withFence(cfg), Deps{Client: client, Namespace: "haagent", Gossip: g, Ballots: fakeBallots{ballots},
		Notices: notices, Evictor: evictor, Store: store, Clock: clk, Logger: zap.NewNop(), Registerer: reg, Recorder: events})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.load(ctx); err != nil {
		t.Fatal(err)
	}

	// n5 dies: two votes are not a quorum of five.
	g.set("n5", gossip.StateDead)
	lastAck := clk.Now().Add(-1500 * time.Millisecond)
	vote := func(voter string) {
		ballots.Add(failover.Vote{Voter: voter, Target: "n5", Opinion: failover.OpinionDead, VoterEpoch: 1, Seq: uint64(clk.Now().UnixNano()),
			TargetEpoch: 1, LastAck: lastAck, At: clk.Now()}, clk.Now())
	}
	vote("n1")
	vote("n2")
	c.step(ctx)
	if len(c.active) != 0 {
		t.Fatalf("started a failover on 2 of 5 votes")
	}
	if len(notices.nodes) != 0 {
		t.Fatalf("notices %v before any failover started", notices.nodes)
	}
	vote("n3")
	// Each step advances one phase; a handful reach Recovering.
	for i := 0; i < 6; i++ {
		clk.Step(250 * time.Millisecond)
		c.step(ctx)
	}
	f := c.active["n5"]
	if f == nil {
		t.Fatal("no failover started on 3 of 5 votes")
	}
	if f.Status.Phase != record.PhaseRecovering {
		t.Fatalf("phase = %s (%s), want Recovering", f.Status.Phase, f.Status.Message)
	}
	n5, _ := client.CoreV1().Nodes().Get(ctx, "n5", metav1.GetOptions{})
	if !n5.Spec.Unschedulable || len(n5.Spec.Taints) != 2 || nodeReady(n5) != corev1.ConditionUnknown {
		t.Fatalf("n5 after failover: unschedulable=%v taints=%v ready=%s", n5.Spec.Unschedulable, n5.Spec.Taints, nodeReady(n5))
	}
	if f.Status.Pods.Evicted != 1 || len(f.Status.AffectedOwners) != 1 || f.Status.AffectedOwners[0].Name != "web" {
		t.Fatalf("pods %+v owners %+v", f.Status.Pods, f.Status.AffectedOwners)
	}
	if got := f.Status.LastHeard.Time; !got.Equal(lastAck) {
		t.Fatalf("lastHeard = %s, want the voters' last ack %s", got, lastAck)
	}
	// Every pass tells the voters the failover is under way.
	if len(notices.nodes) != 6 || notices.nodes[0] != "n5" {
		t.Fatalf("notices = %v, want n5 on each of the 6 passes since the start", notices.nodes)
	}

	// The replacement becomes ready on n2: recovered.
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod("web-c", "n2", rsRef), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Second)
	c.step(ctx)
	if f.Status.Phase != record.PhaseRecovered || f.Status.TimeToRepair == "" {
		t.Fatalf("phase = %s (%s), repair %q; want Recovered", f.Status.Phase, f.Status.Message, f.Status.TimeToRepair)
	}

	// The node comes back; it is handed back only after 10 s of health.
	g.set("n5", gossip.StateAlive)
	n5.Status.Conditions[0].Status = corev1.ConditionTrue
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n5, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.step(ctx)
	clk.Step(5 * time.Second)
	c.step(ctx)
	if f.Status.Phase != record.PhaseRecovered {
		t.Fatalf("handed back before the stabilization period: %s", f.Status.Phase)
	}
	clk.Step(6 * time.Second)
	c.step(ctx)
	if _, still := c.active["n5"]; still {
		t.Fatalf("failover still active: %s (%s)", f.Status.Phase, f.Status.Message)
	}
	before := len(notices.nodes)
	c.step(ctx)
	if len(notices.nodes) != before {
		t.Fatalf("notices after the hand-back: %v", notices.nodes[before:])
	}
	n5, _ = client.CoreV1().Nodes().Get(ctx, "n5", metav1.GetOptions{})
	if n5.Spec.Unschedulable || len(n5.Spec.Taints) != 0 {
		t.Fatalf("n5 not handed back: unschedulable=%v taints=%v", n5.Spec.Unschedulable, n5.Spec.Taints)
	}
	all, err := store.ListAll(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("records = %d, %v", len(all), err)
	}
	rec := all[0].Status
	if rec.Phase != record.PhaseCompleted || rec.Outcome != record.OutcomeCompleted || rec.Uncordoned == nil || rec.NodeReturned == nil {
		t.Fatalf("record = %+v", rec)
	}
	if len(rec.Votes) != 3 {
		t.Fatalf("record votes = %+v, want the 3 dead votes", rec.Votes)
	}
	for typ, reason := range map[string]string{record.ConditionReady: record.ReasonWorkloadsRecovered, record.ConditionCompleted: record.ReasonHandedBack} {
		if c := meta.FindStatusCondition(rec.Conditions, typ); c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason {
			t.Errorf("%s condition = %+v, want True, %s", typ, c, reason)
		}
	}

	// One Normal Event on the record per phase, in order; one on the pod
	// that was evicted, naming the node and the record; none on the others.
	want := []string{"Normal Confirmed", "Normal Cordoned", "Normal Tainted", "Normal PodsNotReady", "Normal Recovering",
		"Normal Recovered", "Normal NodeReturned", "Normal Completed"}
	if got := reasons(events.about(record.Kind, all[0].Name)); !slices.Equal(got, want) {
		t.Errorf("Events on the record = %v, want %v", got, want)
	}
	evicted := events.about("Pod", "web-a")
	if len(evicted) != 1 || evicted[0].reason != evict.ReasonEvicted || evicted[0].typ != corev1.EventTypeNormal || evicted[0].uid != "uid-web-a" ||
		!strings.Contains(evicted[0].message, "node n5") || !strings.Contains(evicted[0].message, all[0].Name) {
		t.Errorf("Events on the evicted pod = %+v", evicted)
	}
	if evs := events.about("Pod", "web-b"); len(evs) != 0 {
		t.Errorf("Events on a pod of a live node: %+v", evs)
	}
}

// fakeNotices records the nodes the coordinator says are under way.
type fakeNotices struct{ nodes []string }

func (f *fakeNotices) UnderWay(node string) { f.nodes = append(f.nodes, node) }

// TestCoordinator_notReadyNodeIsDrained: with --not-ready-failover-after,
// a node alive on gossip that reports itself not ready that long is
// cordoned and drained, not marked dead, and handed back once ready.
func TestCoordinator_notReadyNodeIsDrained(t *testing.T) {
	ctx := context.Background()
	rsRef := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", Controller: ptr.To(true)}
	client := fake.NewClientset(leaseHeldBy("n1"), node("n1"), node("n2"), node("n3"), pod("web-a", "n3", rsRef))
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{record.GroupVersionResource(): record.ListKind})
	store, _ := record.NewStore(record.DefaultConfig(), record.Deps{Client: dyn})
	reg := prometheus.NewRegistry()
	evictor, _ := evict.New(evict.DefaultConfig(), evict.Deps{Client: client, Recorder: kuberecord.NewFakeRecorder(100), Logger: zap.NewNop(), Registerer: reg})
	g := &fakeGossip{}
	for _, n := range []string{"n1", "n2", "n3"} {
		g.members = append(g.members, gossip.Member{Name: n, State: gossip.StateAlive, Meta: gossip.Meta{NodeName: n, StartEpoch: 1, Ready: true}})
	}
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC))
	cfg := DefaultConfig()
	cfg.Stabilization = 0
	cfg.Decide.NotReadyAfter = 30 * time.Second
	notices := &fakeNotices{}
	c, err := New(withFence(cfg), Deps{Client: client, Namespace: "haagent", Gossip: g, Ballots: fakeBallots{failover.NewBallots()},
		Notices: notices, Evictor: evictor, Store: store, Clock: clk, Logger: zap.NewNop(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.load(ctx); err != nil {
		t.Fatal(err)
	}
	g.setReady("n3", false, "container-runtime: dial unix: no such file")
	c.step(ctx)
	clk.Step(29 * time.Second)
	c.step(ctx)
	if len(c.active) != 0 {
		t.Fatal("failed over before --not-ready-failover-after")
	}
	for i := 0; i < 5; i++ {
		clk.Step(time.Second)
		c.step(ctx)
	}
	f := c.active["n3"]
	if f == nil || f.Spec.Cause != record.CauseNotReady || !strings.Contains(f.Spec.Reason, "container-runtime") {
		t.Fatalf("record = %+v", f)
	}
	n3, _ := client.CoreV1().Nodes().Get(ctx, "n3", metav1.GetOptions{})
	if !n3.Spec.Unschedulable || len(n3.Spec.Taints) != 0 || nodeReady(n3) != corev1.ConditionTrue {
		t.Fatalf("n3: unschedulable=%v taints=%v ready=%s; want cordoned only, Ready untouched", n3.Spec.Unschedulable, n3.Spec.Taints, nodeReady(n3))
	}
	if f.Status.Pods.Evicted != 1 {
		t.Fatalf("pods = %+v, want the web pod evicted", f.Status.Pods)
	}
	if len(notices.nodes) != 0 {
		t.Fatalf("notices %v for a node alive on gossip: nobody votes about it", notices.nodes)
	}
	g.setReady("n3", true, "")
	for i := 0; i < 3; i++ {
		clk.Step(time.Second)
		c.step(ctx)
	}
	if _, still := c.active["n3"]; still {
		t.Fatalf("not handed back once ready: %s (%s)", f.Status.Phase, f.Status.Message)
	}
	n3, _ = client.CoreV1().Nodes().Get(ctx, "n3", metav1.GetOptions{})
	if n3.Spec.Unschedulable || len(n3.Spec.Taints) != 0 {
		t.Fatalf("n3 not handed back: %+v", n3.Spec)
	}
}

// TestCoordinator_newCoordinatorResumes: a coordinator stops halfway
// through a failover; a new one, with nothing but the API, carries the
// record on from its phase without starting the failover again.
func TestCoordinator_newCoordinatorResumes(t *testing.T) {
	ctx := context.Background()
	rsRef := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", Controller: ptr.To(true)}
	client := fake.NewClientset(leaseHeldBy("n1"), node("n1"), node("n2"), node("n3"), pod("web-a", "n3", rsRef))
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{record.GroupVersionResource(): record.ListKind})
	g := &fakeGossip{}
	for _, n := range []string{"n1", "n2", "n3"} {
		g.members = append(g.members, gossip.Member{Name: n, State: gossip.StateAlive, Meta: gossip.Meta{NodeName: n, StartEpoch: 1, Ready: true}})
	}
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC))
	ballots := failover.NewBallots()
	newCoordinator := func() *Coordinator {
		reg := prometheus.NewRegistry()
		store, _ := record.NewStore(record.DefaultConfig(), record.Deps{Client: dyn})
		evictor, _ := evict.New(evict.DefaultConfig(), evict.Deps{Client: client, Recorder: kuberecord.NewFakeRecorder(100), Logger: zap.NewNop(), Registerer: reg})
		c, err := New(withFence(DefaultConfig()), Deps{Client: client, Namespace: "haagent", Gossip: g, Ballots: fakeBallots{ballots},
			Evictor: evictor, Store: store, Clock: clk, Logger: zap.NewNop(), Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.load(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The first coordinator dies halfway: its API writes of the node's
	// status fail from the second step on.
	var broken atomic.Bool
	broken.Store(true)
	client.PrependReactor("patch", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if broken.Load() && a.GetSubresource() == "status" {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	first := newCoordinator()
	g.set("n3", gossip.StateDead)
	for _, v := range []string{"n1", "n2"} {
		ballots.Add(failover.Vote{Voter: v, Target: "n3", Opinion: failover.OpinionDead, VoterEpoch: 1, Seq: 1, At: clk.Now()}, clk.Now())
	}
	first.step(ctx) // starts the failover and cordons
	if p := first.active["n3"].Status.Phase; p != record.PhaseCordoned {
		t.Fatalf("first coordinator stopped at %s, want Cordoned", p)
	}
	writes := len(client.Actions())
	broken.Store(false)

	second := newCoordinator()
	f := second.active["n3"]
	if f == nil || f.Status.Phase != record.PhaseCordoned {
		t.Fatalf("new coordinator loaded %+v, want the Cordoned record", f)
	}
	for i := 0; i < 4; i++ {
		clk.Step(250 * time.Millisecond)
		second.step(ctx)
	}
	// The pod's ReplicaSet is not in this fake API, so no owner waits:
	// the failover goes straight on to Recovered.
	if f.Status.Phase != record.PhaseRecovered || f.Status.Pods.Evicted != 1 {
		t.Fatalf("resumed failover at %s (%s), pods %+v", f.Status.Phase, f.Status.Message, f.Status.Pods)
	}
	all, _ := second.d.Store.ListAll(ctx)
	if len(all) != 1 {
		t.Fatalf("%d records after the takeover, want the one resumed", len(all))
	}
	for _, a := range client.Actions()[writes:] {
		if a.GetVerb() == "patch" && a.GetResource().Resource == "nodes" && a.GetSubresource() == "" {
			if p, ok := a.(interface{ GetPatch() []byte }); ok && strings.Contains(string(p.GetPatch()), "unschedulable") {
				t.Errorf("the new coordinator cordoned again: %s", p.GetPatch())
			}
		}
	}
}

// TestCoordinator_flappingNodeStaysCordonedLonger: each other failover of
// a node within the hour doubles its stabilization period.
func TestCoordinator_flappingNodeStaysCordonedLonger(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC))
	c := &Coordinator{cfg: Config{Stabilization: time.Minute}, clock: clk, history: map[string][]time.Time{
		"flappy": {clk.Now().Add(-50 * time.Minute), clk.Now().Add(-10 * time.Minute)},
		"old":    {clk.Now().Add(-2 * time.Hour)},
	}}
	for node, want := range map[string]time.Duration{"flappy": 4 * time.Minute, "old": time.Minute, "new": time.Minute} {
		if got := c.stabilization(node); got != want {
			t.Errorf("stabilization(%s) = %s, want %s", node, got, want)
		}
	}
}

// testCoordinator is a loaded coordinator on fake API clients, whose
// gossip holds the named members, all alive and ready.
type testCoordinator struct {
	*Coordinator
	client  *fake.Clientset
	gossip  *fakeGossip
	ballots *failover.Ballots
	clock   *clocktesting.FakeClock
	store   *record.Store
	dyn     *dynamicfake.FakeDynamicClient
	events  *eventLog
}

func newTestCoordinator(t *testing.T, cfg Config, members []string, objs ...runtime.Object) *testCoordinator {
	t.Helper()
	// The coordinator Lease is this agent's (fakeGossip's n1): every write
	// checks it first.
	objs = append([]runtime.Object{leaseHeldBy("n1")}, objs...)
	tc := &testCoordinator{client: fake.NewClientset(objs...), gossip: &fakeGossip{}, ballots: failover.NewBallots(),
		clock: clocktesting.NewFakeClock(time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)), events: &eventLog{}}
	tc.dyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{record.GroupVersionResource(): record.ListKind})
	var err error
	// Queued writes come due as the test steps the clock.
	if tc.store, err = record.NewStore(record.DefaultConfig(), record.Deps{Client: tc.dyn, Clock: tc.clock}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	evictor, err := evict.New(evict.DefaultConfig(), evict.Deps{Client: tc.client, Recorder: kuberecord.NewFakeRecorder(100), Logger: zap.NewNop(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range members {
		tc.gossip.members = append(tc.gossip.members, gossip.Member{Name: n, State: gossip.StateAlive, Meta: gossip.Meta{NodeName: n, StartEpoch: 1, Ready: true}})
	}
	if tc.Coordinator, err = New(withFence(cfg), Deps{Client: tc.client, Namespace: "haagent", Gossip: tc.gossip, Ballots: fakeBallots{tc.ballots},
		Evictor: evictor, Store: tc.store, Clock: tc.clock, Logger: zap.NewNop(), Registerer: reg, Recorder: tc.events}); err != nil {
		t.Fatal(err)
	}
	if err := tc.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tc
}

// voteDead records dead votes about target from each voter.
func (tc *testCoordinator) voteDead(target string, voters ...string) {
	now := tc.clock.Now()
	for _, v := range voters {
		tc.ballots.Add(failover.Vote{Voter: v, Target: target, Opinion: failover.OpinionDead, VoterEpoch: 1, Seq: uint64(now.UnixNano()),
			TargetEpoch: 1, LastAck: now.Add(-time.Second), At: now}, now)
	}
}

func (tc *testCoordinator) steps(n int) {
	for i := 0; i < n; i++ {
		tc.clock.Step(250 * time.Millisecond)
		tc.step(context.Background())
	}
}

// TestCoordinator_deletedNodesLeaveTheQuorum: nodes removed from the
// cluster whose agents never left stay dead in gossip; they must count
// neither towards the quorum nor towards the dead fraction, or a cluster
// that shrank could never fail a node over again.
func TestCoordinator_deletedNodesLeaveTheQuorum(t *testing.T) {
	// n4 and n5 are dead in gossip and gone from the API.
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3", "n4", "n5"}, node("n1"), node("n2"), node("n3"))
	tc.gossip.set("n4", gossip.StateDead)
	tc.gossip.set("n5", gossip.StateDead)
	tc.voteDead("n4", "n1", "n2", "n3")
	tc.steps(2)
	if len(tc.active) != 0 {
		t.Fatalf("started a failover of a deleted node: %v", tc.active)
	}
	// n3 dies: two votes are a majority of the three nodes that exist,
	// and one dead of three is under the dead-fraction guard.
	tc.gossip.set("n3", gossip.StateDead)
	tc.voteDead("n3", "n1", "n2")
	tc.steps(2)
	if tc.active["n3"] == nil {
		t.Fatal("no failover of n3 on 2 of 3 votes")
	}
}

// TestCoordinator_deletedNodeEndsItsFailover: a failed-over node that is
// deleted instead of coming back ends its record once its workloads are
// back, instead of keeping it active for ever.
func TestCoordinator_deletedNodeEndsItsFailover(t *testing.T) {
	ctx := context.Background()
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"))
	tc.gossip.set("n3", gossip.StateDead)
	tc.voteDead("n3", "n1", "n2")
	tc.steps(4)
	f := tc.active["n3"]
	if f == nil || f.Status.Phase != record.PhaseRecovered {
		t.Fatalf("record = %+v, want Recovered (no workloads on n3)", f)
	}
	tc.steps(2)
	if tc.active["n3"] == nil {
		t.Fatal("record ended while the Node still exists")
	}
	if err := tc.client.CoreV1().Nodes().Delete(ctx, "n3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	tc.steps(1)
	if tc.active["n3"] != nil {
		t.Fatalf("record still active after the Node was deleted: %s (%s)", f.Status.Phase, f.Status.Message)
	}
	all, err := tc.store.ListAll(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("records = %d, %v", len(all), err)
	}
	if st := all[0].Status; st.Phase != record.PhaseCompleted || st.Uncordoned != nil || !strings.Contains(st.Message, "deleted") {
		t.Fatalf("record status = phase %s, uncordoned %v, message %q", st.Phase, st.Uncordoned, st.Message)
	}
}

// TestCoordinator_unseenMembersCountInTheQuorum: members of the expected
// group that this agent's gossip never saw (it restarted after they died)
// still count: 3 votes of 7 expected are no quorum, though they are a
// majority of the 4 members gossip knows.
func TestCoordinator_unseenMembersCountInTheQuorum(t *testing.T) {
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3", "n4"},
		node("n1"), node("n2"), node("n3"), node("n4"), node("n5"), node("n6"), node("n7"))
	tc.gossip.unseen = []string{"n5", "n6", "n7"}
	tc.gossip.set("n4", gossip.StateDead)
	tc.voteDead("n4", "n1", "n2", "n3")
	tc.steps(4)
	if tc.active["n4"] != nil {
		t.Fatal("failed n4 over on 3 votes of 7 expected members")
	}
	// Once the unseen ones' Nodes are gone, 3 of 4 is a quorum.
	tc.gossip.unseen = nil
	tc.steps(4)
	if tc.active["n4"] == nil {
		t.Fatal("no failover of n4 on 3 votes of 4 expected members")
	}
}

// blockingAdvertiser holds SetCoordinator until released.
type blockingAdvertiser struct {
	entered chan struct{}
	release chan struct{}
	once    atomic.Bool
}

func (a *blockingAdvertiser) SetCoordinator(bool) error {
	if a.once.CompareAndSwap(false, true) {
		close(a.entered)
	}
	<-a.release
	return nil
}

// TestCoordinator_runReturnsAfterItsGoroutines: Run must not return while
// one of its loops is still at work, or main would exit, and the agent
// leave gossip, under a loop that still writes.
func TestCoordinator_runReturnsAfterItsGoroutines(t *testing.T) {
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"))
	adv := &blockingAdvertiser{entered: make(chan struct{}), release: make(chan struct{})}
	tc.d.Advertiser = adv
	tc.leading.Store(true) // advertise publishes it at its first tick
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tc.Run(ctx) }()
	// Step the fake clock until advertise is stuck in SetCoordinator.
	deadline := time.Now().Add(10 * time.Second)
	for stuck := false; !stuck; {
		select {
		case <-adv.entered:
			stuck = true
		case <-time.After(time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("advertise never published")
			}
			tc.clock.Step(100 * time.Millisecond)
		}
	}
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while advertise was still publishing", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(adv.release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its loops had")
	}
}
