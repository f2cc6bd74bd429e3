package coordinator

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

// leaseHeldBy is a Lease that its holder renewed just now, for 30 s.
func leaseHeldBy(holder string) *coordinationv1.Lease {
	now := metav1.NewMicroTime(time.Now())
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "haagent-coordinator", Namespace: "haagent"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(int32(30)),
			AcquireTime: &now, RenewTime: &now},
	}
}

// becomesLeader runs a candidate against a Lease that n3 holds and reports
// whether it leads within wait, and the holders it observed on the way.
func becomesLeader(t *testing.T, holderDead func(string) bool, wait time.Duration) (bool, []string) {
	t.Helper()
	client := fake.NewClientset(leaseHeldBy("n3"))
	var leading atomic.Bool
	var mu sync.Mutex
	var holders []string
	observed := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), holders...) }
	l := &leadership{
		cfg:    LeaseConfig{Name: "haagent-coordinator", Duration: 30 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 100 * time.Millisecond},
		client: client, namespace: "haagent", identity: "n1",
		majority: func() bool { return true }, clock: clock.RealClock{}, log: zap.NewNop(),
		onChange: func(bool) {}, holderDead: holderDead,
		onHolder: func(h string) { mu.Lock(); holders = append(holders, h); mu.Unlock() },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, func(ctx context.Context) { leading.Store(true); <-ctx.Done() })
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if leading.Load() {
			return true, observed()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false, observed()
}

// TestLeadership_takesTheLeaseFromADeadHolder: the Lease of a coordinator
// whose node a quorum confirms dead is taken at once, not after its 30 s.
func TestLeadership_takesTheLeaseFromADeadHolder(t *testing.T) {
	var asked atomic.Value
	dead := func(holder string) bool { asked.Store(holder); return holder == "n3" }
	led, holders := becomesLeader(t, dead, 10*time.Second)
	if !led {
		t.Fatal("did not take the Lease of a holder confirmed dead within 10s (it runs for 30s)")
	}
	// Votes follow the holder: first n3, then this candidate.
	if len(holders) < 2 || holders[0] != "n3" || holders[len(holders)-1] != "n1" {
		t.Errorf("holders observed = %q, want n3 then n1", holders)
	}
	if got, _ := asked.Load().(string); got != "n3" {
		t.Fatalf("asked about holder %q, want n3", got)
	}
}

// TestLeadership_waitsForALiveHolder: a holder not confirmed dead keeps its
// Lease until it runs out.
func TestLeadership_waitsForALiveHolder(t *testing.T) {
	led, holders := becomesLeader(t, func(string) bool { return false }, 2*time.Second)
	if led {
		t.Fatal("took the Lease of a live holder before it ran out")
	}
	if len(holders) != 1 || holders[0] != "n3" {
		t.Errorf("holders observed = %q, want n3", holders)
	}
}
