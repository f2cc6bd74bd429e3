package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/probe"
	"github.com/haagent/haagent/test/cluster"
)

// The API-cost targets: an agent that does not coordinate keeps a few
// watches, none of them on a whole resource of the cluster, and next to no
// requests when nothing happens; its cost to the apiserver must not grow
// with the cluster. The coordinator is measured but not held to them.
const (
	apiCostMaxWatches   = 3
	apiCostMaxIdleRate  = 0.1 // requests per second, each non-coordinator
	apiCostNodes        = 7
	apiCostSettle       = 15 * time.Second
	apiCostWindowEnv    = "HAAGENT_APICOST_WINDOW"
	apiCostDefaultWidth = 45 * time.Second
)

// TestAPICost measures, on an idle cluster of 7 nodes, what each agent asks
// of the apiserver (its audit log, attributed per agent by User-Agent or by
// token) and holds every agent but the coordinator to the targets. The full
// per-agent table is logged whatever the outcome.
func TestAPICost(t *testing.T) {
	window := apiCostDefaultWidth
	if v := os.Getenv(apiCostWindowEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second {
			t.Fatalf("%s=%q: want a duration of at least 10s", apiCostWindowEnv, v)
		}
		window = d
	}
	// The agents run the shipped apiserver check (the harness's own runs
	// every 2 s, to keep the fence bound short in the isolation tests), so
	// that its requests count as a user's would.
	shipped := apiServerCheck(t, probe.DefaultNodeChecks())
	tc := startCluster(t, clusterOptions{nodes: apiCostNodes, timings: stock, auditLog: true, agent: func(_ int, cfg *cluster.AgentConfig) {
		if cfg.Checks == nil {
			cfg.Checks = cluster.DefaultAgentChecks(cfg.IP)
		}
		for i := range cfg.Checks {
			if cfg.Checks[i].APIServer != nil {
				cfg.Checks[i] = shipped
			}
		}
	}})
	waitMembers(t, tc.nodes, 2*time.Minute, "every agent sees every member alive", func(r *api.MembersResponse) error {
		for _, n := range tc.nodes {
			if err := memberIs(n.Name(), "alive")(r); err != nil {
				return err
			}
		}
		return nil
	})
	// The start's lists and Lease contention are over by then.
	time.Sleep(apiCostSettle)

	ctx, cancel := context.WithTimeout(context.Background(), window+time.Minute)
	defer cancel()
	startBytes := map[string]cluster.APITraffic{}
	for _, n := range tc.nodes {
		startBytes[n.Name()] = n.APITraffic()
	}
	from := time.Now()
	time.Sleep(window)
	to := time.Now()
	lease, err := tc.cp.Client().CoordinationV1().Leases("haagent").Get(ctx, "haagent-coordinator", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("coordinator Lease: %v", err)
	}
	coord := ""
	if lease.Spec.HolderIdentity != nil {
		coord = *lease.Spec.HolderIdentity
	}
	time.Sleep(500 * time.Millisecond) // the last audit events reach the file
	attr := cluster.Attribution{ByCredential: map[string]string{}}
	for _, n := range tc.nodes {
		if id := n.AgentCredentialID(); id != "" {
			attr.ByCredential[id] = n.Name()
		}
	}
	usage, err := cluster.AnalyzeAudit(tc.cp.AuditLogPath(), from, to, attr)
	if err != nil {
		t.Fatal(err)
	}
	secs := to.Sub(from).Seconds()

	// The table, every agent, before any verdict.
	var b strings.Builder
	fmt.Fprintf(&b, "idle window of %.0f s, %d nodes, coordinator %q; audit log: %d requests of every client (%.1f/s)\n",
		secs, len(tc.nodes), coord, usage.AllRequests, float64(usage.AllRequests)/secs)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "agent\trole\treq/s\t/readyz/s\twatches max\tcluster-wide\twire B/s in\twatching\trequests")
	for _, n := range tc.nodes {
		u := usage.Agents[n.Name()]
		if u == nil {
			u = &cluster.ClientUsage{Name: n.Name()}
		}
		role := ""
		if n.Name() == coord {
			role = "coordinator"
		}
		end := n.APITraffic()
		in := float64(end.AgentReceived-startBytes[n.Name()].AgentReceived) / secs
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.2f\t%d\t%d\t%.0f\t%s\t%s\n", n.Name(), role, float64(u.Total-u.Health)/secs, float64(u.Health)/secs, u.MaxOpenWatches,
			len(u.ClusterWideWatches()), in, watchList(u), requestList(u, secs))
	}
	tw.Flush()
	if u := usage.Agents[cluster.Unattributed]; u != nil {
		fmt.Fprintf(&b, "unattributed haagent requests: %d (%s)\n", u.Total, requestList(u, secs))
	}
	t.Logf("API cost per agent:\n%s", b.String())

	if u := usage.Agents[cluster.Unattributed]; u != nil && u.Total > 0 {
		t.Errorf("%d haagent requests could not be attributed to an agent (no node= in the User-Agent, unknown token): %s", u.Total, requestList(u, secs))
	}
	var rates []string
	var sum float64
	others := 0
	for _, n := range tc.nodes {
		if n.Name() == coord {
			continue
		}
		others++
		u := usage.Agents[n.Name()]
		if u == nil {
			rates = append(rates, n.Name()+" 0")
			continue
		}
		if u.MaxOpenWatches > apiCostMaxWatches {
			t.Errorf("agent %s: %d watches open at once, want at most %d: %s", n.Name(), u.MaxOpenWatches, apiCostMaxWatches, watchList(u))
		}
		for _, w := range u.ClusterWideWatches() {
			t.Errorf("agent %s: cluster-wide watch %q (no namespace, no metadata.name field selector; %d opened in the window, %.1f open on average)",
				n.Name(), w.String(), w.Requests, w.MeanOpen)
		}
		// Every request counts, the agent's check of /readyz included.
		rate := float64(u.Total) / secs
		sum += rate
		rates = append(rates, fmt.Sprintf("%s %.3f/s (%s)", n.Name(), rate, requestList(u, secs)))
		// One request more than the rate allows in the window: a window
		// of 45 s holds 3 or 4 runs of a 12 s check, and once in a while
		// the 5-minute rewrite of the Node condition or a watch's renewal
		// (5 to 10 minutes) falls into it.
		if allowed := apiCostMaxIdleRate*secs + 1; float64(u.Total) > allowed {
			t.Errorf("agent %s: %d API requests in %.0f s idle (%.3f/s), want at most %.1f/s (%.0f requests, one allowed for the window's edges): %s",
				n.Name(), u.Total, secs, rate, apiCostMaxIdleRate, allowed, requestList(u, secs))
		}
	}
	if others == 0 {
		t.Fatal("no agent but the coordinator")
	}
	t.Logf("idle API requests of the %d non-coordinator agents: mean %.3f/s; %s", others, sum/float64(others), strings.Join(rates, "; "))
}

// apiServerCheck is the apiserver check of checks.
func apiServerCheck(t *testing.T, checks []probe.Check) probe.Check {
	t.Helper()
	for _, c := range checks {
		if c.APIServer != nil {
			return c
		}
	}
	t.Fatal("no apiserver check in the shipped checks")
	return probe.Check{}
}

// watchList is a client's watch targets in one line.
func watchList(u *cluster.ClientUsage) string { return cluster.WatchList(u.Watches) }

// requestList is a client's requests by verb and resource, with rates.
func requestList(u *cluster.ClientUsage, secs float64) string {
	if len(u.Requests) == 0 {
		return "none"
	}
	rs := slices.Clone(u.Requests)
	var parts []string
	for _, r := range rs {
		where := r.Resource
		if r.Namespace != "" {
			where += " in " + r.Namespace
		}
		parts = append(parts, fmt.Sprintf("%s %s %.3f/s", r.Verb, where, float64(r.Count)/secs))
	}
	return strings.Join(parts, ", ")
}
