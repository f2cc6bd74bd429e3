package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/nodestatus"
	"github.com/haagent/haagent/test/cluster"
)

// allAliveAndReady checks that an agent sees exactly names, each alive and
// ready.
func allAliveAndReady(names []string) func(*api.MembersResponse) error {
	return func(resp *api.MembersResponse) error {
		if len(resp.Members) != len(names) {
			return fmt.Errorf("%d members, want %d", len(resp.Members), len(names))
		}
		for _, name := range names {
			m, ok := cluster.Member(resp, name)
			if !ok {
				return fmt.Errorf("%s is not a member", name)
			}
			if m.State.String() != "alive" || !m.Meta.Ready {
				return fmt.Errorf("%s: state %s, ready %v (%s)", name, m.State, m.Meta.Ready, m.Meta.Reason)
			}
		}
		return nil
	}
}

// TestAgents_membership runs five real agents, crashes one node (kubelet,
// agent and network at once) and stops another agent gracefully. The
// survivors must see the first dead and the second left. The control plane
// runs the tuned stock timings and a Deployment spread over the nodes, so
// the timeline also shows what the stock controllers do about the crash.
func TestAgents_membership(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 5, timings: tuned})
	names := nodeNames(tc.nodes)
	client := tc.cp.Client()
	ctx := context.Background()

	took := waitMembers(t, tc.nodes, time.Minute, "every agent sees 5 alive and ready members", allAliveAndReady(names))
	t.Logf("5 agents agree on 5 alive, ready members (%d answers)", len(took))

	const ns, app = metav1.NamespaceDefault, "web"
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, webDeployment(app, 5), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, webService(app), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "5 web pods Running and Ready, one per node, and their endpoints", func(ctx context.Context) (bool, error) {
		pods, err := readyPods(ctx, client, ns, app)
		if err != nil {
			return false, err
		}
		on := map[string]bool{}
		for _, p := range pods {
			on[p.Spec.NodeName] = true
		}
		if len(pods) != 5 || len(on) != 5 {
			return false, fmt.Errorf("%d ready pods on %d nodes: %s", len(pods), len(on), describePods(ctx, client, ns, app))
		}
		ready, err := readyEndpointIPs(ctx, client, ns, app)
		return err == nil && len(ready) == 5, err
	})

	tl, err := cluster.StartTimeline(ctx, tc.cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Stop()

	victim, survivors := tc.nodes[4], tc.nodes[:4]
	crashed, err := victim.Crash()
	if err != nil {
		t.Fatal(err)
	}
	tl.Fault(crashed, victim.Name())
	rules, err := tc.fw.Rules()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s crashed; %d firewall rules in place", victim.Name(), len(rules))

	seen := waitMembers(t, survivors, 60*time.Second, "every survivor reports "+victim.Name()+" dead",
		memberIs(victim.Name(), "dead"))
	var worst time.Duration
	for _, n := range survivors {
		d := seen[n.Name()].Sub(crashed)
		worst = max(worst, d)
		t.Logf("%s reports %s dead %s after the crash", n.Name(), victim.Name(), d.Round(10*time.Millisecond))
	}
	t.Logf("all survivors report %s dead within %s", victim.Name(), worst.Round(10*time.Millisecond))
	for _, n := range survivors {
		m, err := n.Agent().Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := m.Value("haagent_gossip_members", "state", "dead"); !ok || v != 1 {
			t.Errorf("%s: haagent_gossip_members{state=\"dead\"} = %v (present: %v), want 1", n.Name(), v, ok)
		}
	}

	// Graceful stop: the agent leaves, and its peers must say so rather
	// than take it for dead.
	leaver, rest := survivors[3], survivors[:3]
	stopped := time.Now()
	if err := leaver.StopAgent(30 * time.Second); err != nil {
		t.Errorf("%s's agent after SIGTERM: %v (want exit status 0)", leaver.Name(), err)
	}
	t.Logf("%s's agent exited %s after SIGTERM", leaver.Name(), time.Since(stopped).Round(10*time.Millisecond))
	left := waitMembers(t, rest, 30*time.Second, "every remaining agent reports "+leaver.Name()+" left",
		memberIs(leaver.Name(), "left"))
	for _, n := range rest {
		t.Logf("%s reports %s left %s after SIGTERM", n.Name(), leaver.Name(), left[n.Name()].Sub(stopped).Round(10*time.Millisecond))
	}
	for _, n := range rest {
		resp, err := n.Agent().Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := cluster.Member(resp, victim.Name()); m.State.String() != "dead" {
			t.Errorf("%s: %s is %s after the graceful stop of %s, want still dead", n.Name(), victim.Name(), m.State, leaver.Name())
		}
	}

	// The stock controllers (tuned: 8 s grace, 5 s toleration) replace the
	// crashed node's pod; the timeline shows each step.
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := tl.WaitFor(waitCtx, cluster.EventOwnerRecovered, "Deployment/"+ns+"/"+app); err != nil {
		t.Errorf("%v\n%s", err, tl.Table())
	}
	t.Logf("timeline of the crash of %s:\n%s", victim.Name(), tl.Table())
	for _, kind := range []cluster.EventKind{
		cluster.EventLastHeartbeat, cluster.EventNodeNotReady, cluster.EventPodNotReady,
		cluster.EventEndpointRemoved, cluster.EventPodDeleting,
	} {
		if _, ok := tl.First(kind, victim.Name()); !ok {
			t.Errorf("timeline has no %s event for %s", kind, victim.Name())
		}
	}
	if _, ok := tl.First(cluster.EventReplacementReady, ""); !ok {
		t.Error("timeline has no replacement pod")
	}
	for _, n := range survivors {
		for _, kind := range []cluster.EventKind{cluster.EventNodeNotReady, cluster.EventPodDeleting} {
			if e, ok := tl.First(kind, n.Name()); ok {
				t.Errorf("healthy node %s: %s %s at %+.1fs", n.Name(), e.Kind, e.Subject, e.Since.Seconds())
			}
		}
	}

	// The crashed node comes back: network, kubelet, then agent.
	returned := time.Now()
	if err := victim.Return(ctx); err != nil {
		t.Fatal(err)
	}
	back := append(rest[:len(rest):len(rest)], victim)
	waitMembers(t, back, time.Minute, victim.Name()+" alive and ready again everywhere", func(resp *api.MembersResponse) error {
		m, ok := cluster.Member(resp, victim.Name())
		if !ok || m.State.String() != "alive" || !m.Meta.Ready {
			return fmt.Errorf("%s: %+v", victim.Name(), m)
		}
		return nil
	})
	t.Logf("%s alive and ready on every agent %s after its return", victim.Name(), time.Since(returned).Round(10*time.Millisecond))
}

// TestAgents_readiness stops a node's kubelet (its ports close) while the
// node and its agent live on. Every agent must then report the node not
// ready, naming the kubelet check, and the agent must set the node's
// HAAgentReady condition to False; both go back when the kubelet does.
func TestAgents_readiness(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 3})
	names := nodeNames(tc.nodes)
	client := tc.cp.Client()
	ctx := context.Background()
	waitMembers(t, tc.nodes, time.Minute, "every agent sees 3 alive and ready members", allAliveAndReady(names))

	target := tc.nodes[1]
	eventually(t, time.Minute, target.Name()+" HAAgentReady=True", func(ctx context.Context) (bool, error) {
		return haAgentReady(ctx, client, target.Name(), corev1.ConditionTrue, "")
	})

	tl, err := cluster.StartTimeline(ctx, tc.cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Stop()

	// The verdict turns after FailureThreshold failed checks; on top of
	// that, gossip and the API write take a moment, and the machine is noisy.
	bound := cluster.KubeletCheckFailureThreshold*cluster.KubeletCheckPeriod + cluster.KubeletCheckTimeout + 20*time.Second
	stopped := time.Now()
	target.StopKubelet()
	tl.Fault(stopped, target.Name())

	notReady := func(resp *api.MembersResponse) error {
		m, ok := cluster.Member(resp, target.Name())
		if !ok {
			return fmt.Errorf("%s is not a member", target.Name())
		}
		if m.State.String() != "alive" {
			return fmt.Errorf("%s is %s, want alive", target.Name(), m.State)
		}
		if m.Meta.Ready {
			return fmt.Errorf("%s is still ready", target.Name())
		}
		if !strings.Contains(m.Meta.Reason, "kubelet") {
			return fmt.Errorf("%s not ready with reason %q, want the kubelet check named", target.Name(), m.Meta.Reason)
		}
		return nil
	}
	seen := waitMembers(t, tc.nodes, bound, "every agent reports "+target.Name()+" not ready because of its kubelet", notReady)
	for _, n := range tc.nodes {
		t.Logf("%s reports %s not ready %s after its kubelet stopped", n.Name(), target.Name(), seen[n.Name()].Sub(stopped).Round(10*time.Millisecond))
	}
	resp, err := target.Agent().Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := cluster.Member(resp, target.Name())
	t.Logf("reason published: %q", m.Meta.Reason)

	eventually(t, bound, target.Name()+" HAAgentReady=False naming the kubelet check", func(ctx context.Context) (bool, error) {
		return haAgentReady(ctx, client, target.Name(), corev1.ConditionFalse, "kubelet")
	})
	t.Logf("HAAgentReady=False on %s %s after its kubelet stopped", target.Name(), time.Since(stopped).Round(10*time.Millisecond))

	if err := target.StartKubelet(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	waitMembers(t, tc.nodes, bound, "every agent reports "+target.Name()+" ready again", allAliveAndReady(names))
	eventually(t, bound, target.Name()+" HAAgentReady=True again", func(ctx context.Context) (bool, error) {
		return haAgentReady(ctx, client, target.Name(), corev1.ConditionTrue, "")
	})
	t.Logf("%s ready again everywhere %s after its kubelet came back", target.Name(), time.Since(restarted).Round(10*time.Millisecond))
	t.Logf("timeline:\n%s", tl.Table())
	for _, n := range tc.nodes {
		if e, ok := tl.First(cluster.EventNodeNotReady, n.Name()); ok {
			t.Errorf("%s: the stock Ready condition changed (%s at %+.1fs); only HAAgentReady should", n.Name(), e.Detail, e.Since.Seconds())
		}
	}
}

// haAgentReady checks the node's HAAgentReady condition: its status, and
// that want appears in its reason or message.
func haAgentReady(ctx context.Context, client kubernetes.Interface, node string, status corev1.ConditionStatus, want string) (bool, error) {
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, c := range n.Status.Conditions {
		if c.Type != nodestatus.ConditionType {
			continue
		}
		if c.Status != status || !strings.Contains(c.Reason+" "+c.Message, want) {
			return false, fmt.Errorf("%s=%s reason %q message %q", c.Type, c.Status, c.Reason, c.Message)
		}
		return true, nil
	}
	return false, fmt.Errorf("node %s has no %s condition", node, nodestatus.ConditionType)
}
