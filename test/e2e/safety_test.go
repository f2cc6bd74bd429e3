package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/test/cluster"
)

// Settings of the safety tests that fence: an isolated agent runs its fence
// command safetyFenceAfter after it counts itself isolated, which takes the
// fast profile's isolation timeout (and a failed apiserver check).
const (
	safetyIsolationTimeout = 2 * time.Second
	safetyFenceAfter       = 2 * time.Second
	safetyCommandTimeout   = 2 * time.Second
	// safetyClockOffset is how far ahead the successor's clock runs in
	// TestSafety_skewedSuccessorKeepsTheFenceBound: far more than the fence
	// bound, so a bound timed from the record's confirmation would be over
	// the instant the successor took the record.
	safetyClockOffset = 60 * time.Second
)

// clockOffsetEnv shifts an agent's coordinator wall clock (cmd/haagent;
// for tests only).
const clockOffsetEnv = "HAAGENT_TEST_CLOCK_OFFSET"

// safetyFenceBound is the least --fence-bound the agent accepts with the
// settings above and the harness's apiserver check:
//
//	max(--isolation-timeout, apiserver check period + timeout)
//	+ --fence-after + 2 x 1 s fence checks + --fence-command-timeout
//	+ margin, max(2s, 10% of the sum)
var safetyFenceBound = func() time.Duration {
	var apiCheck time.Duration
	for _, c := range cluster.DefaultAgentChecks(netip.IPv4Unspecified()) {
		if c.APIServer != nil {
			apiCheck = time.Duration(c.PeriodSeconds+c.TimeoutSeconds) * time.Second
		}
	}
	sum := max(safetyIsolationTimeout, apiCheck) + safetyFenceAfter + 2*time.Second + safetyCommandTimeout
	return sum + max(2*time.Second, sum/10)
}()

func safetyFenceAgents(_ int, c *cluster.AgentConfig) {
	c.ExtraArgs = append(c.ExtraArgs,
		"--isolation-timeout="+safetyIsolationTimeout.String(),
		"--fence-after="+safetyFenceAfter.String(),
		"--fence-command-timeout="+safetyCommandTimeout.String(),
		"--fence-bound="+safetyFenceBound.String(),
		"--stabilization="+stabilization.String())
}

// safetyMetric reads one sample of the node's agent; a sample the agent
// does not have yet counts as 0.
func safetyMetric(ctx context.Context, n *cluster.Node, name string, labels ...string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m, err := n.Agent().Metrics(ctx)
	if err != nil {
		return 0, err
	}
	v, _ := m.Value(name, labels...)
	return v, nil
}

// safetyNode returns the node of that name.
func safetyNode(t *testing.T, nodes []*cluster.Node, name string) *cluster.Node {
	t.Helper()
	for _, n := range nodes {
		if n.Name() == name {
			return n
		}
	}
	t.Fatalf("%q is not one of the nodes %v", name, nodeNames(nodes))
	return nil
}

// safetyLeader waits until a node's agent holds the coordinator Lease and
// leads (past its wait for the previous holder), and returns it.
func safetyLeader(t *testing.T, tc *testCluster, among []*cluster.Node, timeout time.Duration) *cluster.Node {
	t.Helper()
	var leader *cluster.Node
	eventually(t, timeout, fmt.Sprintf("one of %v leads", nodeNames(among)), func(ctx context.Context) (bool, error) {
		holder, err := coordinator(ctx, tc.cp.Client())
		if err != nil || holder == "" {
			return false, err
		}
		leader = nil
		for _, n := range among {
			if n.Name() == holder {
				leader = n
			}
		}
		if leader == nil {
			return false, fmt.Errorf("the Lease holder is %s", holder)
		}
		v, err := safetyMetric(ctx, leader, "haagent_failover_coordinator")
		return v == 1, err
	})
	return leader
}

// safetyRecordsOf returns the node's failover records.
func safetyRecordsOf(records []record.NodeFailover, node string) []record.NodeFailover {
	var out []record.NodeFailover
	for _, r := range records {
		if r.Spec.Node == node {
			out = append(out, r)
		}
	}
	return out
}

// safetyPhaseAtLeast reports whether a record in phase p went on to want or
// further (an Aborted or Failed record did not).
func safetyPhaseAtLeast(p, want record.Phase) bool {
	if p == record.PhaseAborted || p == record.PhaseFailed {
		return false
	}
	i, j := slices.Index(record.Phases(), p), slices.Index(record.Phases(), want)
	return i >= 0 && j >= 0 && i >= j
}

// safetyLogTime returns the time of the first line of an agent log (console
// format, stamped "15:04:05.000" in local time) that contains msg and is
// stamped at or after from. The date is taken from from, the stamp moved by
// a day where that brings it closer.
func safetyLogTime(path, msg string, from time.Time) (time.Time, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, msg) {
			continue
		}
		stamp, _, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		clock, err := time.ParseInLocation("15:04:05.000", stamp, time.Local)
		if err != nil {
			continue
		}
		at := time.Date(from.Year(), from.Month(), from.Day(), clock.Hour(), clock.Minute(), clock.Second(), clock.Nanosecond(), time.Local)
		switch {
		case at.Sub(from) > 12*time.Hour:
			at = at.AddDate(0, 0, -1)
		case from.Sub(at) > 12*time.Hour:
			at = at.AddDate(0, 0, 1)
		}
		// The stamp has milliseconds; from has more.
		if !at.Before(from.Truncate(time.Millisecond)) {
			return at, true
		}
	}
	return time.Time{}, false
}

// TestSafety_apiOutageLongerThanFenceAfterFencesNoNode cuts every node off
// from the API server, their agents still gossiping, for 3 x --fence-after
// + --isolation-timeout. An agent fences only when it has neither the API
// server nor a gossip majority, so no node may fence, and no failover may
// start during the outage or after it.
func TestSafety_apiOutageLongerThanFenceAfterFencesNoNode(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 5, fence: true, agent: safetyFenceAgents})
	names := nodeNames(tc.nodes)
	ctx := context.Background()
	waitMembers(t, tc.nodes, 2*time.Minute, "every agent sees 5 alive and ready members", allAliveAndReady(names))
	safetyLeader(t, tc, tc.nodes, time.Minute)
	tl, err := cluster.StartTimeline(ctx, tc.cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Stop()

	outage := 3*safetyFenceAfter + safetyIsolationTimeout
	var cuts []*cluster.Fault
	for _, n := range tc.nodes {
		f, err := n.IsolateFromAPI()
		if err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, f)
	}
	cut := time.Now()
	tl.Fault(cut, names...)

	// Watch every agent while the API is away: its apiserver check must
	// fail (or the outage did not reach it), and it must never count
	// itself isolated.
	apiFailures := map[string]float64{}
	isolated := map[string]float64{}
	polls := 0
	for time.Since(cut) < outage {
		for _, n := range tc.nodes {
			if v, err := safetyMetric(ctx, n, "haagent_probe_check_consecutive_failures", "check", "apiserver"); err == nil {
				apiFailures[n.Name()] = max(apiFailures[n.Name()], v)
			}
			if v, err := safetyMetric(ctx, n, "haagent_fence_isolated"); err == nil {
				isolated[n.Name()] = max(isolated[n.Name()], v)
			}
		}
		polls++
		time.Sleep(200 * time.Millisecond)
	}
	for _, f := range cuts {
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
	}
	back := time.Now()
	t.Logf("API server cut off from all 5 nodes for %s (3 x --fence-after %s + --isolation-timeout %s = %s); %d polls of every agent; most consecutive apiserver check failures %v",
		back.Sub(cut).Round(10*time.Millisecond), safetyFenceAfter, safetyIsolationTimeout, outage, polls, apiFailures)
	for _, n := range names {
		if apiFailures[n] == 0 {
			t.Errorf("the apiserver check of %s never failed during the outage: the cut did not reach it", n)
		}
		if isolated[n] != 0 {
			t.Errorf("%s counted itself isolated (haagent_fence_isolated 1) while it gossiped with every peer", n)
		}
	}

	noFence := func(when string) {
		t.Helper()
		for _, n := range tc.nodes {
			if _, err := os.Stat(tc.fenceFile(n.Name())); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: fence file of %s: %v, want it absent: the node fenced itself", when, n.Name(), err)
			}
			if at, ok := n.Fenced(); ok {
				t.Errorf("%s: %s powered off by its fence at %+.3fs", when, n.Name(), at.Sub(cut).Seconds())
			}
			for _, result := range []string{"success", "failure"} {
				if v, err := safetyMetric(ctx, n, "haagent_fence_actions_total", "action", "command", "result", result); err != nil || v != 0 {
					t.Errorf("%s: %s: haagent_fence_actions_total{result=%q} = %v (%v), want 0", when, n.Name(), result, v, err)
				}
			}
		}
	}
	// A fence would have run during the outage, or at the first check
	// after it: look now, before a powered-off node fails the waits below.
	time.Sleep(2 * time.Second)
	noFence("right after the outage")

	// Settle: the agents see the API again, a coordinator leads, and any
	// failover it would start has time to show.
	waitMembers(t, tc.nodes, time.Minute, "every agent alive and ready again", allAliveAndReady(names))
	safetyLeader(t, tc, tc.nodes, time.Minute)
	time.Sleep(15 * time.Second)
	t.Logf("timeline of the API outage (0 = the cut, back at %+.3fs):\n%s", back.Sub(cut).Seconds(), tl.Table())

	noFence("after the settle period")
	if recs := failoverRecords(ctx, t, tc.cp); len(recs) != 0 {
		t.Errorf("%d failover records after an API outage, want none: %+v", len(recs), recs)
	}
	noActionOn(t, tl, names, -time.Hour)
	for _, n := range names {
		node, err := tc.cp.Client().CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if node.Spec.Unschedulable || len(node.Spec.Taints) > 0 {
			t.Errorf("%s after the outage: unschedulable %v, taints %v", n, node.Spec.Unschedulable, node.Spec.Taints)
		}
	}
}

// TestSafety_shrunkClusterStillFailsOver crashes 4 of 7 nodes and deletes
// their Node objects, as a cloud provider or an autoscaler would. The
// survivors must stop counting them (an expected group of 3), so that when
// one more node crashes, the 2 of 3 left are a majority and fail it over.
// Were the deleted nodes still counted, 2 of 7 would be no majority and
// nothing would happen.
func TestSafety_shrunkClusterStillFailsOver(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 7, agent: failoverAgents})
	names := nodeNames(tc.nodes)
	client := tc.cp.Client()
	ctx := context.Background()
	waitMembers(t, tc.nodes, 2*time.Minute, "every agent sees 7 alive and ready members", allAliveAndReady(names))

	survivors, gone := tc.nodes[:3], tc.nodes[3:]
	for _, n := range gone {
		if _, err := n.Crash(); err != nil {
			t.Fatal(err)
		}
	}
	waitMembers(t, survivors, time.Minute, "the 4 crashed nodes dead", func(resp *api.MembersResponse) error {
		for _, n := range gone {
			if m, _ := cluster.Member(resp, n.Name()); m.State.String() != "dead" {
				return fmt.Errorf("%s is %s", n.Name(), m.State)
			}
		}
		return nil
	})
	for _, n := range gone {
		if err := client.CoreV1().Nodes().Delete(ctx, n.Name(), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deleted := time.Now()
	shrunk := waitMembers(t, survivors, time.Minute, "the survivors stop counting the deleted nodes: an expected group of 3, all live", func(resp *api.MembersResponse) error {
		if q := resp.Quorum; q.Expected != 3 || q.Live != 3 {
			return fmt.Errorf("quorum %+v", q)
		}
		return nil
	})
	for n, at := range shrunk {
		t.Logf("%s counts an expected group of 3 %s after the Node deletions", n, at.Sub(deleted).Round(10*time.Millisecond))
	}
	leader := safetyLeader(t, tc, survivors, time.Minute)
	var victim *cluster.Node
	var others []string
	for _, n := range survivors {
		if n != leader && victim == nil {
			victim = n
		} else {
			others = append(others, n.Name())
		}
	}
	t.Logf("%s leads; crashing %s", leader.Name(), victim.Name())

	tl, _ := crashWatched(t, ctx, tc, victim)
	defer tl.Stop()

	var rec record.NodeFailover
	eventually(t, time.Minute, "the failover record of "+victim.Name()+" at Evicting or later", func(ctx context.Context) (bool, error) {
		r, ok := recordOf(failoverRecords(ctx, t, tc.cp), victim.Name())
		rec = r
		if !ok {
			return false, errors.New("no record")
		}
		if !safetyPhaseAtLeast(r.Status.Phase, record.PhaseEvicting) {
			return false, fmt.Errorf("phase %s", r.Status.Phase)
		}
		return true, nil
	})
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cordoned, err := tl.WaitFor(waitCtx, cluster.EventCordoned, victim.Name())
	if err != nil {
		t.Fatalf("%s not cordoned: %v\n%s", victim.Name(), err, tl.Table())
	}
	t.Logf("crash of %s in a cluster shrunk to 3: cordoned %+.3fs after the crash; record %s in phase %s (detect %s)\n%s",
		victim.Name(), cordoned.Since.Seconds(), rec.Name, rec.Status.Phase, rec.Status.TimeToDetect, tl.Table())

	node, err := client.CoreV1().Nodes().Get(ctx, victim.Name(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !node.Spec.Unschedulable {
		t.Errorf("%s is not cordoned", victim.Name())
	}
	if len(rec.Status.Votes) < 2 {
		t.Errorf("record has %d votes, want at least a quorum of 2 of 3: %+v", len(rec.Status.Votes), rec.Status.Votes)
	}
	noActionOn(t, tl, others, -time.Hour)
	for _, n := range gone {
		if r, ok := recordOf(failoverRecords(ctx, t, tc.cp), n.Name()); ok {
			t.Errorf("a failover record for the deleted node %s: %s %s", n.Name(), r.Name, r.Status.Phase)
		}
	}
}

// safetyRefuseWebhook is a validating webhook for NodeFailover creates
// whose endpoint refuses connections: with failurePolicy Fail, the API
// server answers every create with a 500, a retryable error that the
// coordinator queues, while reads and other writes go through.
func safetyRefuseWebhook() *admissionregistrationv1.ValidatingWebhookConfiguration {
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-refuse-nodefailover-creates"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "refuse.nodefailovers.e2e.haagent.io",
			// Nothing listens on port 1: connection refused at once.
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/refuse")},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{record.Group}, APIVersions: []string{"*"}, Resources: []string{record.Resource},
					Scope: ptr.To(admissionregistrationv1.ClusterScope),
				},
			}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To(int32(2)),
		}},
	}
}

// TestSafety_staleQueuedRecordDoesNothingToALiveNode: a coordinator C
// queues the record of a dead node X (the API server refuses the create
// with a 500), then loses the Lease when it is cut off from the API
// server. X comes back. When C leads again, after X is back and healthy,
// the queued create is days old in spirit: it must not be written, and
// nothing may be done to X.
//
// A full cut alone cannot make C queue the create: C first looks up X's
// active records, and with no API that read fails and C does not start.
// So the API server refuses NodeFailover creates (a webhook that cannot be
// reached, failurePolicy Fail) while C confirms X; then C is cut off. To
// make C lead again, the other nodes are cut off from the API server for a
// moment, so that C is the only candidate that can take the Lease.
func TestSafety_staleQueuedRecordDoesNothingToALiveNode(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 5, agent: failoverAgents})
	names := nodeNames(tc.nodes)
	client := tc.cp.Client()
	ctx := context.Background()
	waitMembers(t, tc.nodes, 2*time.Minute, "every agent sees 5 alive and ready members", allAliveAndReady(names))
	c := safetyLeader(t, tc, tc.nodes, time.Minute)
	var x *cluster.Node
	for _, n := range tc.nodes {
		if n != c && x == nil {
			x = n
		}
	}
	t.Logf("coordinator C is %s; X is %s", c.Name(), x.Name())
	tl, err := cluster.StartTimeline(ctx, tc.cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Stop()

	// The API server refuses NodeFailover creates, and says so to a
	// dry run, once the webhook is in force.
	wh, err := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, safetyRefuseWebhook(), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	whDeleted := false
	deleteWebhook := func() {
		if whDeleted {
			return
		}
		whDeleted = true
		if err := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, wh.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete webhook: %v", err)
		}
	}
	t.Cleanup(deleteWebhook)
	dyn, err := dynamic.NewForConfig(tc.cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: record.Group, Version: record.Version, Resource: record.Resource}
	probe, err := record.NewNodeFailover("webhook-probe", "e2e: is the webhook in force", false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(probe)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the API server refuses NodeFailover creates", func(ctx context.Context) (bool, error) {
		_, err := dyn.Resource(gvr).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			return false, errors.New("a dry-run create went through")
		}
		return apierrors.IsInternalError(err) && strings.Contains(err.Error(), "webhook"), err
	})

	// X crashes; C confirms it and queues the create.
	crashed, err := x.Crash()
	if err != nil {
		t.Fatal(err)
	}
	tl.Fault(crashed, x.Name())
	eventually(t, 30*time.Second, "C queues the record of "+x.Name(), func(ctx context.Context) (bool, error) {
		v, err := safetyMetric(ctx, c, "haagent_record_pending_writes")
		return v >= 1, err
	})
	t.Logf("C queued the create of %s's record %s after the crash", x.Name(), time.Since(crashed).Round(10*time.Millisecond))

	// C is cut off from the API server (it still gossips) and loses the
	// Lease; the API server takes creates again, for the others.
	cutC, err := c.IsolateFromAPI()
	if err != nil {
		t.Fatal(err)
	}
	cCut := time.Now()
	deleteWebhook()
	var l string
	eventually(t, time.Minute, "another agent takes the Lease from C", func(ctx context.Context) (bool, error) {
		var err error
		l, err = coordinator(ctx, client)
		return l != "" && l != c.Name(), err
	})
	eventually(t, 30*time.Second, "C no longer leads", func(ctx context.Context) (bool, error) {
		v, err := safetyMetric(ctx, c, "haagent_failover_coordinator")
		return err == nil && v == 0, err
	})
	pending, _ := safetyMetric(ctx, c, "haagent_record_pending_writes")
	dropped, _ := safetyMetric(ctx, c, "haagent_record_pending_dropped_total")
	t.Logf("%s holds the Lease %s after C was cut off; C: %v writes queued, %v dropped", l, time.Since(cCut).Round(10*time.Millisecond), pending, dropped)
	if err := cutC.Remove(); err != nil {
		t.Fatal(err)
	}

	// X comes back and is left alone (or handed back, if the new
	// coordinator failed it over meanwhile).
	if err := x.Return(ctx); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	if err := x.Agent().WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, tc.nodes, time.Minute, "every agent sees 5 alive and ready members after X's return", allAliveAndReady(names))
	var before []record.NodeFailover
	eventually(t, time.Minute, x.Name()+" healthy, with no failover under way", func(ctx context.Context) (bool, error) {
		before = safetyRecordsOf(failoverRecords(ctx, t, tc.cp), x.Name())
		for _, r := range before {
			if r.Active() {
				return false, fmt.Errorf("record %s in phase %s", r.Name, r.Status.Phase)
			}
		}
		node, err := client.CoreV1().Nodes().Get(ctx, x.Name(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if node.Spec.Unschedulable || len(node.Spec.Taints) > 0 || nodeReadyStatus(node) != corev1.ConditionTrue {
			return false, fmt.Errorf("unschedulable %v, taints %v, ready %s", node.Spec.Unschedulable, node.Spec.Taints, nodeReadyStatus(node))
		}
		return true, nil
	})
	for _, r := range before {
		t.Logf("legitimate record of %s: %s, phase %s: %s", x.Name(), r.Name, r.Status.Phase, r.Status.Message)
	}
	t.Logf("%s back and healthy %s after its return", x.Name(), time.Since(returned).Round(10*time.Millisecond))

	// C leads again: every other node loses the API server for a moment,
	// so that the holder cannot renew and only C can take the Lease.
	steer := time.Now()
	var cuts []*cluster.Fault
	for _, n := range tc.nodes {
		if n == c {
			continue
		}
		f, err := n.IsolateFromAPI()
		if err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, f)
	}
	safetyLeader(t, tc, []*cluster.Node{c}, time.Minute)
	led := time.Now()
	t.Logf("C (%s) leads again %s after the others lost the API server", c.Name(), led.Sub(steer).Round(10*time.Millisecond))
	// Its first passes load the records and flush whatever it had queued.
	time.Sleep(8 * time.Second)
	for _, f := range cuts {
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
	}
	waitMembers(t, tc.nodes, time.Minute, "every agent alive and ready after C's term", allAliveAndReady(names))
	time.Sleep(10 * time.Second)
	holder, _ := coordinator(ctx, client)
	t.Logf("timeline (0 = X's crash; C cut off at %+.3fs, X returned at %+.3fs, C led again at %+.3fs; holder now %s):\n%s",
		cCut.Sub(crashed).Seconds(), returned.Sub(crashed).Seconds(), led.Sub(crashed).Seconds(), holder, tl.Table())

	after := safetyRecordsOf(failoverRecords(ctx, t, tc.cp), x.Name())
	if len(after) != len(before) {
		t.Errorf("%s has %d failover records after C led again, want the %d it had before", x.Name(), len(after), len(before))
	}
	for _, r := range after {
		if r.Active() {
			t.Errorf("active failover record of the live node %s: %s, phase %s, confirmed %v", x.Name(), r.Name, r.Status.Phase, r.Status.Confirmed)
		}
	}
	// Nothing done to any node from the moment C could lead again.
	noActionOn(t, tl, names, steer.Sub(crashed))
	for _, e := range tl.All(cluster.EventNodeNotReady, x.Name()) {
		if e.At.After(steer) {
			t.Errorf("%s's Ready condition set to %s at %+.3fs, after C could lead again", x.Name(), e.Detail, e.Since.Seconds())
		}
	}
	node, err := client.CoreV1().Nodes().Get(ctx, x.Name(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Spec.Unschedulable || len(node.Spec.Taints) > 0 {
		t.Errorf("%s: unschedulable %v, taints %v", x.Name(), node.Spec.Unschedulable, node.Spec.Taints)
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Reason == evict.ConditionReasonNodeDead {
			t.Errorf("%s's Ready condition is haagent's: %s %s", x.Name(), cond.Status, cond.Message)
		}
	}
}

// TestSafety_skewedSuccessorKeepsTheFenceBound: the coordinator confirms
// the node of a StatefulSet pod dead and waits out the fence bound; it dies
// midway, and a successor whose clock runs safetyClockOffset ahead takes
// the record over. Timed from the record's confirmation, written by the
// first coordinator's clock, the bound would be over at once on the
// successor's; it must be timed on the successor's own clock from its
// takeover, so the out-of-service taint and the pod's force-deletion come
// at least the fence bound after the takeover.
func TestSafety_skewedSuccessorKeepsTheFenceBound(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 5, agent: failoverAgents})
	names := nodeNames(tc.nodes)
	client := tc.cp.Client()
	ctx := context.Background()
	waitMembers(t, tc.nodes, 2*time.Minute, "every agent sees 5 alive and ready members", allAliveAndReady(names))
	old := safetyLeader(t, tc, tc.nodes, time.Minute)

	// Every other agent restarts with its coordinator clock ahead, one at
	// a time, so that the coordinator keeps its majority and the Lease.
	skew := clockOffsetEnv + "=" + safetyClockOffset.String()
	for _, n := range tc.nodes {
		if n == old {
			continue
		}
		if err := n.StopAgent(30 * time.Second); err != nil {
			t.Errorf("stop %s's agent: %v", n.Name(), err)
		}
		n.Agent().SetEnv([]string{skew})
		if err := n.StartAgent(); err != nil {
			t.Fatal(err)
		}
		if err := n.Agent().WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		environ, err := os.ReadFile("/proc/" + strconv.Itoa(n.Agent().PID()) + "/environ")
		if err != nil || !slices.Contains(strings.Split(string(environ), "\x00"), skew) {
			t.Fatalf("%s's agent runs without %s (%v)", n.Name(), skew, err)
		}
		waitMembers(t, tc.nodes, time.Minute, n.Name()+"'s agent back with its clock ahead", allAliveAndReady(names))
	}
	if holder, err := coordinator(ctx, client); err != nil || holder != old.Name() {
		t.Fatalf("the Lease moved during the restarts: holder %q (%v), want %s", holder, err, old.Name())
	}

	// db-0 runs on a node other than the coordinator's.
	var want *cluster.Node
	for _, n := range tc.nodes {
		if n != old && want == nil {
			want = n
		}
	}
	on := startDB(t, client, want.Name())
	if on == old.Name() {
		t.Fatalf("db-0 runs on the coordinator's node %s", on)
	}
	victim := safetyNode(t, tc.nodes, on)
	t.Logf("coordinator %s (clock right), db-0 on %s, every other agent's clock %s ahead", old.Name(), victim.Name(), safetyClockOffset)

	tl, crashed := crashWatched(t, ctx, tc, victim)
	defer tl.Stop()
	eventually(t, time.Minute, "the record of "+victim.Name()+" at AwaitingFence", func(ctx context.Context) (bool, error) {
		r, ok := recordOf(failoverRecords(ctx, t, tc.cp), victim.Name())
		if !ok {
			return false, nil
		}
		return r.Status.Phase == record.PhaseAwaitingFence, fmt.Errorf("phase %s", r.Status.Phase)
	})
	killed := time.Now()
	if err := old.CrashAgent(); err != nil {
		t.Fatal(err)
	}
	if r, _ := recordOf(failoverRecords(ctx, t, tc.cp), victim.Name()); r.Status.Fenced != nil {
		t.Fatalf("%s was fenced by the first coordinator before it died: %+v", victim.Name(), r.Status)
	}
	t.Logf("AwaitingFence reached; the coordinator's agent killed %+.3fs after the crash", killed.Sub(crashed).Seconds())

	var successor string
	var tookLease time.Time
	eventually(t, time.Minute, "a successor holds the Lease", func(ctx context.Context) (bool, error) {
		h, err := coordinator(ctx, client)
		if err == nil && h != "" && h != old.Name() {
			successor, tookLease = h, time.Now()
			return true, nil
		}
		return false, err
	})
	var elsewhere string
	eventually(t, 2*time.Minute, "db-0 running and ready on another node", func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		elsewhere = p.Spec.NodeName
		return elsewhere != victim.Name() && p.DeletionTimestamp == nil && podReady(p), nil
	})
	rec, _ := recordOf(failoverRecords(ctx, t, tc.cp), victim.Name())
	var oos time.Time
	for _, e := range tl.All(cluster.EventTainted, victim.Name()) {
		if strings.HasPrefix(e.Detail, corev1.TaintNodeOutOfService) {
			oos = e.At
			break
		}
	}
	resumed, logged := safetyLogTime(safetyNode(t, tc.nodes, successor).Agent().LogPath(), "resuming failovers", killed)
	since := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return fmt.Sprintf("%+.3fs", at.Sub(crashed).Seconds())
	}
	t.Logf("timeline (0 = crash of %s): old coordinator killed %s, %s holds the Lease by %s, resumes the record at %s (its log), out-of-service %s, db-0 ready on %s; fence bound %s\n%s",
		victim.Name(), since(killed), successor, since(tookLease), since(resumed), since(oos), elsewhere, fenceBound, tl.Table())

	if oos.IsZero() {
		t.Fatalf("%s never got the out-of-service taint", victim.Name())
	}
	if d := oos.Sub(killed); d < fenceBound {
		t.Errorf("out-of-service %s after the old coordinator died, before the fence bound %s", d.Round(time.Millisecond), fenceBound)
	}
	if d := oos.Sub(tookLease); d < fenceBound-time.Second {
		t.Errorf("out-of-service %s after the successor was seen holding the Lease, want at least the fence bound %s - 1s", d.Round(time.Millisecond), fenceBound)
	}
	if !logged {
		t.Errorf("no \"resuming failovers\" line after %s in %s's log", killed.Format("15:04:05.000"), successor)
	} else if d := oos.Sub(resumed); d < fenceBound-time.Second {
		t.Errorf("out-of-service %s after the successor resumed the record (its log), want at least the fence bound %s - 1s", d.Round(time.Millisecond), fenceBound)
	}
	if e, ok := tl.First(cluster.EventPodDeleting, "default/db-0"); !ok || e.At.Before(oos) || e.At.Sub(killed) < fenceBound {
		t.Errorf("db-0 deleted at %+v: before the out-of-service taint or the fence bound", e)
	}
	for _, e := range tl.All(cluster.EventPodReady, "default/db-0") {
		if e.Since > 0 && e.At.Before(oos) {
			t.Errorf("a db-0 was ready on %s at %+.3fs, before %s was taken out of service", e.Node, e.Since.Seconds(), victim.Name())
		}
	}
	// The successor's clock really was ahead: it stamped Fenced, the first
	// coordinator Confirmed.
	if rec.Status.Confirmed == nil || rec.Status.Fenced == nil {
		t.Errorf("record lacks confirmed or fenced: %+v", rec.Status)
	} else {
		gap := rec.Status.Fenced.Sub(rec.Status.Confirmed.Time)
		t.Logf("record: confirmed %s (old coordinator's clock), fenced %s (successor's clock): %s apart, %s in real time",
			rec.Status.Confirmed.Format("15:04:05.000"), rec.Status.Fenced.Format("15:04:05.000"), gap.Round(time.Millisecond), (gap - safetyClockOffset).Round(time.Millisecond))
		if gap < safetyClockOffset {
			t.Errorf("fenced - confirmed = %s, want at least the successor's clock offset %s: the successor's clock was not ahead", gap, safetyClockOffset)
		}
	}
	noActionOn(t, tl, []string{old.Name()}, 0)
}
