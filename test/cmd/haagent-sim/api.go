package main

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	ktesting "k8s.io/client-go/testing"

	hacoord "github.com/haagent/haagent/agent/coordinator"
	"github.com/haagent/haagent/agent/nodestatus"
	"github.com/haagent/haagent/agent/record"
)

// simNamespace is the agents' namespace: the coordinator Lease, the roster
// and the Events are there.
const simNamespace = "haagent"

// errCrashed answers every request of a crashed member's coordinator: a
// powered-off node writes nothing, not even the release of its Lease.
var errCrashed = errors.New("simulated node crashed: no request leaves it")

// fakeAPI is the group's Kubernetes API, in memory (client-go's fake
// clientsets): a Node per member, Ready and with the agent's condition as
// on a cluster where haagent runs, and whatever the coordinators write,
// the coordinator Lease, the roster, Events and the NodeFailover records.
// Each coordinator has clients of its own on the same objects, so that a
// crashed one can be cut off and each write is known by its author; they
// note when each node's first record is created and when it is first
// cordoned, and every record or cordon of a member that is alive as a
// wrong action.
type fakeAPI struct {
	typed *fake.Clientset
	dyn   *dynamicfake.FakeDynamicClient
	rec   *recorder

	mu      sync.Mutex
	phase   string
	records map[string]write // node -> its first NodeFailover record
	cordons map[string]write // node -> its first cordon
	wrong   []wrongAction
	wrongOn map[string]bool // target + action, reported once
}

// write is a coordinator's write to the API.
type write struct {
	at time.Time
	by string // the member whose coordinator wrote it
}

// recordListKinds lets the fake dynamic client list NodeFailover records.
func recordListKinds() map[schema.GroupVersionResource]string {
	return map[schema.GroupVersionResource]string{record.GroupVersionResource(): record.ListKind}
}

func newFakeAPI(names []string, rec *recorder) *fakeAPI {
	objs := make([]runtime.Object, 0, len(names))
	for _, n := range names {
		objs = append(objs, simNode(n))
	}
	return &fakeAPI{
		typed:   fake.NewClientset(objs...),
		dyn:     dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), recordListKinds()),
		rec:     rec,
		phase:   phaseConverge,
		records: map[string]write{},
		cordons: map[string]write{},
		wrongOn: map[string]bool{},
	}
}

// simNode is a member's Node: Ready, with the agent's condition (the
// roster lists such Nodes as agent nodes).
func simNode(name string) *corev1.Node {
	now := metav1.Now()
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: nodestatus.ConditionType, Status: corev1.ConditionTrue, Reason: "Ready", LastHeartbeatTime: now, LastTransitionTime: now},
		}},
	}
}

func (api *fakeAPI) setPhase(p string) {
	api.mu.Lock()
	api.phase = p
	api.mu.Unlock()
}

// clients are the API clients of member by's coordinator, and the switch
// that cuts them off when the member crashes. They share the objects of
// the group's clients and add, in front of their reactors, the cut and the
// notes of records and cordons.
func (api *fakeAPI) clients(by string) (*fake.Clientset, *dynamicfake.FakeDynamicClient, *atomic.Bool) {
	down := &atomic.Bool{}
	gate := func(ktesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			return true, nil, errCrashed
		}
		return false, nil, nil
	}
	watchGate := func(ktesting.Action) (bool, watch.Interface, error) {
		if down.Load() {
			return true, nil, errCrashed
		}
		return false, nil, nil
	}

	typed := &fake.Clientset{}
	typed.ReactionChain = slices.Clone(api.typed.ReactionChain)
	typed.WatchReactionChain = slices.Clone(api.typed.WatchReactionChain)
	nodes := ktesting.ObjectReaction(api.typed.Tracker())
	typed.PrependReactor("patch", "nodes", func(a ktesting.Action) (bool, runtime.Object, error) {
		handled, obj, err := nodes(a)
		if n, ok := obj.(*corev1.Node); ok && err == nil && n.Spec.Unschedulable {
			api.note(api.cordons, n.Name, by, "cordon")
		}
		return handled, obj, err
	})
	typed.PrependReactor("*", "*", gate)
	typed.PrependWatchReactor("*", watchGate)

	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), recordListKinds())
	dyn.ReactionChain = slices.Clone(api.dyn.ReactionChain)
	dyn.WatchReactionChain = slices.Clone(api.dyn.WatchReactionChain)
	records := ktesting.ObjectReaction(api.dyn.Tracker())
	dyn.PrependReactor("create", record.Resource, func(a ktesting.Action) (bool, runtime.Object, error) {
		handled, obj, err := records(a)
		if u, ok := obj.(*unstructured.Unstructured); ok && err == nil {
			if node, _, _ := unstructured.NestedString(u.Object, "spec", "node"); node != "" {
				api.note(api.records, node, by, "record")
			}
		}
		return handled, obj, err
	})
	dyn.PrependReactor("*", "*", gate)
	dyn.PrependWatchReactor("*", watchGate)
	return typed, dyn, down
}

// note keeps the first write of each node in seen, and reports a write
// about a member that did not crash.
func (api *fakeAPI) note(seen map[string]write, node, by, action string) {
	now := time.Now()
	api.mu.Lock()
	defer api.mu.Unlock()
	if _, ok := seen[node]; !ok {
		seen[node] = write{at: now, by: by}
	}
	if _, crashed := api.rec.crashTime(node); crashed || api.wrongOn[node+" "+action] {
		return
	}
	api.wrongOn[node+" "+action] = true
	api.wrong = append(api.wrong, wrongAction{Target: node, Action: action, By: "coordinator " + by,
		AtS: now.Sub(api.rec.start).Seconds(), Phase: api.phase})
}

// recorded is node's first NodeFailover record, if it has one.
func (api *fakeAPI) recorded(node string) (write, bool) {
	api.mu.Lock()
	defer api.mu.Unlock()
	w, ok := api.records[node]
	return w, ok
}

// cordoned is node's first cordon, if it has one.
func (api *fakeAPI) cordoned(node string) (write, bool) {
	api.mu.Lock()
	defer api.mu.Unlock()
	w, ok := api.cordons[node]
	return w, ok
}

func (api *fakeAPI) wrongActions() []wrongAction {
	api.mu.Lock()
	defer api.mu.Unlock()
	return slices.Clone(api.wrong)
}

// leaseHolder is the holder the coordinator Lease names now, "" with none.
// It reads the objects directly: it is the simulation's look, not a
// request of any member.
func (api *fakeAPI) leaseHolder() string {
	obj, err := api.typed.Tracker().Get(coordinationv1.SchemeGroupVersion.WithResource("leases"), simNamespace, hacoord.DefaultLeaseConfig().Name)
	if err != nil {
		return ""
	}
	if l, ok := obj.(*coordinationv1.Lease); ok && l.Spec.HolderIdentity != nil {
		return *l.Spec.HolderIdentity
	}
	return ""
}
