package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/record"
)

// A coordinator whose Lease another agent took (a successor freed it as
// dead and won it, while this one still ran its term) writes nothing: the
// Lease is read right before each write.
func TestCoordinator_writesOnlyWhileHoldingTheLease(t *testing.T) {
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"))
	tc.gossip.set("n3", gossip.StateDead)
	tc.addRecord(t, "n3", record.PhaseConfirmed, tc.clock.Now().Add(-time.Second))
	if err := tc.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	setHolder := func(h string) {
		t.Helper()
		leases := tc.client.CoordinationV1().Leases("haagent")
		l, err := leases.Get(context.Background(), "haagent-coordinator", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l.Spec.HolderIdentity = ptr.To(h)
		if _, err := leases.Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setHolder("n2")
	tc.steps(20)
	if n := tc.getNode(t, "n3"); n.Spec.Unschedulable {
		t.Fatal("n3 was cordoned by a coordinator that no longer held the Lease")
	}
	if got := testutil.ToFloat64(tc.metrics.notHolder); got < 1 {
		t.Errorf("haagent_failover_not_holder_writes_total = %v, want at least 1", got)
	}
	setHolder("n1")
	tc.clock.Step(time.Minute) // past any step backoff
	tc.steps(4)
	if n := tc.getNode(t, "n3"); !n.Spec.Unschedulable {
		t.Error("n3 was not cordoned once this coordinator held the Lease again")
	}
}
