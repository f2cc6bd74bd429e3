package nodecache

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func node(name string, conds ...corev1.NodeConditionType) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, c := range conds {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: c, Status: corev1.ConditionTrue})
	}
	return n
}

func TestCache_existsAndAgentNodes(t *testing.T) {
	client := fake.NewClientset(
		node("a", corev1.NodeReady, "HAAgentReady"),
		node("b", "HAAgentReady"),
		node("cp", corev1.NodeReady),
	)
	c := New(client, "HAAgentReady")
	if c.Synced() {
		t.Fatal("synced before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.Run(ctx) }()
	if !c.WaitForSync(ctx, 10*time.Second) {
		t.Fatal("never synced")
	}
	got := c.AgentNodes()
	slices.Sort(got)
	if want := []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("AgentNodes() = %v, want %v (cp never ran an agent)", got, want)
	}
	if !c.Exists("cp") || c.Exists("gone") {
		t.Errorf("Exists(cp) = %v, Exists(gone) = %v, want true, false", c.Exists("cp"), c.Exists("gone"))
	}
	if err := client.CoreV1().Nodes().Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Exists("b") {
		if time.Now().After(deadline) {
			t.Fatal("a deleted Node stayed in the cache")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.AgentNodes(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("AgentNodes() after deleting b = %v, want [a]", got)
	}
}
