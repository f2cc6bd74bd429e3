package coordinator

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"
)

// TestStandby_campaignWaitsFromTheLastRenewalItWatched: a standby that
// starts campaigning when the coordinator dies must wait for the old
// holder to stop from the holder's last renewal it saw (as an agent that
// campaigned all along would), and from the campaign's first read only
// if the Lease changed since.
func TestStandby_campaignWaitsFromTheLastRenewalItWatched(t *testing.T) {
	lease := leaseHeldBy("n3")
	client := fake.NewClientset(lease)
	l := &leadership{
		cfg:    LeaseConfig{Name: "haagent-coordinator", Duration: 30 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 100 * time.Millisecond},
		client: client, namespace: "haagent", identity: "n1", clock: clock.RealClock{}, log: zap.NewNop(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.watchLease(ctx, &l.view) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, func() bool { l.view.mu.Lock(); defer l.view.mu.Unlock(); return l.view.ok })

	// The holder renews; the watch sees it.
	time.Sleep(50 * time.Millisecond)
	renewed := time.Now()
	lease.Spec.RenewTime = &metav1.MicroTime{Time: renewed}
	got, err := client.CoordinationV1().Leases("haagent").Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { l.view.mu.Lock(); defer l.view.mu.Unlock(); return !l.view.changed.Before(renewed) })
	l.view.mu.Lock()
	seen := l.view.changed
	l.view.mu.Unlock()

	time.Sleep(200 * time.Millisecond) // the campaign starts later
	p := l.newPredecessor()
	bound := l.cfg.holderStopBound()
	until, holder, ok := p.until(bound)
	if !ok || holder != "n3" || !until.Equal(seen.Add(bound)) {
		t.Fatalf("until = %v, %q, %v; want the watched renewal %v + %s, n3", until, holder, ok, seen, bound)
	}
	// The campaign's first read finds the Lease as watched: no change.
	p.observe(got, nil)
	if u, _, _ := p.until(bound); !u.Equal(until) {
		t.Errorf("an unchanged Lease moved the wait to %v", u)
	}
	// A renewal the watch missed counts from when the campaign reads it.
	again := got.DeepCopy()
	again.ResourceVersion += "1"
	before := time.Now()
	p.observe(again, nil)
	if u, _, _ := p.until(bound); u.Before(before.Add(bound)) {
		t.Errorf("a changed Lease leaves the wait at %v, before %v", u, before.Add(bound))
	}
}
