package coordinator

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/clock"

	"github.com/haagent/haagent/agent/gossip"
)

// TestCandidate_exactlyKOfTheGroupCampaign: every agent ranks the same
// view alike, so exactly --coordinator-candidates of them campaign, the
// ready ones first; the holder keeps campaigning whatever its rank.
func TestCandidate_exactlyKOfTheGroupCampaign(t *testing.T) {
	var names []string
	for i := 1; i <= 20; i++ {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	tc := newTestCoordinator(t, DefaultConfig(), names)
	tc.gossip.setReady("n7", false, "kubelet: down")
	var campaigning []string
	for _, self := range names {
		tc.gossip.local = self
		if tc.candidate() {
			campaigning = append(campaigning, self)
		}
	}
	if len(campaigning) != 3 {
		t.Fatalf("%d agents campaign (%v), want --coordinator-candidates = 3", len(campaigning), campaigning)
	}
	for _, c := range campaigning {
		if c == "n7" {
			t.Errorf("the not-ready n7 campaigns while 19 ready members rank first")
		}
	}
	// The ranking moves on when a candidate dies.
	dead := campaigning[0]
	tc.gossip.set(dead, gossip.StateDead)
	var after []string
	for _, self := range names {
		tc.gossip.local = self
		if tc.candidate() {
			after = append(after, self)
		}
	}
	if len(after) != 3 || contains(after, dead) {
		t.Errorf("after %s died, %v campaign; want 3 others", dead, after)
	}
	// A holder outside the ranking keeps its Lease.
	sort.Strings(after)
	for _, n := range names {
		if !contains(after, n) && n != dead && n != "n7" {
			tc.gossip.local = n
			tc.leading.Store(true)
			if !tc.candidate() {
				t.Errorf("holder %s stops campaigning because of its rank", n)
			}
			tc.leading.Store(false)
			break
		}
	}
}

// TestCandidate_nobodyElseCampaignsWhileACoordinatorIsAlive: while an
// alive member advertises the Lease, only it reads the Lease; once it is
// dead in gossip the ranked candidates campaign again.
func TestCandidate_nobodyElseCampaignsWhileACoordinatorIsAlive(t *testing.T) {
	var names []string
	for i := 1; i <= 10; i++ {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	tc := newTestCoordinator(t, DefaultConfig(), names)
	ranked := func() []string {
		var out []string
		for _, n := range names {
			tc.gossip.local = n
			if tc.candidate() {
				out = append(out, n)
			}
		}
		return out
	}
	first := ranked()
	if len(first) != 3 {
		t.Fatalf("with no coordinator, %v campaign; want 3", first)
	}
	holder := first[1]
	for i := range tc.gossip.members {
		if tc.gossip.members[i].Name == holder {
			tc.gossip.members[i].Meta.Coordinator = true
		}
	}
	if got := ranked(); len(got) != 1 || got[0] != holder {
		t.Errorf("with %s advertising the Lease, %v campaign; want only %s", holder, got, holder)
	}
	tc.gossip.set(holder, gossip.StateDead)
	if got := ranked(); len(got) != 3 || contains(got, holder) {
		t.Errorf("with the coordinator %s dead, %v campaign; want 3 others", holder, got)
	}
}

// TestCandidate_everyoneCampaignsWithoutACoordinatorOnlyIfTheAPIAnswers:
// if the ranked candidates cannot take the Lease, the others do after
// escalateAfter Lease durations, but only those that reach the API
// server: in an outage N agents must not poll the API server as it comes
// back.
func TestCandidate_everyoneCampaignsWithoutACoordinatorOnlyIfTheAPIAnswers(t *testing.T) {
	var names []string
	for i := 1; i <= 10; i++ {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	tc := newTestCoordinator(t, DefaultConfig(), names)
	var outsider string
	for _, n := range names {
		tc.gossip.local = n
		if !tc.candidate() {
			outsider = n
			break
		}
	}
	if outsider == "" {
		t.Fatal("every agent of 10 is a candidate")
	}
	var apiUp atomic.Bool
	tc.d.APIReachable = apiUp.Load
	tc.clock.Step(escalateAfter*DefaultLeaseConfig().Duration + time.Second)
	if tc.candidate() {
		t.Errorf("%s campaigns out of rank while the API server is unreachable", outsider)
	}
	apiUp.Store(true)
	if !tc.candidate() {
		t.Errorf("%s does not campaign after %d Lease durations with no coordinator", outsider, escalateAfter)
	}
	// A coordinator appears: back to the ranking.
	tc.gossip.members[0].Meta.Coordinator = true
	if tc.candidate() {
		t.Errorf("%s still campaigns out of rank with %s advertised", outsider, names[0])
	}
	if h := tc.Holder(); h != names[0] {
		t.Errorf("Holder() = %q, want the advertised %s", h, names[0])
	}
}

// TestLeadership_aNonCandidateNeverReadsTheLease: the point of candidacy
// is that the other agents leave the Lease alone.
func TestLeadership_aNonCandidateNeverReadsTheLease(t *testing.T) {
	client := fake.NewClientset(leaseHeldBy("n3"))
	var reads atomic.Int32
	client.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		reads.Add(1)
		return false, nil, nil
	})
	var candidate atomic.Bool
	l := &leadership{
		cfg:    LeaseConfig{Name: "haagent-coordinator", Duration: 30 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 50 * time.Millisecond},
		client: client, namespace: "haagent", identity: "n1",
		majority: func() bool { return true }, candidate: candidate.Load, clock: clock.RealClock{}, log: zap.NewNop(),
		onChange: func(bool) {},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.run(ctx, func(ctx context.Context) { <-ctx.Done() }) }()
	defer func() { cancel(); <-done }()
	time.Sleep(500 * time.Millisecond)
	if n := reads.Load(); n != 0 {
		t.Fatalf("a non-candidate read the Lease %d times", n)
	}
	candidate.Store(true)
	waitUntil(t, func() bool { return reads.Load() > 0 })
	// Out of the ranking again: it stops reading within a check or two.
	candidate.Store(false)
	time.Sleep(500 * time.Millisecond)
	before := reads.Load()
	time.Sleep(500 * time.Millisecond)
	if after := reads.Load(); after != before {
		t.Errorf("%d reads of the Lease after the agent left the ranking", after-before)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
