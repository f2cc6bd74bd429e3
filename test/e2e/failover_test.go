package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/test/cluster"
)

// Settings of the failover tests: a returned node is handed back after 5 s
// of health; an isolated agent would fence itself 3 s after it counts
// itself isolated, so stateful pods of a dead node may go 10 s after it is
// confirmed dead: the least bound the agent accepts, max(--isolation-timeout
// (2 s), the apiserver check's period + timeout (3 s)) + --fence-after
// (3 s) + 2 x 1 s fence checks + no action time (none) + the 2 s least
// margin. The isolation timeout is pinned at the auto profile's own at
// this size: unpinned, the bound is checked against its largest band's
// (5 s), since a cut-off node may be in another band.
const (
	fenceBound    = 10 * time.Second
	stabilization = 5 * time.Second
)

func failoverAgents(_ int, c *cluster.AgentConfig) {
	c.ExtraArgs = append(c.ExtraArgs,
		"--stabilization="+stabilization.String(), "--fence-after=3s", "--isolation-timeout=2s", "--fence-bound="+fenceBound.String())
}

// coordinator returns the holder of the coordinator Lease.
func coordinator(ctx context.Context, client kubernetes.Interface) (string, error) {
	l, err := client.CoordinationV1().Leases("haagent").Get(ctx, "haagent-coordinator", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}

func failoverRecords(ctx context.Context, t *testing.T, cp *cluster.ControlPlane) []record.NodeFailover {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	store, err := record.NewStore(record.DefaultConfig(), record.Deps{Client: dyn})
	if err != nil {
		t.Fatal(err)
	}
	all, err := store.ListAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func recordOf(records []record.NodeFailover, node string) (record.NodeFailover, bool) {
	for _, r := range records {
		if r.Spec.Node == node {
			return r, true
		}
	}
	return record.NodeFailover{}, false
}

// noActionOn fails the test for every cordon, taint or pod deletion the
// timeline saw on the given nodes at or after from (relative to the fault).
func noActionOn(t *testing.T, tl *cluster.Timeline, nodes []string, from time.Duration) {
	t.Helper()
	for _, n := range nodes {
		for _, kind := range []cluster.EventKind{cluster.EventCordoned, cluster.EventTainted, cluster.EventPodDeleting} {
			for _, e := range tl.All(kind, n) {
				if e.Since >= from {
					t.Errorf("wrong action on healthy node %s: %s %s %s at %+.1fs", n, e.Kind, e.Subject, e.Detail, e.Since.Seconds())
				}
			}
		}
	}
}

func webPDB(app string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: app},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
		},
	}
}

// dbStatefulSet has one replica that prefers the nodes labelled
// haagent-e2e/stateful=here.
func dbStatefulSet() *appsv1.StatefulSet {
	labels := map[string]string{"app": "db"}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(int32(1)),
			ServiceName: "db",
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "db", Image: "registry.k8s.io/pause:3.10"}},
					Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
							Weight: 100,
							Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
								Key: "haagent-e2e/stateful", Operator: corev1.NodeSelectorOpIn, Values: []string{"here"},
							}}},
						}},
					}},
				},
			},
		},
	}
}

// startWorkload creates the web Deployment (one pod per node), its Service
// and PodDisruptionBudget, and waits until all pods are ready endpoints.
func startWorkload(t *testing.T, client kubernetes.Interface, replicas int32) {
	t.Helper()
	ctx := context.Background()
	ns := metav1.NamespaceDefault
	mustCreate(t, func() error {
		_, err := client.AppsV1().Deployments(ns).Create(ctx, webDeployment("web", replicas), metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := client.CoreV1().Services(ns).Create(ctx, webService("web"), metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, webPDB("web"), metav1.CreateOptions{})
		return err
	})
	eventually(t, 2*time.Minute, fmt.Sprintf("%d web pods ready endpoints", replicas), func(ctx context.Context) (bool, error) {
		ready, err := readyEndpointPods(ctx, client, ns, "web")
		return err == nil && len(ready) == int(replicas), err
	})
}

// failoverCluster starts n nodes whose agents fail over, a web Deployment
// of n replicas with its Service and PodDisruptionBudget, and a Timeline,
// stopped when the test ends.
// startDB labels node as the one for StatefulSet pods, creates the db
// StatefulSet and waits until db-0 is ready; it returns the node db-0 runs
// on (node, unless the label was already on another one).
func startDB(t *testing.T, client kubernetes.Interface, node string) string {
	t.Helper()
	ctx := context.Background()
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels["haagent-e2e/stateful"] = "here"
	if _, err := client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, func() error {
		_, err := client.AppsV1().StatefulSets("default").Create(ctx, dbStatefulSet(), metav1.CreateOptions{})
		return err
	})
	var on string
	eventually(t, 2*time.Minute, "db-0 ready", func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		on = p.Spec.NodeName
		return podReady(p), nil
	})
	return on
}

// crashWatched starts a timeline of the cluster, crashes victim and marks
// the crash on the timeline; it returns the timeline, which the caller
// stops, and the time of the crash.
func crashWatched(t *testing.T, ctx context.Context, tc *testCluster, victim *cluster.Node) (*cluster.Timeline, time.Time) {
	t.Helper()
	tl, err := cluster.StartTimeline(ctx, tc.cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	crashed, err := victim.Crash()
	if err != nil {
		tl.Stop()
		t.Fatal(err)
	}
	tl.Fault(crashed, victim.Name())
	return tl, crashed
}

func failoverCluster(t *testing.T, n int, g ground) (*testCluster, *cluster.Timeline) {
	t.Helper()
	tc := startCluster(t, clusterOptions{nodes: n, agent: failoverAgents, ground: g})
	waitMembers(t, tc.nodes, 2*time.Minute, fmt.Sprintf("every agent sees %d alive and ready members", n),
		allAliveAndReady(nodeNames(tc.nodes)))
	startWorkload(t, tc.cp.Client(), int32(n))
	tl, err := cluster.StartTimeline(context.Background(), tc.cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tl.Stop)
	return tc, tl
}

// TestFailover_crashOfCoordinatorNode crashes the node of the coordinator
// itself, which also runs a StatefulSet pod. Another agent must take the
// Lease and fail the node over: cordon, taints, pods out of the endpoints,
// the web pod evicted and replaced; the StatefulSet pod only after the
// fence bound, so that two copies never run. When the node returns it is
// handed back, and its record is complete. On both grounds.
func TestFailover_crashOfCoordinatorNode(t *testing.T) {
	grounds(t, func(t *testing.T, g ground) {
		tc := startCluster(t, clusterOptions{nodes: 7, agent: failoverAgents, ground: g})
		names := nodeNames(tc.nodes)
		client := tc.cp.Client()
		ctx := context.Background()
		waitMembers(t, tc.nodes, time.Minute, "every agent sees 7 alive and ready members", allAliveAndReady(names))

		var holder string
		eventually(t, time.Minute, "a coordinator", func(ctx context.Context) (bool, error) {
			var err error
			holder, err = coordinator(ctx, client)
			return holder != "", err
		})
		var victim *cluster.Node
		var others []string
		for _, n := range tc.nodes {
			if n.Name() == holder {
				victim = n
			} else {
				others = append(others, n.Name())
			}
		}
		if victim == nil {
			t.Fatalf("coordinator %q is not one of the nodes", holder)
		}
		t.Logf("coordinator is %s: crashing its node", holder)

		startWorkload(t, client, 7)
		if on := startDB(t, client, victim.Name()); on != victim.Name() {
			t.Fatalf("db-0 runs on %s, want %s", on, victim.Name())
		}
		waitContainersRun(t, tc, "default/db-0", victim.Name())

		tl, crashed := crashWatched(t, ctx, tc, victim)
		defer tl.Stop()

		waitCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		for _, owner := range []string{"Deployment/default/web", "StatefulSet/default/db"} {
			if _, err := tl.WaitFor(waitCtx, cluster.EventOwnerRecovered, owner); err != nil {
				t.Fatalf("%s not recovered: %v\n%s", owner, err, tl.Table())
			}
		}
		t.Logf("timeline of the crash of the coordinator's node %s:\n%s", victim.Name(), tl.Table())

		for _, kind := range []cluster.EventKind{cluster.EventCordoned, cluster.EventPodNotReady, cluster.EventEndpointRemoved, cluster.EventPodDeleting} {
			if _, ok := tl.First(kind, victim.Name()); !ok {
				t.Errorf("timeline has no %s on %s", kind, victim.Name())
			}
		}
		var tainted bool
		for _, e := range tl.All(cluster.EventTainted, victim.Name()) {
			tainted = tainted || strings.HasPrefix(e.Detail, "haagent.io/dead")
		}
		if !tainted {
			t.Errorf("%s never got the haagent.io/dead taint", victim.Name())
		}
		noActionOn(t, tl, others, 0)

		if now, err := coordinator(ctx, client); err != nil || now == victim.Name() {
			t.Errorf("coordinator after the crash = %q (%v), want another node", now, err)
		}
		var rec record.NodeFailover
		eventually(t, time.Minute, "the failover record of "+victim.Name()+" past Recovered", func(ctx context.Context) (bool, error) {
			r, ok := recordOf(failoverRecords(ctx, t, tc.cp), victim.Name())
			rec = r
			return ok && r.Status.WorkloadsRecovered != nil, nil
		})
		// With the failover under way, the coordinator's notice stops the
		// survivors' repeats of their dead votes.
		eventually(t, time.Minute, "every survivor skips repeats of its dead vote about "+victim.Name(), func(ctx context.Context) (bool, error) {
			for _, n := range tc.nodes {
				if n == victim {
					continue
				}
				m, err := n.Agent().Metrics(ctx)
				if err != nil {
					return false, err
				}
				if v, _ := m.Value("haagent_agreement_votes_suppressed_total"); v == 0 {
					return false, nil
				}
			}
			return true, nil
		})
		st := rec.Status
		if len(st.Votes) < 4 {
			t.Errorf("record has %d votes, want at least a quorum of 4 of 7", len(st.Votes))
		}
		for name, ts := range map[string]*metav1.MicroTime{"lastHeard": st.LastHeard, "confirmed": st.Confirmed, "cordoned": st.Cordoned,
			"tainted": st.Tainted, "podsNotReady": st.PodsNotReady, "evictionsAccepted": st.EvictionsAccepted, "fenced": st.Fenced} {
			if ts == nil {
				t.Errorf("record has no %s timestamp: %+v", name, st)
			}
		}
		// Never two copies: the old db-0 went only after the fence bound, and
		// the new one was ready only after that.
		if st.Confirmed != nil && st.Fenced != nil {
			if wait := st.Fenced.Sub(st.Confirmed.Time); wait < fenceBound {
				t.Errorf("out-of-service %s after confirmation, before the fence bound %s", wait, fenceBound)
			}
			if e, ok := tl.First(cluster.EventPodDeleting, "default/db-0"); !ok || e.At.Before(st.Confirmed.Add(fenceBound)) {
				t.Errorf("db-0 deleted at %+v, before the fence bound", e)
			}
			for _, e := range tl.All(cluster.EventPodReady, "default/db-0") {
				if e.Since > 0 && e.At.Before(st.Fenced.Time) {
					t.Errorf("a db-0 was ready at %+.1fs, before the node was fenced", e.Since.Seconds())
				}
			}
		}
		t.Logf("record: detect %s, repair %s, phase %s", st.TimeToDetect, st.TimeToRepair, st.Phase)
		// And where the containers ran (the container runtime's record on the
		// hollow ground): db-0 first on the victim until the crash, then
		// elsewhere, never on two nodes at once.
		if p, err := client.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{}); err != nil {
			t.Error(err)
		} else {
			waitContainersRun(t, tc, "default/db-0", p.Spec.NodeName)
		}
		t.Logf("container journal:\n%s", tc.journal.Table(crashed, "default/db-0"))
		if over := tc.journal.Overlaps(); len(over) > 0 {
			t.Errorf("pods that ran on two nodes at once: %s", strings.Join(over, ", "))
		}
		if runs := tc.journal.RunsOf("default/db-0"); len(runs) < 2 || runs[0].Node != victim.Name() || runs[0].StopReason != "crashed" || runs[1].Node == victim.Name() {
			t.Errorf("journal of db-0 = %+v, want a first run on %s ended by the crash, then one elsewhere", runs, victim.Name())
		}

		// The node returns: after the stabilization period it is handed back.
		returned := time.Now()
		if err := victim.Return(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, victim.Name()+"'s failover completed", func(ctx context.Context) (bool, error) {
			r, ok := recordOf(failoverRecords(ctx, t, tc.cp), victim.Name())
			rec = r
			return ok && r.Status.Phase == record.PhaseCompleted, nil
		})
		t.Logf("%s handed back %s after its return", victim.Name(), time.Since(returned).Round(10*time.Millisecond))
		// haagent's own cordon and taints are gone when it completes; the
		// node lifecycle controller removes the unschedulable taint it
		// mirrors from the cordon a moment later.
		eventually(t, 30*time.Second, victim.Name()+" schedulable and without taints after the hand-back", func(ctx context.Context) (bool, error) {
			node, err := client.CoreV1().Nodes().Get(ctx, victim.Name(), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if node.Spec.Unschedulable || len(node.Spec.Taints) > 0 {
				return false, fmt.Errorf("unschedulable %t, taints %v", node.Spec.Unschedulable, node.Spec.Taints)
			}
			return true, nil
		})
		if rec.Status.Uncordoned == nil || rec.Status.NodeReturned == nil || rec.Status.TimeToRepair == "" {
			t.Errorf("completed record lacks timestamps: %+v", rec.Status)
		}
		out, err := exec.Command(haagentBinary(t), "report", "--kubeconfig", tc.cp.AdminKubeconfig()).CombinedOutput()
		if err != nil {
			t.Fatalf("haagent report: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), victim.Name()) || !strings.Contains(string(out), "Completed") {
			t.Errorf("haagent report does not show the completed failover of %s:\n%s", victim.Name(), out)
		}
		t.Logf("haagent report:\n%s", out)
	})
}

// TestFailover_agentFaultsAreNotNodeDeaths: an agent crash on a live node,
// a stalled agent and a rolling restart of every agent cause no action.
func TestFailover_agentFaultsAreNotNodeDeaths(t *testing.T) {
	tc, tl := failoverCluster(t, 5, fakeGround)
	names := nodeNames(tc.nodes)
	client := tc.cp.Client()
	ctx := context.Background()
	tl.Fault(time.Now(), names...)

	// The agent of node-5 dies; its kubelet lives on.
	if err := tc.nodes[4].CrashAgent(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, tc.nodes[:4], time.Minute, "node-5's agent dead everywhere", memberIs("node-5", "dead"))
	eventually(t, time.Minute, "the coordinator reports node-5 agent-down", func(ctx context.Context) (bool, error) {
		holder, err := coordinator(ctx, client)
		if err != nil || holder == "" {
			return false, err
		}
		for _, n := range tc.nodes[:4] {
			if n.Name() == holder {
				m, err := n.Agent().Metrics(ctx)
				if err != nil {
					return false, err
				}
				v, _ := m.Value("haagent_failover_agent_down_nodes")
				return v == 1, nil
			}
		}
		return false, nil
	})
	time.Sleep(5 * time.Second)
	if err := tc.nodes[4].StartAgent(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, tc.nodes, time.Minute, "node-5's agent back", allAliveAndReady(names))

	// node-4's agent stalls for 4 s (SIGSTOP), then goes on.
	if err := tc.nodes[3].PauseAgent(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	if err := tc.nodes[3].ResumeAgent(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, tc.nodes, time.Minute, "node-4's agent back", allAliveAndReady(names))

	// A rolling restart of every agent, one at a time.
	for _, n := range tc.nodes {
		if err := n.StopAgent(30 * time.Second); err != nil {
			t.Errorf("stop %s's agent: %v", n.Name(), err)
		}
		if err := n.StartAgent(); err != nil {
			t.Fatal(err)
		}
		waitMembers(t, tc.nodes, time.Minute, n.Name()+"'s agent back after its restart", allAliveAndReady(names))
	}
	time.Sleep(5 * time.Second)
	t.Logf("timeline:\n%s", tl.Table())
	noActionOn(t, tl, names, -time.Hour)
	if recs := failoverRecords(ctx, t, tc.cp); len(recs) != 0 {
		t.Errorf("%d failover records after agent-only faults, want none: %+v", len(recs), recs)
	}
}

func ips(nodes []*cluster.Node) []netip.Addr {
	out := make([]netip.Addr, len(nodes))
	for i, n := range nodes {
		out[i] = n.IP()
	}
	return out
}

// TestFailover_partitions cuts 7 nodes 5|2: the side of five may fail the
// two over, never the reverse. Healed, the two are handed back. Then one
// agent leaves and the six are cut 3|3: nobody acts.
func TestFailover_partitions(t *testing.T) {
	grounds(t, func(t *testing.T, g ground) {
		tc, tl := failoverCluster(t, 7, g)
		names := nodeNames(tc.nodes)
		ctx := context.Background()

		major, minor := tc.nodes[:5], tc.nodes[5:]
		cut := time.Now()
		split, err := tc.faults.Partition(ips(major), ips(minor))
		if err != nil {
			t.Fatal(err)
		}
		tl.Fault(cut, nodeNames(minor)...)
		waitCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		for _, n := range minor {
			if _, err := tl.WaitFor(waitCtx, cluster.EventCordoned, n.Name()); err != nil {
				t.Errorf("the majority did not fail %s over: %v", n.Name(), err)
			}
		}
		time.Sleep(5 * time.Second)
		noActionOn(t, tl, nodeNames(major), -time.Hour)
		t.Logf("timeline of the 5|2 partition:\n%s", tl.Table())

		if err := split.Remove(); err != nil {
			t.Fatal(err)
		}
		waitMembers(t, tc.nodes, 2*time.Minute, "all 7 alive again after the heal", allAliveAndReady(names))
		eventually(t, 2*time.Minute, "the two nodes handed back", func(ctx context.Context) (bool, error) {
			for _, n := range minor {
				r, ok := recordOf(failoverRecords(ctx, t, tc.cp), n.Name())
				if !ok || r.Status.Phase != record.PhaseCompleted {
					return false, nil
				}
			}
			return true, nil
		})

		// Even split: node-7's agent leaves, the six left are cut 3|3.
		if err := tc.nodes[6].StopAgent(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		six := tc.nodes[:6]
		// Normally left. A peer that gets memberlist's leave before the
		// "leaving" metadata records it dead (a known race, see the gossip
		// package): then it counts 7 known members, and each side of the cut
		// still has 3, short of a majority either way.
		gone := waitMembers(t, six, time.Minute, "node-7 gone", func(resp *api.MembersResponse) error {
			m, ok := cluster.Member(resp, "node-7")
			if !ok || (m.State.String() != "left" && m.State.String() != "dead") {
				return fmt.Errorf("node-7 is %v", m.State)
			}
			return nil
		})
		for _, n := range six {
			if resp, err := n.Agent().Members(ctx); err == nil {
				if m, _ := cluster.Member(resp, "node-7"); m.State.String() != "left" {
					t.Logf("%s records node-7 %s after its graceful stop (at %s)", n.Name(), m.State, gone[n.Name()].Format(time.RFC3339Nano))
				}
			}
		}
		evenCut := time.Now()
		even, err := tc.faults.Partition(ips(six[:3]), ips(six[3:]))
		if err != nil {
			t.Fatal(err)
		}
		waitMembers(t, six[:3], time.Minute, "the other half dead on one side", func(resp *api.MembersResponse) error {
			for _, n := range six[3:] {
				if m, _ := cluster.Member(resp, n.Name()); m.State.String() != "dead" {
					return fmt.Errorf("%s is %s", n.Name(), m.State)
				}
			}
			return nil
		})
		time.Sleep(20 * time.Second)
		noActionOn(t, tl, names, time.Since(cut)-time.Since(evenCut))
		if err := even.Remove(); err != nil {
			t.Fatal(err)
		}
		t.Logf("timeline with the 3|3 split:\n%s", tl.Table())
	})
}

// TestFailover_tooManyDeadPauses crashes 4 of 7 nodes at once: nothing is
// failed over, and every survivor reports failover paused.
func TestFailover_tooManyDeadPauses(t *testing.T) {
	tc, tl := failoverCluster(t, 7, fakeGround)
	names := nodeNames(tc.nodes)
	ctx := context.Background()
	survivors, dead := tc.nodes[:3], tc.nodes[3:]
	at := time.Now()
	for _, n := range dead {
		if _, err := n.Crash(); err != nil {
			t.Fatal(err)
		}
	}
	tl.Fault(at, nodeNames(dead)...)
	waitMembers(t, survivors, time.Minute, "4 nodes dead", func(resp *api.MembersResponse) error {
		for _, n := range dead {
			if m, _ := cluster.Member(resp, n.Name()); m.State.String() != "dead" {
				return fmt.Errorf("%s is %s", n.Name(), m.State)
			}
		}
		return nil
	})
	eventually(t, 30*time.Second, "every survivor reports failover paused", func(ctx context.Context) (bool, error) {
		for _, n := range survivors {
			m, err := n.Agent().Metrics(ctx)
			if err != nil {
				return false, err
			}
			if v, _ := m.Value("haagent_failover_paused"); v != 1 {
				return false, nil
			}
		}
		return true, nil
	})
	time.Sleep(15 * time.Second)
	t.Logf("timeline:\n%s", tl.Table())
	for _, n := range names {
		for _, kind := range []cluster.EventKind{cluster.EventCordoned, cluster.EventPodDeleting} {
			for _, e := range tl.All(kind, n) {
				if strings.Contains(e.Detail, "haagent") || kind == cluster.EventCordoned {
					t.Errorf("action while paused: %s %s on %s at %+.1fs", e.Kind, e.Subject, n, e.Since.Seconds())
				}
			}
		}
	}
	if recs := failoverRecords(ctx, t, tc.cp); len(recs) != 0 {
		t.Errorf("%d failover records while paused, want none", len(recs))
	}
}

// TestFailover_apiOutageDuringFailover cuts every node off from the API
// server right after a failover has started. The agents keep gossiping;
// when the API returns, a coordinator resumes the failover from its record
// and completes it: one record, nothing done to healthy nodes.
func TestFailover_apiOutageDuringFailover(t *testing.T) {
	tc, tl := failoverCluster(t, 5, fakeGround)
	ctx := context.Background()

	victim, survivors := tc.nodes[4], tc.nodes[:4]
	crashed, err := victim.Crash()
	if err != nil {
		t.Fatal(err)
	}
	tl.Fault(crashed, victim.Name())
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := tl.WaitFor(waitCtx, cluster.EventCordoned, victim.Name()); err != nil {
		t.Fatalf("failover did not start: %v\n%s", err, tl.Table())
	}

	var cuts []*cluster.Fault
	for _, n := range survivors {
		f, err := n.IsolateFromAPI()
		if err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, f)
	}
	outage := time.Now()
	t.Logf("API cut off from every node %s after the crash", outage.Sub(crashed).Round(10*time.Millisecond))
	// Gossip does not need the API: the survivors stay together.
	time.Sleep(20 * time.Second)
	waitMembers(t, survivors, 10*time.Second, "the survivors still gossip during the outage", func(resp *api.MembersResponse) error {
		for _, n := range survivors {
			if m, _ := cluster.Member(resp, n.Name()); m.State.String() != "alive" {
				return fmt.Errorf("%s is %s", n.Name(), m.State)
			}
		}
		return nil
	})
	for _, f := range cuts {
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("API back after %s", time.Since(outage).Round(10*time.Millisecond))

	waitCtx2, cancel2 := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel2()
	if _, err := tl.WaitFor(waitCtx2, cluster.EventOwnerRecovered, "Deployment/default/web"); err != nil {
		t.Fatalf("workload not recovered after the outage: %v\n%s", err, tl.Table())
	}
	eventually(t, time.Minute, "the failover record past Recovered", func(ctx context.Context) (bool, error) {
		r, ok := recordOf(failoverRecords(ctx, t, tc.cp), victim.Name())
		return ok && r.Status.WorkloadsRecovered != nil, nil
	})
	t.Logf("timeline across the API outage:\n%s", tl.Table())
	if recs := failoverRecords(ctx, t, tc.cp); len(recs) != 1 {
		t.Errorf("%d failover records, want exactly one", len(recs))
	}
	noActionOn(t, tl, nodeNames(survivors), -time.Hour)
}
