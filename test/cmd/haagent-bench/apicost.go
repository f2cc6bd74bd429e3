package main

// This file is over 500 lines: the API-cost measurement, its model to large
// clusters and its report are one feature (make apicost).

// The API-cost measurement: what each agent costs the kube-apiserver, in an
// idle window and across a failover, at each size; then each figure
// modelled to large clusters from how it grows.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/haagent/haagent/test/cmd/internal/plot"
	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

// APICostSize is the API-cost measurement at one size.
type APICostSize struct {
	Nodes int `json:"nodes"`
	// Idle is a window with nothing going on; Failover runs from a node's
	// crash until every phase of its failover was seen.
	Idle     *scenario.APIWindow `json:"idle,omitempty"`
	Failover *scenario.APIWindow `json:"failover,omitempty"`
	Error    string              `json:"error,omitempty"`
}

// The API-cost targets of the issue, judged on every non-coordinator agent.
const (
	targetWatchesPerAgent = 3
	targetIdleRequestsPS  = 0.1
)

// apiCostSettle is how long the agents are left alone before the idle
// window: the start's lists and the workload's churn are over by then.
const apiCostSettle = 15 * time.Second

// apiCost runs the idle window and, with -api-cost-failover, one crash of a
// node that does not hold the coordinator Lease, measured from the crash to
// the end of its failover; the node then returns and the cluster is made
// whole again, outside any window.
func (b *bench) apiCost(ctx context.Context, c *scenario.Cluster, n int) (out *APICostSize, err error) {
	out = &APICostSize{Nodes: n}
	defer func() {
		if err != nil {
			out.Error = err.Error()
		}
		b.res.APICost = append(b.res.APICost, out)
	}()
	step := b.p.Begin("api-cost: letting the agents settle for %s, then an idle window of %s (audit log, apiserver /metrics, agents' /metrics, /proc, API proxy bytes)", apiCostSettle, b.opts.apiCost)
	if err := scenario.Sleep(ctx, apiCostSettle); err != nil {
		return out, err
	}
	idle, err := c.MeasureAPICost(ctx, "idle", b.opts.apiCost, time.Second, nil)
	if err != nil {
		return out, fmt.Errorf("api-cost idle window: %w", err)
	}
	out.Idle = idle
	step.Done("idle window measured")
	b.p.Raw("%s\n", idle.APITable())
	if !b.opts.apiCostFailover {
		return out, nil
	}
	s := &Setup{Name: "api-cost"}
	r := newRunner(b.p, c, s, true, 2*time.Minute)
	coord, err := c.Coordinator(ctx)
	if err != nil {
		return out, err
	}
	var victim string
	for range len(c.Nodes) {
		if victim, err = r.pickVictim(ctx); err != nil {
			return out, err
		}
		if victim != coord {
			break
		}
	}
	if victim == coord {
		return out, errors.New("api-cost: no victim but the coordinator")
	}
	run := &Run{Victim: victim}
	var cr *scenario.Crash
	step = b.p.Begin("api-cost: crashing %s (not the coordinator, %s) and measuring until its failover is over", victim, coord)
	fo, err := c.MeasureAPICost(ctx, "failover", 0, time.Second, func(ctx context.Context) error {
		var err error
		cr, err = r.crash(ctx, run, 1, 1)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("api-cost failover window: %w", err)
	}
	fo.MarkVictim(victim)
	out.Failover = fo
	step.Done("failover window measured")
	b.p.Raw("%s\n", fo.APITable())
	if err := r.back(ctx, run, cr); err != nil {
		return out, err
	}
	return out, r.whole(ctx)
}

// apiCostCluster starts a cluster for the API-cost figures alone.
func (b *bench) apiCostCluster(ctx context.Context, n int, bin string) error {
	b.p.Raw("\n=== %d nodes, haagent: API cost only (idle %s, then one crash) ===\n\n", n, b.opts.apiCost)
	s := &Setup{Name: "api-cost"}
	return b.cluster(ctx, s, scenario.Config{
		BinDir: b.opts.binDir, Nodes: n, Timings: scenario.Stock,
		Haagent: bin, AgentArgs: b.agentArgs(), Deploy: filepath.Join(b.root, "deploy"), AuditLog: true,
	}, func(c *scenario.Cluster) error {
		_, err := b.apiCost(ctx, c, n)
		return err
	})
}

// apiFigure is one figure of the model.
type apiFigure struct {
	Name, Unit string
	// Total is a cluster total, fitted as a·N; otherwise a + b·N.
	Total bool
	// Get reads it from a size, false if not measured there.
	Get func(*APICostSize) (float64, bool)
	// Plot names the plot it goes in.
	Plot string
}

// mean of f over agents, false if there are none.
func meanOf(as []scenario.AgentAPI, f func(scenario.AgentAPI) float64) (float64, bool) {
	if len(as) == 0 {
		return 0, false
	}
	var s float64
	for _, a := range as {
		s += f(a)
	}
	return s / float64(len(as)), true
}

func maxOf(as []scenario.AgentAPI, f func(scenario.AgentAPI) float64) (float64, bool) {
	if len(as) == 0 {
		return 0, false
	}
	m := math.Inf(-1)
	for _, a := range as {
		m = max(m, f(a))
	}
	return m, true
}

func others(w *scenario.APIWindow) []scenario.AgentAPI {
	if w == nil {
		return nil
	}
	return w.Others()
}

func coordOf(w *scenario.APIWindow, f func(scenario.AgentAPI) float64) (float64, bool) {
	if w == nil {
		return 0, false
	}
	a, ok := w.CoordinatorAgent()
	if !ok {
		return 0, false
	}
	return f(a), true
}

func sumOf(w *scenario.APIWindow, f func(scenario.AgentAPI) float64) (float64, bool) {
	if w == nil || len(w.PerAgent) == 0 {
		return 0, false
	}
	var s float64
	for _, a := range w.PerAgent {
		s += f(a)
	}
	return s, true
}

func reqPS(a scenario.AgentAPI) float64   { return a.RequestsPerSecond }
func watches(a scenario.AgentAPI) float64 { return float64(a.MaxOpenWatches) }
func wireIn(a scenario.AgentAPI) float64  { return a.WireReceivedBps }
func rss(a scenario.AgentAPI) float64     { return a.RSSMeanMiB }
func clusterWide(a scenario.AgentAPI) float64 {
	return float64(a.ClusterWideWatches)
}

// metricIn is the agent's own received-bytes counter, NaN if not exported.
func metricIn(a scenario.AgentAPI) float64 {
	if a.MetricReceivedBps == nil {
		return math.NaN()
	}
	return *a.MetricReceivedBps
}

func notNaN(v float64, ok bool) (float64, bool) { return v, ok && !math.IsNaN(v) }

// apiFigures are the modelled figures.
func apiFigures() []apiFigure {
	idle := func(f func(*scenario.APIWindow) (float64, bool)) func(*APICostSize) (float64, bool) {
		return func(s *APICostSize) (float64, bool) {
			if s.Idle == nil {
				return 0, false
			}
			return f(s.Idle)
		}
	}
	fail := func(f func(*scenario.APIWindow) (float64, bool)) func(*APICostSize) (float64, bool) {
		return func(s *APICostSize) (float64, bool) {
			if s.Failover == nil {
				return 0, false
			}
			return f(s.Failover)
		}
	}
	return []apiFigure{
		{Name: "watches per agent (max open, non-coordinator mean)", Unit: "watches", Plot: "watches",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return meanOf(w.Others(), watches) })},
		{Name: "cluster-wide watches per agent (non-coordinator mean)", Unit: "watches", Plot: "watches",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return meanOf(w.Others(), clusterWide) })},
		{Name: "watches of the coordinator", Unit: "watches", Plot: "watches",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return coordOf(w, watches) })},
		{Name: "requests/s per agent, idle (non-coordinator mean)", Unit: "req/s", Plot: "requests",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return meanOf(w.Others(), reqPS) })},
		{Name: "requests/s of the coordinator, idle", Unit: "req/s", Plot: "requests",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return coordOf(w, reqPS) })},
		{Name: "requests/s per agent, failover (non-coordinator mean)", Unit: "req/s", Plot: "requests",
			Get: fail(func(w *scenario.APIWindow) (float64, bool) { return meanOf(w.Others(), reqPS) })},
		{Name: "requests/s of the coordinator, failover", Unit: "req/s", Plot: "requests",
			Get: fail(func(w *scenario.APIWindow) (float64, bool) { return coordOf(w, reqPS) })},
		{Name: "bytes/s received per agent, idle (wire, non-coordinator mean)", Unit: "B/s", Plot: "bytes",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return meanOf(w.Others(), wireIn) })},
		{Name: "bytes/s received by the coordinator, idle (wire)", Unit: "B/s", Plot: "bytes",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return coordOf(w, wireIn) })},
		{Name: "bytes/s received per agent, failover (wire, non-coordinator mean)", Unit: "B/s", Plot: "bytes",
			Get: fail(func(w *scenario.APIWindow) (float64, bool) { return meanOf(w.Others(), wireIn) })},
		{Name: "bytes/s received per agent, idle (haagent_api_received_bytes_total, non-coordinator mean)", Unit: "B/s", Plot: "bytes",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return notNaN(meanOf(w.Others(), metricIn)) })},
		{Name: "agent RSS (non-coordinator mean)", Unit: "MiB", Plot: "memory",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return meanOf(w.Others(), rss) })},
		{Name: "agent RSS (largest)", Unit: "MiB", Plot: "memory",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return maxOf(w.PerAgent, rss) })},
		{Name: "kube-apiserver RSS", Unit: "MiB", Plot: "server",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return w.Server.RSSMeanMiB, w.Server.RSSMeanMiB > 0 })},
		{Name: "kube-apiserver CPU, idle", Unit: "% of a core", Plot: "server",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return 100 * w.Server.CPU, w.Server.CPU > 0 })},
		{Name: "kube-apiserver CPU, failover", Unit: "% of a core", Plot: "server",
			Get: fail(func(w *scenario.APIWindow) (float64, bool) { return 100 * w.Server.CPU, w.Server.CPU > 0 })},
		{Name: "all agents: requests/s, idle", Unit: "req/s", Total: true, Plot: "totals",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return sumOf(w, reqPS) })},
		{Name: "all agents: open watches", Unit: "watches", Total: true, Plot: "totals",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return float64(w.Server.AgentWatches), true })},
		{Name: "all agents: bytes/s received, idle (wire)", Unit: "B/s", Total: true, Plot: "totals",
			Get: idle(func(w *scenario.APIWindow) (float64, bool) { return sumOf(w, wireIn) })},
	}
}

// flatTolerance: a fit that moves by less than this share of its mean
// over the sizes measured is taken as flat (scenario.Fit.Flatten).
const flatTolerance = 0.03

// modelSizes are where the model is evaluated.
var modelSizes = []int{100, 1000, 5000}

// apiModel is one figure measured and modelled.
type apiModel struct {
	Figure   apiFigure
	Measured map[int]float64
	Fit      scenario.Fit
	OK       bool
}

func models(res *Results) []apiModel {
	var out []apiModel
	for _, f := range apiFigures() {
		m := apiModel{Figure: f, Measured: map[int]float64{}}
		var xs, ys []float64
		for _, s := range res.APICost {
			if v, ok := f.Get(s); ok {
				m.Measured[s.Nodes] = v
				xs = append(xs, float64(s.Nodes))
				ys = append(ys, v)
			}
		}
		if len(xs) > 0 {
			m.OK = true
			if f.Total {
				m.Fit = scenario.FitTotal(xs, ys)
			} else {
				m.Fit = scenario.FitLine(xs, ys)
			}
			m.Fit = m.Fit.Flatten(xs, ys, flatTolerance)
			if !m.Fit.Flat && m.Fit.B < 0 {
				// Shrinking with N: a straight line would cross zero. A
				// total that shrinks per member is a fixed part plus a
				// part per member; a figure per member that shrinks is a
				// fixed cost shared by N.
				if f.Total {
					m.Fit = scenario.FitLine(xs, ys).Flatten(xs, ys, flatTolerance)
				} else {
					m.Fit = scenario.FitInverse(xs, ys)
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// num formats a figure.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1e9:
		return fmt.Sprintf("%.3g G", v/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.3g M", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.0f k", v/1e3)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// plots of the API cost, by name: file and title.
var apiPlots = []struct{ Name, Title, YLabel string }{
	{"watches", "Open watches per agent against cluster size", "watches"},
	{"requests", "API requests per agent against cluster size", "requests per second"},
	{"bytes", "Bytes received from the API per agent against cluster size", "bytes per second"},
	{"memory", "Agent resident memory against cluster size", "MiB"},
	{"server", "kube-apiserver CPU and memory against cluster size", "% of a core / MiB"},
	{"totals", "All agents together against cluster size", "per second / count"},
}

func apiPlotFile(name string) string { return "bench/apicost-" + name + ".svg" }

// apiCharts draws each plot: the measured points, and the model dashed
// out to 5000 nodes; log-log, so that both are readable.
func apiCharts(ms []apiModel) map[string]plot.LineChart {
	out := map[string]plot.LineChart{}
	for _, p := range apiPlots {
		c := plot.LineChart{Title: p.Title, XLabel: "nodes", YLabel: p.YLabel, LogX: true, LogY: true,
			XTicks: []float64{7, 20, 100, 1000, 5000}, Width: 900, Height: 460}
		for _, m := range ms {
			if m.Figure.Plot != p.Name || !m.OK {
				continue
			}
			var xs, ys []float64
			for _, n := range slices.Sorted(mapsKeys(m.Measured)) {
				xs = append(xs, float64(n))
				ys = append(ys, m.Measured[n])
			}
			color := plotPalette[len(c.Series)/2%len(plotPalette)]
			name := shortName(m.Figure.Name)
			c.Series = append(c.Series, plot.LineSeries{Name: name, X: xs, Y: ys, Color: color})
			var mx, my []float64
			for _, n := range []float64{7, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000} {
				mx = append(mx, n)
				my = append(my, m.Fit.At(n))
			}
			c.Series = append(c.Series, plot.LineSeries{Name: "model", X: mx, Y: my, Color: color, Dashed: true, NoDots: true})
		}
		if len(c.Series) > 0 {
			out[p.Name] = c
		}
	}
	return out
}

var plotPalette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"}

// shortName fits a legend.
func shortName(s string) string {
	s = strings.NewReplacer(" (non-coordinator mean)", "", "(wire, non-coordinator mean)", "(wire)", "per agent", "agent",
		"(haagent_api_received_bytes_total, non-coordinator mean)", "(metric)", "(max open, non-coordinator mean)", "").Replace(s)
	if len(s) > 26 {
		s = s[:25] + "…"
	}
	return s
}

func mapsKeys(m map[int]float64) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// writeAPICost writes API-COST.md and its plots into dir.
func writeAPICost(dir string, res *Results) error {
	if len(res.APICost) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "bench"), 0o755); err != nil {
		return err
	}
	ms := models(res)
	for name, c := range apiCharts(ms) {
		svg, err := c.SVG()
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, apiPlotFile(name)), svg, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "API-COST.md"), []byte(apiCostMarkdown(res, ms)), 0o644)
}

// apiTargets judges the idle windows against the targets.
func apiTargets(res *Results) []Target {
	var out []Target
	for _, s := range res.APICost {
		if s.Idle == nil {
			continue
		}
		at := fmt.Sprintf(" at N=%d", s.Nodes)
		w := Target{Name: "watches per non-coordinator agent" + at, Goal: fmt.Sprintf("≤ %d, none cluster-wide", targetWatchesPerAgent)}
		r := Target{Name: "idle requests/s per non-coordinator agent, besides its apiserver check" + at, Goal: fmt.Sprintf("≤ %.1f each", targetIdleRequestsPS)}
		ot := s.Idle.Others()
		if len(ot) == 0 {
			w.Value, w.Status, r.Value, r.Status = "-", "not measured", "-", "not measured"
		} else {
			mw, _ := maxOf(ot, watches)
			mc, _ := maxOf(ot, clusterWide)
			mr, _ := maxOf(ot, reqPS)
			ar, _ := meanOf(ot, reqPS)
			w.Value = fmt.Sprintf("max %.0f, cluster-wide max %.0f", mw, mc)
			w.Status = judge(mw <= targetWatchesPerAgent && mc == 0)
			r.Value = fmt.Sprintf("mean %.3f, max %.3f", ar, mr)
			r.Status = judge(mr <= targetIdleRequestsPS)
		}
		out = append(out, w, r)
	}
	return out
}

// windowTable is a window's per-agent rows in markdown.
func windowTable(b *strings.Builder, w *scenario.APIWindow) {
	if w == nil {
		b.WriteString("Not measured.\n\n")
		return
	}
	fmt.Fprintf(b, "%s window of %.0f s, %d agents; coordinator **%s**", w.Label, w.Seconds, w.Agents, orDash(w.Coordinator))
	if w.Victim != "" {
		fmt.Fprintf(b, "; **%s** crashed at its start", w.Victim)
	}
	b.WriteString(".\n\n")
	var rows [][]string
	for _, a := range w.PerAgent {
		role := ""
		switch {
		case a.Coordinator:
			role = "**coordinator**"
		case a.Crashed:
			role = "crashed"
		}
		metric := "not measured"
		if a.MetricReceivedBps != nil {
			metric = num(*a.MetricReceivedBps)
		}
		rows = append(rows, []string{a.Node, role, num(a.RequestsPerSecond), num(a.HealthPerSecond), fmt.Sprintf("%d (mean %.1f)", a.MaxOpenWatches, a.MeanOpenWatches),
			fmt.Sprint(a.ClusterWideWatches), num(a.WireReceivedBps), metric, fmt.Sprintf("%.1f", a.RSSMeanMiB), fmt.Sprintf("%.2f", 100*a.CPU),
			a.WatchList(), a.TopRequests(5)})
	}
	mdTable(b, []string{"agent", "role", "req/s", "apiserver checks/s", "watches (max)", "cluster-wide", "wire B/s in", "metric B/s in", "RSS MiB", "CPU %", "watching", "requests by verb and resource"}, rows)
	if w.Unattributed != nil {
		fmt.Fprintf(b, "Unattributed haagent requests: %d.\n\n", w.Unattributed.Total)
	}
	s := w.Server
	fmt.Fprintf(b, "kube-apiserver: CPU %.1f %% of a core, RSS %.0f MiB (max %.0f). Requests/s, every client: %.1f in the audit log, %.1f by `apiserver_request_total` (a watch counts there when it ends); of them the agents' %.2f. Watches open at the end: %d in the audit log (%d of them the agents'), %.0f by `apiserver_longrunning_requests{verb=\"WATCH\"}`.",
		100*s.CPU, s.RSSMeanMiB, s.RSSMaxMiB, s.AuditRequestsPS, s.MetricRequestsPS, s.AgentRequestsPS, s.AuditWatches, s.AgentWatches, s.MetricWatches)
	if len(s.ByClient) > 0 {
		keys := make([]string, 0, len(s.ByClient))
		for k := range s.ByClient {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(x, y string) int {
			if s.ByClient[x] != s.ByClient[y] {
				if s.ByClient[x] > s.ByClient[y] {
					return -1
				}
				return 1
			}
			return strings.Compare(x, y)
		})
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %.2f", orDash(k), s.ByClient[k]))
		}
		fmt.Fprintf(b, " Requests/s by client: %s.", strings.Join(parts, ", "))
	}
	b.WriteString("\n\n")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// apiCostMarkdown is API-COST.md.
func apiCostMarkdown(res *Results, ms []apiModel) string {
	var b strings.Builder
	b.WriteString("# haagent: what each agent costs the API server\n\n")
	b.WriteString("<!-- Written by test/cmd/haagent-bench (make apicost, or make bench) from its JSON results; edits are lost on the next run. -->\n\n")
	b.WriteString("Measured on the real control plane of the end-to-end harness (etcd, kube-apiserver, kube-controller-manager, kube-scheduler on loopback), fake kubelets whose Node objects are of realistic size (conditions, nodeInfo, addresses, capacity and allocatable, 45 container images: about 13 KB as JSON; status posted every 10 s), and a real haagent process per node, each with a ServiceAccount token of its own.\n\n")
	b.WriteString("How: the kube-apiserver's audit log (every request at level Metadata, stages ResponseStarted and ResponseComplete) attributes each request to an agent by the `node=` of its User-Agent or, failing that, by its token (the audit log's `authentication.kubernetes.io/credential-id`, the token's `jti`, which the harness minted for that node). A request counts in the window it was received in; *req/s* leaves out the agent's health checks of the apiserver itself (`/readyz`, at the period of its `apiServer` check: 2 s in the harness, 12 s in deploy/), counted apart as *apiserver checks/s* (with the shipped 12 s check, the end-to-end test TestAPICost, part of make test, holds each non-coordinator agent to the 0.1 requests/s target with its checks counted); a watch is open from its ResponseStarted to its ResponseComplete. *Watches (max)* is the most an agent had open at once; *cluster-wide* counts watch targets without a namespace and without a `metadata.name` field selector. *Wire B/s in* is what the node's API proxy forwarded from the apiserver to the agent's connections, TLS included; *metric B/s in* is the agent's own `haagent_api_received_bytes_total`, \"not measured\" where the agent does not export it. RSS and CPU are from /proc, sampled each second; the kube-apiserver's likewise. The totals are cross-checked against the apiserver's `apiserver_request_total` and `apiserver_longrunning_requests`.\n\n")
	status := "complete"
	if !res.Complete {
		status = "**incomplete**: " + res.Error
	}
	mdTable(&b, []string{"", ""}, [][]string{
		{"date", res.Started.UTC().Format("2006-01-02 15:04") + " UTC"},
		{"command", "`" + res.Command + "`"},
		{"outcome", status},
		{"machine", fmt.Sprintf("%s, %d cores, %d MiB", res.Machine.CPU, res.Machine.Cores, res.Machine.MemoryMiB)},
		{"versions", fmt.Sprintf("Kubernetes %s, haagent %s", res.Versions.Kubernetes, res.Versions.Haagent)},
		{"windows", fmt.Sprintf("idle %s after %s of settling; failover from the crash of a node that is not the coordinator until every phase of its failover was seen", res.Settings.APICostWindow, apiCostSettle)},
	})

	b.WriteString("## Targets\n\n")
	var trows [][]string
	for _, t := range apiTargets(res) {
		s := t.Status
		if s == "missed" {
			s = "**missed**"
		}
		trows = append(trows, []string{t.Name, t.Goal, t.Value, s})
	}
	mdTable(&b, []string{"target", "goal", "measured", "status"}, trows)

	b.WriteString("## Model\n\n")
	b.WriteString("Each figure fitted by least squares over the sizes measured: a + b·N per agent or for the apiserver; a total over all agents as N times a per-agent line, N·(a + b·N), which is a·N when an agent costs the same at every size and grows as N² when each agent's share grows with N (as the bytes of a watch on every Node do). A fit that moves by less than 3 % of its mean over the sizes measured is noise, not growth: it is taken as flat, the mean at every size, and marked (flat). A figure per agent that shrinks as N grows is fitted as a + b/N instead (a fixed cost, such as the standbys' watches of the Lease, shared by more agents), and a total that shrinks per agent as a + b·N. Negative values of a model are shown as 0. With two or three sizes, a model is a straight line through few points: read it as the order of magnitude, and trust its slope only as far as the sizes measured reach.\n\n")
	header := []string{"figure", "unit"}
	var sizes []int
	for _, s := range res.APICost {
		sizes = append(sizes, s.Nodes)
		header = append(header, fmt.Sprintf("N=%d", s.Nodes))
	}
	header = append(header, "model")
	for _, n := range modelSizes {
		header = append(header, fmt.Sprintf("model N=%d", n))
	}
	var mrows [][]string
	for _, m := range ms {
		row := []string{m.Figure.Name, m.Figure.Unit}
		for _, n := range sizes {
			if v, ok := m.Measured[n]; ok {
				row = append(row, num(v))
			} else {
				row = append(row, "not measured")
			}
		}
		if !m.OK {
			row = append(row, "-")
			for range modelSizes {
				row = append(row, "-")
			}
		} else {
			row = append(row, m.Fit.String())
			for _, n := range modelSizes {
				row = append(row, num(max(m.Fit.At(float64(n)), 0)))
			}
		}
		mrows = append(mrows, row)
	}
	mdTable(&b, header, mrows)
	charts := apiCharts(ms)
	for _, p := range apiPlots {
		if _, ok := charts[p.Name]; ok {
			fmt.Fprintf(&b, "![%s](%s)\n\n", p.Title, apiPlotFile(p.Name))
		}
	}

	for _, s := range res.APICost {
		fmt.Fprintf(&b, "## %d nodes\n\n", s.Nodes)
		if s.Error != "" {
			fmt.Fprintf(&b, "**Error**: %s\n\n", s.Error)
		}
		b.WriteString("### Idle\n\n")
		windowTable(&b, s.Idle)
		b.WriteString("### Failover\n\n")
		windowTable(&b, s.Failover)
	}
	return b.String()
}

// apiCostSection is the API-cost section of BENCHMARKS.md.
func apiCostSection(b *strings.Builder, res *Results) {
	b.WriteString("## API-server cost\n\n")
	if len(res.APICost) == 0 {
		b.WriteString("Not run (`-api-cost 0`).\n\n")
		return
	}
	b.WriteString("Per agent, from the apiserver's audit log and the nodes' API proxies; every table, the model to 5000 nodes and the plots are in [API-COST.md](API-COST.md).\n\n")
	var rows [][]string
	for _, s := range res.APICost {
		row := []string{fmt.Sprint(s.Nodes)}
		ot := others(s.Idle)
		if len(ot) == 0 {
			rows = append(rows, append(row, "-", "-", "-", "-", "-", "-"))
			continue
		}
		mw, _ := maxOf(ot, watches)
		mc, _ := maxOf(ot, clusterWide)
		ar, _ := meanOf(ot, reqPS)
		ab, _ := meanOf(ot, wireIn)
		cr, _ := coordOf(s.Idle, reqPS)
		row = append(row, fmt.Sprintf("%.0f (%.0f cluster-wide)", mw, mc), num(ar), num(ab), num(cr))
		if fo := others(s.Failover); len(fo) > 0 {
			fr, _ := meanOf(fo, reqPS)
			row = append(row, num(fr))
		} else {
			row = append(row, "-")
		}
		row = append(row, fmt.Sprintf("%.1f %% / %.0f MiB", 100*s.Idle.Server.CPU, s.Idle.Server.RSSMeanMiB))
		rows = append(rows, row)
	}
	mdTable(b, []string{"nodes", "watches per agent, max", "idle req/s per agent", "idle wire B/s in per agent", "coordinator idle req/s", "failover req/s per agent", "apiserver CPU / RSS, idle"}, rows)
}
