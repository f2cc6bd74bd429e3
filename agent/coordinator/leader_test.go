package coordinator

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"
	testingclock "k8s.io/utils/clock/testing"
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
// whose node a quorum confirms dead is taken at once, not after its 30 s;
// the new holder leads once the old one has surely stopped (2s + 100ms +
// 3s after the free, see TestLeadership_waitsForADeadHolderToStop).
func TestLeadership_takesTheLeaseFromADeadHolder(t *testing.T) {
	var asked atomic.Value
	dead := func(holder string) bool { asked.Store(holder); return holder == "n3" }
	led, holders := becomesLeader(t, dead, 15*time.Second)
	if !led {
		t.Fatal("did not take the Lease of a holder confirmed dead within 15s (it runs for 30s)")
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

func TestLeaseConfig_Validate(t *testing.T) {
	lease := func(d, renew, retry time.Duration) LeaseConfig {
		return LeaseConfig{Name: "haagent-coordinator", Duration: d, RenewDeadline: renew, RetryPeriod: retry}
	}
	tests := []struct {
		name string
		cfg  LeaseConfig
		want string
	}{
		{name: "defaults", cfg: DefaultLeaseConfig()},
		{name: "client-go's defaults", cfg: lease(15*time.Second, 10*time.Second, 2*time.Second)},
		{name: "renew deadline just above the jitter", cfg: lease(6*time.Second, 1201*time.Millisecond, time.Second)},
		{name: "allowance of 10% at 5m", cfg: lease(5*time.Minute, 4*time.Minute, 30*time.Second)},
		{name: "no name", cfg: LeaseConfig{Duration: 6 * time.Second, RenewDeadline: 4 * time.Second, RetryPeriod: time.Second},
			want: "coordinator: --lease-name must not be empty"},
		{name: "duration too short", cfg: lease(time.Second, 500*time.Millisecond, 100*time.Millisecond),
			want: "coordinator: --lease-duration (1s) must be between 2s and 5m0s"},
		{name: "duration not whole seconds", cfg: lease(6500*time.Millisecond, 4*time.Second, time.Second),
			want: "coordinator: --lease-duration (6.5s) must be a whole number of seconds (the Lease stores seconds)"},
		{name: "renew deadline zero", cfg: lease(6*time.Second, 0, time.Second),
			want: "coordinator: --lease-renew-deadline (0s) must be positive and less than --lease-duration (6s)"},
		{name: "renew deadline equals duration", cfg: lease(6*time.Second, 6*time.Second, time.Second),
			want: "coordinator: --lease-renew-deadline (6s) must be positive and less than --lease-duration (6s)"},
		{name: "retry period zero", cfg: lease(6*time.Second, 4*time.Second, 0),
			want: "coordinator: --lease-retry-period (0s) must be positive"},
		{name: "retry period negative", cfg: lease(6*time.Second, 4*time.Second, -time.Second),
			want: "coordinator: --lease-retry-period (-1s) must be positive"},
		{name: "renew deadline equals retry period", cfg: lease(6*time.Second, time.Second, time.Second),
			want: "coordinator: --lease-renew-deadline (1s) must be more than 1.2 x --lease-retry-period (1s)"},
		{name: "renew deadline at the jitter", cfg: lease(6*time.Second, 1200*time.Millisecond, time.Second),
			want: "coordinator: --lease-renew-deadline (1.2s) must be more than 1.2 x --lease-retry-period (1s)"},
		{name: "retry period above the renew deadline", cfg: lease(6*time.Second, 2*time.Second, 3*time.Second),
			want: "coordinator: --lease-renew-deadline (2s) must be more than 1.2 x --lease-retry-period (3s)"},
		{name: "no room for the clock allowance", cfg: lease(5*time.Second, 4*time.Second, time.Second),
			want: "coordinator: --lease-duration (5s) must be at least --lease-renew-deadline (4s) + --lease-retry-period (1s) + 1s (clock allowance: the larger of 1s and 10% of --lease-duration) = 6s"},
		{name: "retry period eats the allowance", cfg: lease(6*time.Second, 4*time.Second, 1500*time.Millisecond),
			want: "coordinator: --lease-duration (6s) must be at least --lease-renew-deadline (4s) + --lease-retry-period (1.5s) + 1s (clock allowance: the larger of 1s and 10% of --lease-duration) = 6.5s"},
		{name: "allowance of 10% at 30s", cfg: lease(30*time.Second, 27*time.Second, time.Second),
			want: "coordinator: --lease-duration (30s) must be at least --lease-renew-deadline (27s) + --lease-retry-period (1s) + 3s (clock allowance: the larger of 1s and 10% of --lease-duration) = 31s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if got := errString(err); got != tc.want {
				t.Fatalf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fakeLease is the config of the fake-clock tests: the previous holder
// stops at most 2s + 100ms + 3s (10% of 30s) after its last renewal.
var fakeLease = LeaseConfig{Name: "haagent-coordinator", Duration: 30 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 100 * time.Millisecond}

const fakeLeaseStopBound = 5100 * time.Millisecond

// candidate is a leadership under test, run on a fake clock (client-go's
// elector keeps its own real clock).
type candidate struct {
	clk     *testingclock.FakeClock
	logs    *observer.ObservedLogs
	leading atomic.Bool
}

func startCandidate(t *testing.T, cfg LeaseConfig, identity string, client *fake.Clientset, holderDead func(string) bool) *candidate {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	c := &candidate{clk: testingclock.NewFakeClock(time.Now()), logs: logs}
	l := &leadership{
		cfg: cfg, client: client, namespace: "haagent", identity: identity,
		majority: func() bool { return true }, clock: c.clk, log: zap.New(core),
		onChange: func(bool) {}, holderDead: holderDead,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, func(ctx context.Context) { c.leading.Store(true); <-ctx.Done() })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// count is how many entries logged msg.
func (c *candidate) count(msg string) int { return c.logs.FilterMessage(msg).Len() }

// eventually polls cond in real time for up to wait.
func eventually(wait time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

const msgWaiting = "holding the coordinator Lease: waiting for the previous holder to stop acting"

// waitLogged waits until the candidate logs that it waits for the previous
// holder, and returns the entry's fields; it fails the test if the
// candidate leads first.
func (c *candidate) waitLogged(t *testing.T) map[string]any {
	t.Helper()
	if !eventually(10*time.Second, func() bool { return c.count(msgWaiting) > 0 || c.leading.Load() }) {
		t.Fatal("neither waited for the previous holder nor led within 10s")
	}
	if c.count(msgWaiting) == 0 {
		t.Fatal("led without waiting for the previous holder to stop")
	}
	return c.logs.FilterMessage(msgWaiting).All()[0].ContextMap()
}

// leadsAfter steps the fake clock to just before wait has passed and
// checks that the candidate does not lead, then past it and checks that
// it does.
func (c *candidate) leadsAfter(t *testing.T, wait time.Duration) {
	t.Helper()
	c.clk.Step(wait - time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if c.leading.Load() {
		t.Fatal("led 1ms before the previous holder's stop bound had passed")
	}
	c.clk.Step(time.Millisecond)
	if !eventually(5*time.Second, c.leading.Load) {
		t.Fatal("did not lead once the previous holder's stop bound had passed")
	}
}

// TestLeadership_waitsForADeadHolderToStop: after freeing the Lease of a
// holder that a quorum confirms dead, the new coordinator does not lead
// until the old one has surely stopped: its renew deadline, a retry period
// and the clock allowance after the free, on this agent's clock.
func TestLeadership_waitsForADeadHolderToStop(t *testing.T) {
	c := startCandidate(t, fakeLease, "n1", fake.NewClientset(leaseHeldBy("n3")), func(h string) bool { return h == "n3" })
	const msgFreed = "the coordinator's node is confirmed dead by a quorum: freed its Lease"
	// takeFromDeadHolder runs on the fake clock: tick it until it frees the
	// Lease, then leave the clock alone.
	steps := 0
	for ; steps < 200 && c.count(msgFreed) == 0; steps++ {
		c.clk.Step(fakeLease.RetryPeriod)
		time.Sleep(20 * time.Millisecond)
	}
	if c.count(msgFreed) == 0 {
		t.Fatal("the Lease of the dead holder was not freed")
	}
	fields := c.waitLogged(t)
	wait, _ := fields["wait"].(time.Duration)
	// The free happened at the last step or shortly before.
	if wait > fakeLeaseStopBound || wait < fakeLeaseStopBound-3*fakeLease.RetryPeriod {
		t.Fatalf("waits %s, want about %s from the free (%d steps of %s)", wait, fakeLeaseStopBound, steps, fakeLease.RetryPeriod)
	}
	if fields["holder"] != "n3" {
		t.Errorf("logged holder %v, want n3", fields["holder"])
	}
	c.leadsAfter(t, wait)
}

// TestLeadership_leadsAtOnceWithoutAPreviousLease: when the Lease did not
// exist at this agent's first look, nobody held it before: no wait.
func TestLeadership_leadsAtOnceWithoutAPreviousLease(t *testing.T) {
	c := startCandidate(t, fakeLease, "n1", fake.NewClientset(), nil)
	if !eventually(5*time.Second, c.leading.Load) {
		t.Fatal("did not lead within 5s on a fresh Lease")
	}
	if n := c.count(msgWaiting); n != 0 {
		t.Fatalf("waited for a previous holder %d times; there was none", n)
	}
}

// TestLeadership_waitsFromTheCampaignStartForAnUnknownHolder: a Lease that
// names this agent (left by an earlier run of it) tells nothing about who
// acted last: the wait runs from the start of the campaign.
func TestLeadership_waitsFromTheCampaignStartForAnUnknownHolder(t *testing.T) {
	stale := leaseHeldBy("n1")
	old := metav1.NewMicroTime(time.Now().Add(-time.Minute))
	stale.Spec.AcquireTime, stale.Spec.RenewTime = &old, &old
	c := startCandidate(t, fakeLease, "n1", fake.NewClientset(stale), nil)
	fields := c.waitLogged(t)
	if wait, _ := fields["wait"].(time.Duration); wait != fakeLeaseStopBound {
		t.Fatalf("waits %s, want %s from the campaign's start", wait, fakeLeaseStopBound)
	}
	c.leadsAfter(t, fakeLeaseStopBound)
}

// TestLeadership_backsOffWhenTheElectorRefuses: a config that client-go
// refuses (Validate rules it out; here it is not called) makes the agent
// wait a retry period between campaigns, not spin.
func TestLeadership_backsOffWhenTheElectorRefuses(t *testing.T) {
	cfg := LeaseConfig{Name: "haagent-coordinator", Duration: 6 * time.Second, RenewDeadline: time.Second, RetryPeriod: time.Second}
	c := startCandidate(t, cfg, "n1", fake.NewClientset(), nil)
	const msg = "leader election config"
	if !eventually(5*time.Second, func() bool { return c.count(msg) > 0 }) {
		t.Fatal("no error logged")
	}
	time.Sleep(300 * time.Millisecond)
	if n := c.count(msg); n != 1 {
		t.Fatalf("%d campaigns in 300ms without the clock moving, want 1", n)
	}
	if got := c.logs.FilterMessage(msg).All()[0].ContextMap()["error"]; got != "renewDeadline must be greater than retryPeriod*JitterFactor" {
		t.Errorf("logged error %v", got)
	}
	c.clk.Step(cfg.RetryPeriod)
	if !eventually(5*time.Second, func() bool { return c.count(msg) == 2 }) {
		t.Fatalf("%d campaigns after a retry period, want 2", c.count(msg))
	}
}
