package admission

import (
	"context"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/haagent/haagent/agent/nodecache"
)

func TestChecker_admitsOnlyNodesAtTheirAddress(t *testing.T) {
	client := fake.NewClientset(&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: "node-1"},
			{Type: corev1.NodeInternalIP, Address: "10.0.0.1"},
		}},
	})
	nodes := nodecache.New(client, "HAAgentReady")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = nodes.Run(ctx) }()
	if !nodes.WaitForSync(ctx, 10*time.Second) {
		t.Fatal("node cache never synced")
	}
	c := New(nodes)
	cases := []struct {
		name, ip, want string
	}{
		{"node-1", "10.0.0.1", ""},
		{"node-1", "10.0.0.2", RefusedAddressMismatch},
		{"rogue", "10.0.0.1", RefusedUnknownNode},
	}
	for _, tc := range cases {
		if got := c.Admit(tc.name, net.ParseIP(tc.ip)); got != tc.want {
			t.Errorf("Admit(%s, %s) = %q, want %q", tc.name, tc.ip, got, tc.want)
		}
	}
}

func TestChecker_admitsAllBeforeTheFirstList(t *testing.T) {
	c := New(nodecache.New(fake.NewClientset(), "HAAgentReady"))
	if got := c.Admit("anyone", net.ParseIP("10.0.0.9")); got != "" {
		t.Fatalf("Admit before sync = %q, want admitted", got)
	}
}
