package coordinator

import (
	"context"
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/internal/metricstest"
)

// TestMetrics_conventions lints the coordinator's metrics as promtool
// check metrics does, and checks their label values: snake_case
// (dry_run, pods_not_ready), never the API's dry-run or PodsNotReady.
func TestMetrics_conventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newFenceRefused(reg); err != nil {
		t.Fatal(err)
	}
	m.setMemberStatus(map[string]string{"node-1.example": statusFailingOver})
	metricstest.Check(t, reg, "member")
	for _, want := range []struct{ metric, label, value string }{
		{"haagent_failover_total", "outcome", "dry_run"},
		{"haagent_failover_total", "outcome", "aborted"},
		{"haagent_failover_step_retries_total", "phase", "pods_not_ready"},
		{"haagent_failover_step_retries_total", "phase", "awaiting_fence"},
		{"haagent_failover_member_status", "status", "failing_over"},
	} {
		if !hasSeries(t, reg, want.metric, want.label, want.value) {
			t.Errorf("no series %s{%s=%q}", want.metric, want.label, want.value)
		}
	}
}

func hasSeries(t *testing.T, reg prometheus.Gatherer, metric, label, value string) bool {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return true
				}
			}
		}
	}
	return false
}

// memberStatusSeries reads haagent_failover_member_status: member -> status.
func memberStatusSeries(t *testing.T, m *metrics) map[string]string {
	t.Helper()
	ch := make(chan prometheus.Metric, 100)
	m.memberStatus.Collect(ch)
	close(ch)
	out := map[string]string{}
	for pm := range ch {
		var d dto.Metric
		if err := pm.Write(&d); err != nil {
			t.Fatal(err)
		}
		if d.GetGauge().GetValue() != 1 {
			t.Errorf("series %v = %v, want 1", d.GetLabel(), d.GetGauge().GetValue())
		}
		labels := map[string]string{}
		for _, l := range d.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if _, dup := out[labels["member"]]; dup {
			t.Errorf("member %s has two series", labels["member"])
		}
		out[labels["member"]] = labels["status"]
	}
	return out
}

// TestCoordinator_memberStatusFollowsTheFailover: the series of a dead
// member goes from failing_over to failed_over, and is gone once its Node is
// deleted; an alert on it fires and resolves with the failover.
func TestCoordinator_memberStatusFollowsTheFailover(t *testing.T) {
	ctx := context.Background()
	deploy, rs, rsRef := webWorkload(1)
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"),
		deploy, rs, pod("web-a", "n3", rsRef))
	tc.steps(1)
	if got := memberStatusSeries(t, tc.metrics); len(got) != 0 {
		t.Fatalf("member status with every member healthy: %v", got)
	}
	tc.gossip.set("n3", gossip.StateDead)
	tc.voteDead("n3", "n1", "n2")
	tc.steps(1)
	if got := memberStatusSeries(t, tc.metrics); !maps.Equal(got, map[string]string{"n3": statusFailingOver}) {
		t.Fatalf("member status after the failover started = %v, want n3 failing_over", got)
	}
	tc.steps(6)
	if got := memberStatusSeries(t, tc.metrics); !maps.Equal(got, map[string]string{"n3": statusFailingOver}) {
		t.Fatalf("member status while its workload is not back = %v (phase %s), want n3 failing_over", got, tc.active["n3"].Status.Phase)
	}
	// The replacement becomes ready on n2.
	if _, err := tc.client.CoreV1().Pods("default").Create(ctx, pod("web-b", "n2", rsRef), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tc.steps(8)
	if got := memberStatusSeries(t, tc.metrics); !maps.Equal(got, map[string]string{"n3": statusFailedOver}) {
		t.Fatalf("member status once recovered = %v (phase %s), want n3 failed_over", got, tc.active["n3"].Status.Phase)
	}
	// Back on gossip: returning, no longer dead, while the hand-back waits
	// for --stabilization.
	tc.gossip.set("n3", gossip.StateAlive)
	tc.steps(1)
	if got := memberStatusSeries(t, tc.metrics); !maps.Equal(got, map[string]string{"n3": statusReturning}) {
		t.Fatalf("member status once alive again = %v (phase %s), want n3 returning", got, tc.active["n3"].Status.Phase)
	}
	// Dead again, then deleted for good.
	tc.gossip.set("n3", gossip.StateDead)
	tc.steps(1)
	if got := memberStatusSeries(t, tc.metrics); !maps.Equal(got, map[string]string{"n3": statusFailedOver}) {
		t.Fatalf("member status dead again = %v (phase %s), want n3 failed_over", got, tc.active["n3"].Status.Phase)
	}
	if err := tc.client.CoreV1().Nodes().Delete(ctx, "n3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	tc.steps(2)
	if got := memberStatusSeries(t, tc.metrics); len(got) != 0 {
		t.Fatalf("member status after the Node was deleted = %v, want none", got)
	}
}

// TestCoordinator_memberStatusFailedUntilBack: a member whose failover
// failed stays failed, whatever a guard decides, until it is alive again;
// losing the Lease takes every series away.
func TestCoordinator_memberStatusFailedUntilBack(t *testing.T) {
	tc := newTestCoordinator(t, DefaultConfig(), []string{"n1", "n2", "n3"}, node("n1"), node("n2"), node("n3"))
	tc.gossip.set("n3", gossip.StateDead)
	tc.mu.Lock()
	tc.failed["n3"] = true
	tc.mu.Unlock()
	members := tc.members(context.Background())
	got := tc.memberStatus(members, []failover.Decision{{Action: failover.ActionHold, Target: "n3"}, {Action: failover.ActionAgentDown, Target: "n2"}}, nil)
	if want := map[string]string{"n3": statusFailed, "n2": statusAgentDown}; !maps.Equal(got, want) {
		t.Fatalf("member status = %v, want %v", got, want)
	}
	tc.metrics.setMemberStatus(got)
	tc.gossip.set("n3", gossip.StateAlive)
	members = tc.members(context.Background())
	if got := tc.memberStatus(members, nil, nil); len(got) != 0 {
		t.Fatalf("member status once n3 is back = %v, want none", got)
	}
	tc.stepDown()
	if got := memberStatusSeries(t, tc.metrics); len(got) != 0 {
		t.Fatalf("member status after the Lease was lost = %v, want none", got)
	}
}

// TestCoordinator_enabledGauge: with --failover=false no agent ever holds
// the Lease, and the no-coordinator alert must know it is by choice.
func TestCoordinator_enabledGauge(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		cfg := DefaultConfig()
		cfg.Enabled = enabled
		tc := newTestCoordinator(t, cfg, []string{"n1"}, node("n1"))
		if got, want := testutil.ToFloat64(tc.metrics.enabled), boolFloat(enabled); got != want {
			t.Errorf("--failover=%v: haagent_failover_enabled = %v, want %v", enabled, got, want)
		}
	}
}

// TestCoordinator_memberStatusFailedThroughTheRetry: a failover that timed
// out waiting for its workloads ends Failed; fresh dead votes then start
// another, and the member stays failed (the critical finding), also for a
// new coordinator, until the node is back.
func TestCoordinator_memberStatusFailedThroughTheRetry(t *testing.T) {
	ctx := context.Background()
	tc := recoveringStatefulN3(ctx, t)
	tc.steps(4 * 31 * 60) // past --recovery-timeout (30m)
	if got := memberStatusSeries(t, tc.metrics); !maps.Equal(got, map[string]string{"n3": statusFailed}) {
		t.Fatalf("member status after the recovery timeout = %v, want n3 failed", got)
	}
	tc.voteDead("n3", "n1", "n2")
	tc.steps(8)
	if len(tc.active) != 1 {
		t.Fatalf("active = %v, want the new failover of n3", tc.active)
	}
	if got := memberStatusSeries(t, tc.metrics); !maps.Equal(got, map[string]string{"n3": statusFailed}) {
		t.Fatalf("member status during the new failover = %v, want n3 still failed", got)
	}
	// A new coordinator finds the failure in the records.
	tc.stepDown()
	if err := tc.load(ctx); err != nil {
		t.Fatal(err)
	}
	tc.steps(1)
	if got := memberStatusSeries(t, tc.metrics); !maps.Equal(got, map[string]string{"n3": statusFailed}) {
		t.Fatalf("member status after a change of coordinator = %v, want n3 failed", got)
	}
	// The node is back: no longer failed, returning while the new
	// failover hands it back.
	tc.gossip.set("n3", gossip.StateAlive)
	tc.steps(1)
	if got := memberStatusSeries(t, tc.metrics); !maps.Equal(got, map[string]string{"n3": statusReturning}) {
		t.Fatalf("member status once n3 is back = %v, want n3 returning", got)
	}
}
