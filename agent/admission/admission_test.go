package admission

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/haagent/haagent/agent/roster"
)

func TestChecker_admitsOnlyNodesAtTheirAddress(t *testing.T) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: "node-1"},
			{Type: corev1.NodeInternalIP, Address: "10.0.0.1"},
			{Type: corev1.NodeExternalIP, Address: "192.0.2.1"},
		}},
	}
	client := fake.NewClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: roster.DefaultName, Namespace: "haagent"},
		Data:       roster.Encode(roster.Entries([]*corev1.Node{node}, "HAAgentReady")),
	})
	nodes := newRoster(t, client)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = nodes.Run(ctx) }()
	if !nodes.WaitForSync(ctx, 10*time.Second) {
		t.Fatal("roster never read")
	}
	c := New(nodes)
	cases := []struct {
		name, ip, want string
	}{
		{"node-1", "10.0.0.1", ""},
		{"node-1", "192.0.2.1", ""},
		{"node-1", "10.0.0.2", RefusedAddressMismatch},
		{"rogue", "10.0.0.1", RefusedUnknownNode},
	}
	for _, tc := range cases {
		if got := c.Admit(tc.name, net.ParseIP(tc.ip)); got != tc.want {
			t.Errorf("Admit(%s, %s) = %q, want %q", tc.name, tc.ip, got, tc.want)
		}
	}
}

func TestChecker_admitsAllBeforeTheFirstRoster(t *testing.T) {
	c := New(newRoster(t, fake.NewClientset()))
	if got := c.Admit("anyone", net.ParseIP("10.0.0.9")); got != "" {
		t.Fatalf("Admit before the first roster = %q, want admitted", got)
	}
}

// newRoster builds a cache of the default roster in namespace haagent.
func newRoster(t *testing.T, client kubernetes.Interface) *roster.Cache {
	t.Helper()
	c, err := roster.NewCache(roster.CacheConfig{Namespace: "haagent", Name: roster.DefaultName},
		roster.CacheDeps{Client: client, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
