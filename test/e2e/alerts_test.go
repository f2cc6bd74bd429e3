package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/test/cluster"
)

// The alerts each problem must raise, one instance each (see the comment
// at the top of charts/haagent/files/prometheus-rules.yaml).
const (
	alertAgentDown     = "HAAgentAgentDownNodeUp"
	alertNodeDead      = "HAAgentNodeDead"
	alertIsolated      = "HAAgentNodeIsolated"
	alertNoCoordinator = "HAAgentNoCoordinator"
	alertPaused        = "HAAgentFailoverPaused"
)

// TestAlerts_eachProblemRaisesOneAlert runs a real Prometheus that scrapes
// the 7 agents of a cluster and evaluates the shipped rules, and causes
// one problem after another: an agent down on a live node, a crash and its
// failover, an isolated node, no coordinator, a crashed node deleted, and
// a mass failure that pauses failover. Each must raise its alert once (one
// instance, however many agents see it), raise nothing it should not, and
// every alert must resolve once the problem is gone. The agents' /metrics
// also pass promtool check metrics.
func TestAlerts_eachProblemRaisesOneAlert(t *testing.T) {
	tc, tl := failoverCluster(t, 7, fakeGround)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("timeline:\n%s", tl.Table())
		}
	})
	_, w := startPrometheus(t, tc)
	client := tc.cp.Client()
	node := func(i int) *cluster.Node { return tc.nodes[i-1] }
	onNode := func(n string) map[string]string { return map[string]string{"node": n} }
	onMember := func(n string) map[string]string { return map[string]string{"member": n} }
	handedBack := func(t *testing.T, name string) {
		eventually(t, 2*time.Minute, name+" handed back", recordIs(t, tc, name, func(r record.NodeFailover) bool {
			return r.Status.Phase == record.PhaseCompleted
		}))
	}

	quiet := time.Now()
	time.Sleep(15 * time.Second)
	if fired := w.FiredSince(quiet); len(fired) > 0 {
		t.Fatalf("alerts fired on a healthy cluster: %s", keys(fired))
	}
	checkMetricsLint(t, tc)

	runAlertProblem(t, w, alertProblem{
		name:  "the agent of node-7 dies, its node lives",
		start: func(t *testing.T) { must(t, node(7).CrashAgent()) },
		end:   func(t *testing.T) { must(t, node(7).StartAgent()) },
		want:  []wantAlert{{name: alertAgentDown, labels: onMember("node-7")}},
	})

	runAlertProblem(t, w, alertProblem{
		name: "node-6 crashes and is failed over, then returns",
		start: func(t *testing.T) {
			_, err := node(6).Crash()
			must(t, err)
		},
		ready: recordIs(t, tc, "node-6", func(r record.NodeFailover) bool { return r.Status.WorkloadsRecovered != nil }),
		end: func(t *testing.T) {
			must(t, node(6).Return(context.Background()))
			handedBack(t, "node-6")
		},
		want: []wantAlert{{name: alertNodeDead, labels: onMember("node-6")}},
	})

	var cut []*cluster.Fault
	runAlertProblem(t, w, alertProblem{
		name: "node-5 is cut off from its peers and the API server, and keeps running",
		start: func(t *testing.T) {
			others := ips(append(slices.Clone(tc.nodes[:4]), tc.nodes[5:]...))
			part, err := tc.faults.Partition([]netip.Addr{node(5).IP()}, others)
			must(t, err)
			cut = append(cut, part)
			api, err := node(5).IsolateFromAPI()
			must(t, err)
			cut = append(cut, api)
		},
		end: func(t *testing.T) {
			for _, f := range cut {
				must(t, f.Remove())
			}
			handedBack(t, "node-5")
		},
		// The majority sees node-5 dead and fails it over; Prometheus, which
		// is not cut off, still scrapes node-5, whose own report of
		// isolation is the one alert.
		want: []wantAlert{{name: alertIsolated, labels: onNode("node-5")}},
		// Longer than HAAgentFailoverPaused waits: node-5 alone sees most
		// nodes dead and reports failover paused, which must not page.
		hold: 30 * time.Second,
	})

	var binding *rbacv1.RoleBinding
	runAlertProblem(t, w, alertProblem{
		name: "the agents lose the RBAC of the coordinator Lease: nobody can coordinate",
		start: func(t *testing.T) {
			ctx := context.Background()
			b, err := client.RbacV1().RoleBindings("haagent").Get(ctx, "haagent", metav1.GetOptions{})
			must(t, err)
			binding = b
			must(t, client.RbacV1().RoleBindings("haagent").Delete(ctx, "haagent", metav1.DeleteOptions{}))
		},
		end: func(t *testing.T) {
			b := binding.DeepCopy()
			b.ObjectMeta = metav1.ObjectMeta{Name: b.Name, Namespace: b.Namespace, Labels: b.Labels}
			_, err := client.RbacV1().RoleBindings("haagent").Create(context.Background(), b, metav1.CreateOptions{})
			must(t, err)
		},
		want: []wantAlert{{name: alertNoCoordinator}},
	})

	runAlertProblem(t, w, alertProblem{
		name: "node-4 crashes, is failed over, and its Node is deleted",
		start: func(t *testing.T) {
			_, err := node(4).Crash()
			must(t, err)
		},
		ready: recordIs(t, tc, "node-4", func(r record.NodeFailover) bool { return r.Status.WorkloadsRecovered != nil }),
		end: func(t *testing.T) {
			must(t, client.CoreV1().Nodes().Delete(context.Background(), "node-4", metav1.DeleteOptions{}))
		},
		want: []wantAlert{{name: alertNodeDead, labels: onMember("node-4")}},
	})

	// Six Nodes are left; four of them crash at once, more than
	// --max-dead-fraction (0.55): failover pauses.
	mass := []*cluster.Node{node(2), node(3), node(5), node(6)}
	runAlertProblem(t, w, alertProblem{
		name: "4 of the 6 nodes crash at once: failover pauses",
		start: func(t *testing.T) {
			for _, n := range mass {
				_, err := n.Crash()
				must(t, err)
			}
		},
		end: func(t *testing.T) {
			for _, n := range mass {
				must(t, n.Return(context.Background()))
			}
			// node-4 stays in the agents' memberlist, dead, until gossip
			// reaps it; its Node is gone, so no alert may count it.
			left := []string{"node-1", "node-2", "node-3", "node-5", "node-6", "node-7"}
			waitMembers(t, []*cluster.Node{node(1), node(2), node(3), node(5), node(6), node(7)}, 2*time.Minute,
				"the 4 nodes back", func(resp *api.MembersResponse) error {
					for _, name := range left {
						m, ok := cluster.Member(resp, name)
						if !ok || m.State.String() != "alive" || !m.Meta.Ready {
							return fmt.Errorf("%s: member %t, state %s, ready %v", name, ok, m.State, m.Meta.Ready)
						}
					}
					return nil
				})
		},
		want: []wantAlert{{name: alertPaused}},
	})
	noActionOn(t, tl, []string{"node-2", "node-3"}, 0)
}

// recordIs holds once the latest failover record of node satisfies ok.
func recordIs(t *testing.T, tc *testCluster, node string, ok func(record.NodeFailover) bool) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		var latest *record.NodeFailover
		for _, r := range failoverRecords(ctx, t, tc.cp) {
			if r.Spec.Node == node && (latest == nil || r.CreationTimestamp.After(latest.CreationTimestamp.Time)) {
				latest = &r
			}
		}
		return latest != nil && ok(*latest), nil
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
