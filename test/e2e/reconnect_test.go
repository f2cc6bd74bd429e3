package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/test/cluster"
)

// TestHollow_reconnectedKubeletStopsEvictedPod asks what the real kubelet
// does with a pod that haagent evicted while its node was cut off. A node
// of the hollow ground is isolated, its kubelet and agent running (no
// fence): the majority fails it over and evicts its web pod, whose
// replacement runs elsewhere. The cut-off kubelet cannot hear of the
// eviction, so its runtime keeps the old container running; once the
// node is reachable again, the kubelet must learn of the deletion, stop
// the container and let the Pod object go, and haagent hands the node
// back.
func TestHollow_reconnectedKubeletStopsEvictedPod(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 5, agent: failoverAgents, ground: hollowGround})
	client := tc.cp.Client()
	ctx := context.Background()
	waitMembers(t, tc.nodes, 2*time.Minute, "every agent sees 5 alive and ready members", allAliveAndReady(nodeNames(tc.nodes)))
	var holder string
	eventually(t, time.Minute, "a coordinator", func(ctx context.Context) (bool, error) {
		var err error
		holder, err = coordinator(ctx, client)
		return holder != "", err
	})
	startWorkload(t, client, 5)

	// The victim: neither the coordinator's node nor node-1, the seed.
	var victim *cluster.Node
	for _, n := range tc.nodes[1:] {
		if n.Name() != holder {
			victim = n
			break
		}
	}
	pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web", FieldSelector: "spec.nodeName=" + victim.Name()})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("%d web pods on %s, want 1", len(pods.Items), victim.Name())
	}
	old := pods.Items[0]
	key := old.Namespace + "/" + old.Name
	waitContainersRun(t, tc, key, victim.Name())

	tl, err := cluster.StartTimeline(ctx, tc.cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Stop()
	cut := time.Now()
	fault, err := tc.faults.Isolate(victim.IP())
	if err != nil {
		t.Fatal(err)
	}
	tl.Fault(cut, victim.Name())
	t.Logf("cut %s off; its web pod %s", victim.Name(), old.Name)

	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := tl.WaitFor(waitCtx, cluster.EventPodDeleting, key); err != nil {
		t.Fatalf("%s not evicted: %v\n%s", key, err, tl.Table())
	}
	if _, err := tl.WaitFor(waitCtx, cluster.EventOwnerRecovered, "Deployment/default/web"); err != nil {
		t.Fatalf("web not recovered: %v\n%s", err, tl.Table())
	}
	// Cut off, the kubelet has not heard of the eviction: the runtime
	// still runs the old container beside its replacement.
	stillRunning := false
	for _, r := range tc.journal.RunsOf(key) {
		stillRunning = stillRunning || (r.Node == victim.Name() && r.Running())
	}
	if !stillRunning {
		t.Errorf("%s stopped on the cut-off node before it could hear of the eviction:\n%s", key, tc.journal.Table(cut, key))
	}

	healed := time.Now()
	if err := fault.Remove(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, key+"'s container stopped by the reconnected kubelet", func(context.Context) (bool, error) {
		for _, r := range tc.journal.RunsOf(key) {
			if r.Node == victim.Name() && r.Running() {
				return false, nil
			}
		}
		return true, nil
	})
	eventually(t, time.Minute, "the Pod object "+key+" gone", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Pods(old.Namespace).Get(ctx, old.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	eventually(t, 2*time.Minute, victim.Name()+" handed back (schedulable, no haagent taint)", func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, victim.Name(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return !n.Spec.Unschedulable && !hasTaint(n, "haagent.io/dead"), nil
	})
	for _, r := range tc.journal.RunsOf(key) {
		if r.Node == victim.Name() && !r.Stop.IsZero() {
			t.Logf("%s ran on %s until %+.1fs after the cut, %+.1fs after the heal (%s)", key, victim.Name(),
				r.Stop.Sub(cut).Seconds(), r.Stop.Sub(healed).Seconds(), r.StopReason)
		}
	}
	t.Logf("timeline:\n%s\ncontainer journal:\n%s", tl.Table(), tc.journal.Table(cut))
}

// hasTaint reports whether the node carries a taint with key.
func hasTaint(n *corev1.Node, key string) bool {
	for _, tt := range n.Spec.Taints {
		if tt.Key == key {
			return true
		}
	}
	return false
}
