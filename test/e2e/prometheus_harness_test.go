package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haagent/haagent/test/cluster"
)

// prometheusEnv names the directory of prometheus and promtool;
// hack/e2e.sh builds them (hack/build-prometheus.sh) and sets it.
const prometheusEnv = "HAAGENT_PROMETHEUS_BIN"

// ruleTimeDivisor divides every `for:` of the shipped rules in these tests:
// 5m becomes 60 s, 30s becomes 6 s. The expressions are the shipped ones.
// The agents keep their real timings, so a larger divisor would race what
// the rules wait for: HAAgentNodeDead waits 30 s so that an isolated node
// reports itself isolated (after --isolation-timeout) before its peers'
// verdict raises an alert.
const ruleTimeDivisor = 5

func prometheusBinDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(prometheusEnv)
	if dir == "" {
		t.Fatalf("%s is not set: run the end-to-end tests with hack/e2e.sh (make e2e), which builds prometheus and sets it", prometheusEnv)
	}
	return dir
}

// startPrometheus runs a Prometheus that scrapes every node's agent each
// second and evaluates the shipped rules (their `for:` divided by
// ruleTimeDivisor) each second, and an AlertWatcher that logs every alert
// change. Both stop when the test ends.
func startPrometheus(t *testing.T, tc *testCluster) (*cluster.Prometheus, *cluster.AlertWatcher) {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tc.cp.Dir(), "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rules, err := cluster.WriteScaledRules(filepath.Join(root, "charts/haagent/files/prometheus-rules.yaml"), dir, ruleTimeDivisor)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.DefaultPrometheusConfig(prometheusBinDir(t))
	cfg.RuleFiles = []string{rules}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prom, err := cluster.StartPrometheus(ctx, dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("----- prometheus (%s), last 30 lines -----\n%s", prom.LogPath(), prom.LogTail(30))
		}
		if err := prom.Stop(); err != nil {
			t.Errorf("stop prometheus: %v", err)
		}
	})
	if err := prom.ScrapeNodes(ctx, tc.nodes); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	w := prom.WatchAlerts(500*time.Millisecond, func(c cluster.AlertChange) {
		t.Logf("alert %+7.1fs %-8s -> %-8s %s", c.At.Sub(start).Seconds(), orNone(c.From), orNone(c.To), c.Alert.Key())
	})
	t.Cleanup(w.Stop)
	return prom, w
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// wantAlert is an alert a problem must raise: its name and the labels it
// must carry (a subset).
type wantAlert struct {
	name   string
	labels map[string]string
}

func (w wantAlert) String() string {
	return cluster.Alert{Labels: mergeLabels(map[string]string{"alertname": w.name}, w.labels)}.Key()
}

func mergeLabels(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func (w wantAlert) matches(a cluster.Alert) bool {
	if a.Name() != w.name {
		return false
	}
	for k, v := range w.labels {
		if a.Labels[k] != v {
			return false
		}
	}
	return true
}

// alertProblem is one problem of the alert test: how to cause it and end
// it, and the alerts it must raise. Each wanted alert must fire exactly once
// (one instance, however many agents see the problem), no alert outside
// want and allow may fire, and every alert must resolve once the problem
// has ended.
type alertProblem struct {
	name  string
	start func(t *testing.T)
	// ready, if set, must hold before the problem is ended (say, the
	// failover has reached a phase).
	ready func(ctx context.Context) (bool, error)
	end   func(t *testing.T)
	// hold is how long the problem lasts once its alerts fire (and ready
	// holds): 5 s when zero, for a duplicate raised late to show up.
	hold time.Duration
	want []wantAlert
	// allow are alerts that may fire during this problem without failing
	// the test, each with the reason in a comment where it is set.
	allow []string
}

func runAlertProblem(t *testing.T, w *cluster.AlertWatcher, p alertProblem) {
	t.Helper()
	t.Logf("===== problem: %s", p.name)
	if firing := firingNames(w.Current()); len(firing) > 0 {
		t.Fatalf("%s: alerts still firing before the problem starts: %v", p.name, firing)
	}
	since := time.Now()
	p.start(t)
	for _, want := range p.want {
		eventually(t, 3*time.Minute, fmt.Sprintf("%s: %s fires", p.name, want), func(context.Context) (bool, error) {
			if err := w.Err(); err != nil {
				return false, err
			}
			for _, a := range w.Current() {
				if a.State == "firing" && want.matches(a) {
					return true, nil
				}
			}
			return false, nil
		})
	}
	if p.ready != nil {
		eventually(t, 3*time.Minute, p.name+": ready to end", p.ready)
	}
	// Held a few evaluations longer, so that a duplicate raised later (by
	// a second agent, or after a scrape gap) shows up.
	hold := p.hold
	if hold == 0 {
		hold = 5 * time.Second
	}
	time.Sleep(hold)
	p.end(t)
	eventually(t, 3*time.Minute, p.name+": every alert resolved", func(context.Context) (bool, error) {
		if err := w.Err(); err != nil {
			return false, err
		}
		return len(w.Current()) == 0, nil
	})
	fired := w.FiredSince(since)
	for _, want := range p.want {
		n := 0
		for _, a := range fired {
			if a.Name() == want.name {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d instances of %s fired, want exactly one (%s)", p.name, n, want.name, keys(fired))
		}
	}
	for _, a := range fired {
		if slices.ContainsFunc(p.want, func(w wantAlert) bool { return w.matches(a) }) || slices.Contains(p.allow, a.Name()) {
			continue
		}
		t.Errorf("%s: %s fired, which this problem must not raise", p.name, a.Key())
	}
}

func firingNames(alerts []cluster.Alert) []string {
	var out []string
	for _, a := range alerts {
		if a.State == "firing" {
			out = append(out, a.Key())
		}
	}
	return out
}

func keys(alerts []cluster.Alert) string {
	out := make([]string, len(alerts))
	for i, a := range alerts {
		out[i] = a.Key()
	}
	return strings.Join(out, ", ")
}

// checkMetricsLint runs promtool check metrics on every live agent's
// /metrics: names, units, _total on counters, HELP texts.
func checkMetricsLint(t *testing.T, tc *testCluster) {
	t.Helper()
	promtool := filepath.Join(prometheusBinDir(t), "promtool")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range tc.nodes {
		body, err := n.Agent().RawMetrics(ctx)
		if err != nil {
			t.Errorf("%s /metrics: %v", n.Name(), err)
			continue
		}
		cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(string(body))
		out, err := cmd.CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("promtool check metrics on %s's /metrics: %v\n%s", n.Name(), err, out)
		}
	}
}
