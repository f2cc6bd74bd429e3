package roster

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func node(name string, agent bool, zone string, addrs ...corev1.NodeAddress) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if zone != "" {
		n.Labels[ZoneLabel] = zone
	}
	n.Status.Addresses = addrs
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if agent {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: "HAAgentReady", Status: corev1.ConditionTrue})
	}
	return n
}

func TestEntries_encodeDecodeRoundTrip(t *testing.T) {
	nodes := []*corev1.Node{
		node("b", true, "z1",
			corev1.NodeAddress{Type: corev1.NodeHostName, Address: "b"},
			corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "192.0.2.2"},
			corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.2"},
			corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "fd00::2"}),
		node("a", false, ""),
	}
	got, err := Decode(Encode(Entries(nodes, "HAAgentReady")))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Name: "a"},
		// InternalIPs first, so that InternalIP() is one; HostName dropped.
		{Name: "b", Addresses: []string{"10.0.0.2", "fd00::2", "192.0.2.2"}, Agent: true, Zone: "z1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if ip := got[1].InternalIP(); ip != "10.0.0.2" {
		t.Errorf("InternalIP = %q", ip)
	}
}

func TestDecode_namesTheBadLine(t *testing.T) {
	cases := []struct {
		data map[string]string
		want string
	}{
		{map[string]string{"nodes": "a - 0 -\n"}, `data key "format" is "", want "v1"`},
		{map[string]string{"format": "v1", "nodes": "a - 0 -\nb 10.0.0.2 1\n"}, `line 2 "b 10.0.0.2 1" has 3 fields, want 4`},
		{map[string]string{"format": "v1", "nodes": "a - yes -\n"}, `line 1: agent field "yes" must be 0 or 1`},
	}
	for _, c := range cases {
		_, err := Decode(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Decode(%v) = %v, want an error containing %q", c.data, err, c.want)
		}
	}
}

// fakeNodes is a Node cache the test fills.
type fakeNodes struct {
	mu     sync.Mutex
	synced bool
	nodes  []*corev1.Node
}

func (f *fakeNodes) Synced() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.synced }
func (f *fakeNodes) List() []*corev1.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*corev1.Node(nil), f.nodes...)
}
func (f *fakeNodes) set(synced bool, nodes ...*corev1.Node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced, f.nodes = synced, nodes
}

func TestPublisher_publishesOnlyASyncedListAndFollowsChanges(t *testing.T) {
	client := fake.NewClientset()
	var writes atomic.Int32
	client.PrependReactor("*", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetVerb() == "create" || a.GetVerb() == "update" {
			writes.Add(1)
		}
		return false, nil, nil
	})
	reg := prometheus.NewRegistry()
	p, err := NewPublisher(PublisherConfig{Namespace: "haagent", Name: DefaultName, AgentCondition: "HAAgentReady",
		MinInterval: 50 * time.Millisecond, Check: 5 * time.Millisecond}, PublisherDeps{Client: client, Logger: zap.NewNop(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	nodes := &fakeNodes{}
	nodes.set(false, node("a", true, "")) // a partial list, not synced
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx, nodes) }()

	cache := newCache(t, client, nil)
	go func() { _ = cache.Run(ctx) }()

	time.Sleep(100 * time.Millisecond)
	if n := writes.Load(); n != 0 {
		t.Fatalf("%d writes before the Node cache synced, want none", n)
	}
	nodes.set(true, node("a", true, "", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}), node("b", false, ""))
	waitFor(t, func() bool { return cache.Exists("a") && cache.Exists("b") })
	if got := cache.AgentNodes(); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("AgentNodes = %v, want [a]", got)
	}
	if got := cache.Peers(7946); !reflect.DeepEqual(got, []string{"10.0.0.1:7946"}) {
		t.Errorf("Peers = %v", got)
	}
	// b is deleted: the roster follows, and an unchanged list is not
	// written again.
	nodes.set(true, node("a", true, "", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}))
	waitFor(t, func() bool { return !cache.Exists("b") })
	before := writes.Load()
	time.Sleep(150 * time.Millisecond)
	if after := writes.Load(); after != before {
		t.Errorf("%d writes of an unchanged roster", after-before)
	}
	if got := testutil.ToFloat64(p.writes.WithLabelValues("success")); got != 2 {
		t.Errorf("successful writes = %v, want 2", got)
	}
	cancel()
	<-done
}

func TestCache_keepsTheLastGoodRoster(t *testing.T) {
	good := Encode([]Entry{{Name: "a", Agent: true}})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: DefaultName, Namespace: "haagent"}, Data: good}
	client := fake.NewClientset(cm)
	reg := prometheus.NewRegistry()
	cache := newCache(t, client, reg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = cache.Run(ctx) }()
	if !cache.WaitForSync(ctx, 10*time.Second) {
		t.Fatal("never synced")
	}
	bad := cm.DeepCopy()
	bad.Data = map[string]string{"format": "v1", "nodes": "a b\n"}
	if _, err := client.CoreV1().ConfigMaps("haagent").Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return testutil.ToFloat64(cache.invalid) == 1 })
	if !cache.Exists("a") {
		t.Error("a malformed roster replaced the last good one")
	}
	if err := client.CoreV1().ConfigMaps("haagent").Delete(ctx, DefaultName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if !cache.Exists("a") {
		t.Error("deleting the ConfigMap emptied the roster")
	}
}

// newCache builds a cache of the default roster in namespace haagent.
func newCache(t *testing.T, client kubernetes.Interface, reg prometheus.Registerer) *Cache {
	t.Helper()
	c, err := NewCache(CacheConfig{Namespace: "haagent", Name: DefaultName}, CacheDeps{Client: client, Logger: zap.NewNop(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCache_followsDeletionsWithoutACoordinator: with no majority in
// sight no coordinator writes the roster; the agent reads the Nodes of
// the members it does not see alive, one at a time, counts the deleted
// ones as gone until the next roster, and asks nothing while active says
// no.
func TestCache_followsDeletionsWithoutACoordinator(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: DefaultName, Namespace: "haagent"},
		Data: Encode([]Entry{{Name: "a", Agent: true}, {Name: "b", Agent: true}, {Name: "c", Agent: true}})}
	client := fake.NewClientset(cm)
	cache := newCache(t, client, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = cache.Run(ctx) }()
	if !cache.WaitForSync(ctx, 10*time.Second) {
		t.Fatal("never synced")
	}
	var active atomic.Bool
	var gets atomic.Int32
	existing := map[string]bool{"a": true, "b": true} // c was deleted
	get := func(_ context.Context, name string) error {
		gets.Add(1)
		if existing[name] {
			return nil
		}
		return apierrors.NewNotFound(corev1.Resource("nodes"), name)
	}
	go func() {
		_ = cache.FollowDeletions(ctx, get, active.Load, func() []string { return []string{"b", "c"} }, 5*time.Millisecond)
	}()

	time.Sleep(50 * time.Millisecond)
	if n := gets.Load(); n != 0 {
		t.Fatalf("%d reads while a majority is in sight", n)
	}
	active.Store(true)
	waitFor(t, func() bool { return !cache.Exists("c") })
	if !cache.Exists("b") {
		t.Error("b, which the API still has, is gone")
	}
	if got := cache.AgentNodes(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("AgentNodes = %v, want [a b]", got)
	}
	// The next roster is the coordinator's word: c is back in it.
	active.Store(false)
	cm2 := cm.DeepCopy()
	cm2.Data = Encode([]Entry{{Name: "a", Agent: true}, {Name: "c", Agent: true}})
	if _, err := client.CoreV1().ConfigMaps("haagent").Update(ctx, cm2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return cache.Exists("c") && !cache.Exists("b") })
}
