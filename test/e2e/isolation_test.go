package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/test/cluster"
)

// Settings of the isolation tests. A cut-off node knows it is isolated
// once it has heard from no majority for isolationTimeout (the fast gossip
// profile's) and its apiserver check has failed once; it fences after
// isolationFenceAfter more, and its fence command has
// isolationCommandTimeout to run. The fencer looks every
// fenceCheckInterval (not a flag).
const (
	isolationTimeout        = 2 * time.Second
	isolationFenceAfter     = 2 * time.Second
	fenceCheckInterval      = time.Second
	isolationCommandTimeout = 2 * time.Second
)

// isolationFenceBound is the shortest --fence-bound the coordinator
// accepts, and the tests run at it, so that a fence later than the formula
// says shows up as a pod on two nodes:
//
//	max(--isolation-timeout, apiserver check period + timeout)
//	+ --fence-after + 2 x fence check interval + --fence-command-timeout
//	+ margin, max(2s, 10% of the sum)
//
// The apiserver check is the harness's (DefaultAgentChecks: every 2s, 1s
// timeout): max(2s, 3s) + 2s + 2s + 2s = 9s, margin 2s: 11s.
var isolationFenceBound = func() time.Duration {
	var apiCheck time.Duration
	for _, c := range cluster.DefaultAgentChecks(netip.IPv4Unspecified()) {
		if c.APIServer != nil {
			apiCheck = time.Duration(c.PeriodSeconds+c.TimeoutSeconds) * time.Second
		}
	}
	sum := max(isolationTimeout, apiCheck) + isolationFenceAfter + 2*fenceCheckInterval + isolationCommandTimeout
	return sum + max(2*time.Second, sum/10)
}()

// fenceGrace is how long after db-0 runs elsewhere a test waits for a
// fence that is already late.
const fenceGrace = 45 * time.Second

func isolationAgents(_ int, c *cluster.AgentConfig) {
	c.ExtraArgs = append(c.ExtraArgs,
		"--isolation-timeout="+isolationTimeout.String(),
		"--fence-after="+isolationFenceAfter.String(),
		"--fence-command-timeout="+isolationCommandTimeout.String(),
		"--fence-bound="+isolationFenceBound.String())
}

// isolationCluster starts 7 fencing nodes and the db StatefulSet, steered
// onto a node other than the coordinator's, and returns the node db-0
// runs on.
func isolationCluster(t *testing.T, g ground) (*testCluster, *cluster.Node) {
	t.Helper()
	tc := startCluster(t, clusterOptions{nodes: 7, agent: isolationAgents, fence: true, ground: g})
	client := tc.cp.Client()
	waitMembers(t, tc.nodes, time.Minute, "every agent sees 7 alive and ready members", allAliveAndReady(nodeNames(tc.nodes)))
	var holder string
	eventually(t, time.Minute, "a coordinator", func(ctx context.Context) (bool, error) {
		var err error
		holder, err = coordinator(ctx, client)
		return holder != "", err
	})
	var want *cluster.Node
	for _, n := range tc.nodes {
		if n.Name() != holder {
			want = n
		}
	}
	on := startDB(t, client, want.Name())
	waitContainersRun(t, tc, "default/db-0", on)
	for _, n := range tc.nodes {
		if n.Name() == on {
			t.Logf("coordinator %s; db-0 runs on %s", holder, on)
			return tc, n
		}
	}
	t.Fatalf("db-0 runs on %q, not one of the nodes", on)
	return nil, nil
}

// cutOff drops every packet to and from the node: peers, the API server
// (its kubelet's and agent's connections go through the node's API proxy,
// at its address) and its kubelet port. Its kubelet and agent keep running.
func cutOff(t *testing.T, tc *testCluster, victim *cluster.Node, tl *cluster.Timeline) time.Time {
	t.Helper()
	cut := time.Now()
	if _, err := tc.faults.Isolate(victim.IP()); err != nil {
		t.Fatal(err)
	}
	tl.Fault(cut, victim.Name())
	return cut
}

// checkFencedBeforeSecondCopy waits until db-0 runs Ready on another node,
// then checks that the cut-off node fenced itself, before the coordinator
// took the node out of service, and that the journal never saw db-0 (or
// any pod) on two nodes at once. It logs the timeline.
func checkFencedBeforeSecondCopy(t *testing.T, tc *testCluster, victim *cluster.Node, tl *cluster.Timeline, cut time.Time) {
	t.Helper()
	client := tc.cp.Client()
	var elsewhere string
	readyAfter := eventually(t, time.Minute, "db-0 running and ready on a node other than "+victim.Name(), func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		elsewhere = p.Spec.NodeName
		return elsewhere != victim.Name() && p.DeletionTimestamp == nil && podReady(p), nil
	})
	waitContainersRun(t, tc, "default/db-0", elsewhere)
	ready := cut.Add(readyAfter)
	if e, ok := firstReadyOn(tl, "default/db-0", elsewhere); ok {
		ready = e.At
	}

	var fenced time.Time
	// The fence is due before the new db-0. Waiting longer only serves a
	// failure: its timeline and journal then show how late the fence came.
	waitCtx, cancel := context.WithTimeout(context.Background(), fenceGrace)
	defer cancel()
	for fenced.IsZero() && waitCtx.Err() == nil {
		if at, ok := victim.Fenced(); ok {
			fenced = at
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	var outOfService time.Time
	for _, e := range tl.All(cluster.EventTainted, victim.Name()) {
		if strings.HasPrefix(e.Detail, "node.kubernetes.io/out-of-service") {
			outOfService = e.At
			break
		}
	}
	since := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return fmt.Sprintf("%+.3fs", at.Sub(cut).Seconds())
	}
	t.Logf("timeline of the cut of %s: cut +0.000s, fenced %s, out-of-service %s, db-0 ready on %s %s (fence bound %s)\n%s\ncontainer journal:\n%s",
		victim.Name(), since(fenced), since(outOfService), elsewhere, since(ready), isolationFenceBound, tl.Table(), tc.journal.Table(cut))

	if fenced.IsZero() {
		t.Errorf("%s never fenced itself: its agent had not run its fence command %s after db-0 ran elsewhere", victim.Name(), fenceGrace)
	} else if !outOfService.IsZero() && !fenced.Before(outOfService) {
		t.Errorf("%s fenced at %s, not before the coordinator took it out of service at %s: the fence bound %s is too short",
			victim.Name(), since(fenced), since(outOfService), isolationFenceBound)
	}
	if _, err := os.Stat(tc.fenceFile(victim.Name())); err != nil {
		t.Errorf("fence file of %s: %v", victim.Name(), err)
	}
	if over := tc.journal.Overlaps(); len(over) > 0 {
		t.Errorf("pods that ran on two nodes at once: %s", strings.Join(over, ", "))
	}
	runs := tc.journal.RunsOf("default/db-0")
	if len(runs) < 2 || runs[0].Node != victim.Name() || runs[0].StopReason != "fenced" {
		t.Errorf("journal of db-0 = %+v, want a first run on %s stopped by the fence, then one elsewhere", runs, victim.Name())
	}
}

// firstReadyOn is the first pod-ready event of pod on node after the fault.
func firstReadyOn(tl *cluster.Timeline, pod, node string) (cluster.Event, bool) {
	for _, e := range tl.All(cluster.EventPodReady, pod) {
		if e.Since > 0 && e.Node == node {
			return e, true
		}
	}
	return cluster.Event{}, false
}

// isolationCut starts isolationCluster and a Timeline (stopped when the
// test ends), and cuts the node of db-0 off.
func isolationCut(t *testing.T, g ground) (*testCluster, *cluster.Node, *cluster.Timeline, time.Time) {
	t.Helper()
	tc, victim := isolationCluster(t, g)
	tl, err := cluster.StartTimeline(context.Background(), tc.cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tl.Stop)
	return tc, victim, tl, cutOff(t, tc, victim, tl)
}

// TestIsolation_cutOffNodeNeverRunsAPodTwice cuts the node of a
// StatefulSet pod off from everything, its kubelet and agent still
// running. The majority fails it over and, after the fence bound, starts
// db-0 elsewhere; by then the node's own agent must have found itself
// isolated and fenced it, so that db-0 never runs twice (rule 5 of
// docs/design.md). On both grounds: on the hollow one the cut is in the
// node's own network stack and the evidence of where db-0 ran is the
// container runtime's.
func TestIsolation_cutOffNodeNeverRunsAPodTwice(t *testing.T) {
	grounds(t, func(t *testing.T, g ground) {
		tc, victim, tl, cut := isolationCut(t, g)
		checkFencedBeforeSecondCopy(t, tc, victim, tl, cut)
	})
}

// TestIsolation_restartedAgentOnCutOffNodeStillFences restarts the agent of
// the cut-off node right after the cut. The new agent joins nobody and
// cannot reach the API server: isolated by definition, it must fence all
// the same, in time.
func TestIsolation_restartedAgentOnCutOffNodeStillFences(t *testing.T) {
	grounds(t, func(t *testing.T, g ground) {
		tc, victim, tl, cut := isolationCut(t, g)
		if err := victim.CrashAgent(); err != nil {
			t.Fatal(err)
		}
		if err := victim.StartAgent(); err != nil {
			t.Fatal(err)
		}
		t.Logf("agent of %s restarted %s after the cut", victim.Name(), time.Since(cut).Round(time.Millisecond))
		checkFencedBeforeSecondCopy(t, tc, victim, tl, cut)
	})
}
