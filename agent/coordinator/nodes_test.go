package coordinator

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/nodecache"
)

// TestCoordinator_readsNodesFromItsWatch: the tick reads the Nodes of dead
// and not-ready members from the term's Node watch, not by a GET each
// tick (4 a second per member, for as long as it stays dead).
func TestCoordinator_readsNodesFromItsWatch(t *testing.T) {
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3", "n4"}, node("n1"), node("n2"), node("n3"))
	tc.gossip.set("n3", gossip.StateDead) // a Node the API has
	tc.gossip.set("n4", gossip.StateDead) // a Node deleted from the API
	tc.gossip.setReady("n2", false, "kubelet: down")
	nodes := nodecache.New(tc.client, "HAAgentReady")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = nodes.Run(ctx) }()
	if !nodes.WaitForSync(ctx, 10*time.Second) {
		t.Fatal("node cache never synced")
	}
	tc.nodes.Store(nodes)
	var gets atomic.Int32
	tc.client.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		gets.Add(1)
		return false, nil, nil
	})
	var left bool
	for i := 0; i < 40; i++ {
		tc.clock.Step(250 * time.Millisecond)
		for _, m := range tc.members(ctx) {
			if m.Name == "n4" && m.State == failover.StateLeft {
				left = true
			}
		}
	}
	if n := gets.Load(); n != 0 {
		t.Errorf("%d GETs of Nodes in 40 ticks, want none with the watch synced", n)
	}
	if !left {
		t.Error("the deleted n4 does not count as left")
	}
}
