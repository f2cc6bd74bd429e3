package evict

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
)

var (
	testNow  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	podsGVR  = corev1.SchemeGroupVersion.WithResource("pods")
	nodesGVR = corev1.SchemeGroupVersion.WithResource("nodes")
)

type harness struct {
	e   *Evictor
	cs  *fake.Clientset
	rec *record.FakeRecorder
	reg *prometheus.Registry
}

// newHarness builds an Evictor on a fake clientset that behaves like an API
// server in the ways that matter here: dry-run writes change nothing, an
// eviction makes the pod terminating (a dead kubelet never finishes it) and
// a delete checks its UID precondition.
func newHarness(t *testing.T, cfg Config, objs ...runtime.Object) *harness {
	t.Helper()
	cs := fake.NewClientset(objs...)
	// Prepended reactors run last-added first: dry runs are answered
	// before anything could change.
	cs.PrependReactor("create", "pods", evictionReactor(cs))
	cs.PrependReactor("delete", "pods", uidPreconditionReactor(cs))
	cs.PrependReactor("*", "*", dryRunReactor(cs))
	rec := record.NewFakeRecorder(100)
	reg := prometheus.NewRegistry()
	e, err := New(cfg, Deps{
		Client: cs, Recorder: rec, Logger: zap.NewNop(), Registerer: reg,
		Clock: clocktesting.NewFakePassiveClock(testNow),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{e: e, cs: cs, rec: rec, reg: reg}
}

func dryRunOf(a k8stesting.Action) []string {
	switch a := a.(type) {
	case k8stesting.PatchActionImpl:
		return a.PatchOptions.DryRun
	case k8stesting.UpdateActionImpl:
		return a.UpdateOptions.DryRun
	case k8stesting.DeleteActionImpl:
		return a.DeleteOptions.DryRun
	case k8stesting.CreateActionImpl:
		if ev, ok := a.Object.(*policyv1.Eviction); ok && ev.DeleteOptions != nil {
			return ev.DeleteOptions.DryRun
		}
		return a.CreateOptions.DryRun
	}
	return nil
}

func isWrite(a k8stesting.Action) bool {
	switch a.GetVerb() {
	case "create", "update", "patch", "delete":
		return true
	}
	return false
}

func dryRunReactor(cs *fake.Clientset) k8stesting.ReactionFunc {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		if !isWrite(a) || len(dryRunOf(a)) == 0 {
			return false, nil, nil
		}
		var name string
		switch a := a.(type) {
		case k8stesting.PatchActionImpl:
			name = a.Name
		case k8stesting.DeleteActionImpl:
			name = a.Name
		case k8stesting.CreateActionImpl:
			if ev, ok := a.Object.(*policyv1.Eviction); ok {
				_, err := cs.Tracker().Get(podsGVR, ev.Namespace, ev.Name)
				return true, nil, err
			}
		}
		if name == "" {
			return true, nil, nil
		}
		obj, err := cs.Tracker().Get(a.GetResource(), a.GetNamespace(), name)
		return true, obj, err
	}
}

func evictionReactor(cs *fake.Clientset) k8stesting.ReactionFunc {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		obj, err := cs.Tracker().Get(podsGVR, ev.Namespace, ev.Name)
		if err != nil {
			return true, nil, err
		}
		p := obj.(*corev1.Pod)
		if p.DeletionTimestamp == nil {
			ts := metav1.NewTime(testNow)
			p.DeletionTimestamp = &ts
			if err := cs.Tracker().Update(podsGVR, p, p.Namespace); err != nil {
				return true, nil, err
			}
		}
		return true, nil, nil
	}
}

func uidPreconditionReactor(cs *fake.Clientset) k8stesting.ReactionFunc {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteActionImpl)
		pre := d.DeleteOptions.Preconditions
		if pre == nil || pre.UID == nil {
			return false, nil, nil
		}
		obj, err := cs.Tracker().Get(podsGVR, d.Namespace, d.Name)
		if err != nil {
			return true, nil, err
		}
		if obj.(*corev1.Pod).UID != *pre.UID {
			return true, nil, apierrors.NewConflict(podsGVR.GroupResource(), d.Name, errPrecondition)
		}
		return false, nil, nil
	}
}

var errPrecondition = errors.New("precondition failed: UID mismatch")

// writes returns the write actions the fake has seen.
func (h *harness) writes() []k8stesting.Action {
	var out []k8stesting.Action
	for _, a := range h.cs.Actions() {
		if isWrite(a) {
			out = append(out, a)
		}
	}
	return out
}

// events drains the recorded Events and returns their reasons.
func (h *harness) events() []string {
	var out []string
	for {
		select {
		case ev := <-h.rec.Events:
			f := strings.Fields(ev)
			out = append(out, f[1])
		default:
			return out
		}
	}
}

func (h *harness) node(t *testing.T, name string) *corev1.Node {
	t.Helper()
	n, err := h.cs.Tracker().Get(nodesGVR, "", name)
	if err != nil {
		t.Fatal(err)
	}
	return n.(*corev1.Node)
}

func (h *harness) pod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := h.cs.Tracker().Get(podsGVR, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*corev1.Pod)
}

type nodeOpt func(*corev1.Node)

func newNode(name string, ready corev1.ConditionStatus, opts ...nodeOpt) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), ResourceVersion: "10"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
			{Type: corev1.NodeReady, Status: ready, Reason: "KubeletReady"},
		}},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func cordoned(n *corev1.Node) { n.Spec.Unschedulable = true }

func withTaint(key string, effect corev1.TaintEffect) nodeOpt {
	return func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Effect: effect})
	}
}

func withLabel(k, v string) nodeOpt {
	return func(n *corev1.Node) {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}
}

type podOpt func(*corev1.Pod)

func newPod(ns, name, node string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name), ResourceVersion: "5"},
		Spec:       corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func ownedBy(apiVersion, kind, name string) podOpt {
	return func(p *corev1.Pod) {
		yes := true
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{
			APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: &yes,
		})
	}
}

func withClaim(claim string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
		}})
	}
}

func withEmptyDir(p *corev1.Pod) {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{},
	}})
}

func mirror(p *corev1.Pod) {
	p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"}
}

func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }

func terminating(p *corev1.Pod) {
	ts := metav1.NewTime(testNow.Add(-time.Minute))
	p.DeletionTimestamp = &ts
	p.Finalizers = []string{"example.com/keep"}
}

func notReady(p *corev1.Pod) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type != corev1.PodScheduled {
			p.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
}

func claim(ns, name string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PersistentVolumeClaimSpec{AccessModes: modes},
	}
}

func daemonSet(ns, name string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func condition(conds []corev1.PodCondition, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range conds {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

func nodeCondition(n *corev1.Node, t corev1.NodeConditionType) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func taintIDs(n *corev1.Node) []string {
	var out []string
	for _, t := range n.Spec.Taints {
		out = append(out, taintID(t))
	}
	return out
}
