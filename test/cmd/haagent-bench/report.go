package main

// This file is over 500 lines: the Markdown report and the terminal tables
// share their row builders, and the file reads top to bottom as
// BENCHMARKS.md does.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/haagent/haagent/test/cmd/internal/plot"
	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

// The markers around the simulation section of BENCHMARKS.md.
const (
	simBegin = "<!-- simulation:begin -->"
	simEnd   = "<!-- simulation:end -->"
)

// setupTitles and setupColors, by set-up name.
var setupTitles = map[string]string{setupHaagent: "haagent", setupTuned: "stock tuned", setupDefault: "stock default"}

func setupColor(name string) string {
	switch name {
	case setupHaagent:
		return "#1b9e77"
	case setupTuned:
		return "#d95f02"
	}
	return "#7570b3"
}

// The targets of the tracker issue.
const (
	targetNodes        = 20
	targetP50          = 2.0
	targetP99          = 3.5
	targetVsDefault    = 100.0
	targetVsTuned      = 3.0
	targetRSSMiB       = 40.0
	targetCPUPerSecond = 0.02
)

// targets judges the results against the tracker issue's goals.
func targets(res *Results) []Target {
	var sz *Size
	for _, s := range res.Sizes {
		if s.Nodes == targetNodes {
			sz = s
		}
	}
	at := fmt.Sprintf("at N=%d", targetNodes)
	var out []Target
	for _, ph := range []scenario.Phase{scenario.Cordoned, scenario.EndpointsRemoved} {
		t := Target{
			Name: "crash → " + ph.Title() + " " + at,
			Goal: fmt.Sprintf("p50 ≤ %.1f s, p99 ≤ %.1f s", targetP50, targetP99),
		}
		if st, ok := sz.haagent().stats(ph); sz != nil && ok {
			t.Value = fmt.Sprintf("p50 %.2f s, p99 %.2f s (n=%d)", st.P50, st.P99, st.N)
			t.Status = judge(st.P50 <= targetP50 && st.P99 <= targetP99)
		} else {
			t.Value, t.Status = "-", "not measured"
		}
		out = append(out, t)
	}
	for _, cmp := range []struct {
		setup string
		goal  float64
	}{{setupDefault, targetVsDefault}, {setupTuned, targetVsTuned}} {
		t := Target{
			Name: "evictions vs " + setupTitles[cmp.setup] + " (p50 ratio, every size)",
			Goal: fmt.Sprintf("≥ %.0f× faster", cmp.goal),
		}
		var parts []string
		met, any := true, false
		for _, s := range res.Sizes {
			for _, r := range s.Ratios {
				if r.Phase != scenario.Evicted {
					continue
				}
				v := r.TunedP50
				if cmp.setup == setupDefault {
					v = r.DefaultP50
				}
				if v > 0 {
					any = true
					met = met && v >= cmp.goal
					parts = append(parts, fmt.Sprintf("N=%d: %s", s.Nodes, ratio(v)))
				}
			}
		}
		t.Value, t.Status = strings.Join(parts, ", "), judge(met)
		if !any {
			t.Value, t.Status = "-", "not measured"
		}
		out = append(out, t)
	}
	t := Target{Name: "wrong actions under chaos (every size and kind)", Goal: "0"}
	wrong, kinds := 0, 0
	for _, s := range res.Sizes {
		for _, c := range s.Chaos {
			wrong += c.Wrong.Haagent()
			kinds++
		}
	}
	if kinds > 0 {
		t.Value, t.Status = fmt.Sprintf("%d over %d chaos phases", wrong, kinds), judge(wrong == 0)
	} else {
		t.Value, t.Status = "-", "not measured"
	}
	out = append(out, t)
	rss := Target{Name: "agent RSS " + at, Goal: fmt.Sprintf("≤ %.0f MiB", targetRSSMiB), Value: "-", Status: "not measured"}
	cpu := Target{Name: "agent CPU " + at, Goal: fmt.Sprintf("≤ %.0f %% of one core", 100*targetCPUPerSecond), Value: "-", Status: "not measured"}
	if sz != nil && sz.Cost != nil && len(sz.Cost.Agents) > 0 {
		var anon float64
		for _, a := range sz.Cost.Agents {
			anon += a.AnonMeanMiB / float64(len(sz.Cost.Agents))
		}
		rss.Value = fmt.Sprintf("VmRSS max %.1f MiB, mean %.1f (anonymous: mean %.1f)", sz.Cost.RSSMaxMiB, sz.Cost.RSSMeanMiB, anon)
		rss.Status = judge(sz.Cost.RSSMaxMiB <= targetRSSMiB)
		cpu.Value = fmt.Sprintf("max %.2f %% (mean %.2f %%)", 100*sz.Cost.CPUMax, 100*sz.Cost.CPUMean)
		cpu.Status = judge(sz.Cost.CPUMax <= targetCPUPerSecond)
	}
	out = append(out, rss, cpu)
	return append(out, apiTargets(res)...)
}

func judge(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func (s *Size) haagent() *Setup {
	if s == nil {
		return nil
	}
	return s.setup(setupHaagent)
}

// ratio formats a ratio: 1 decimal under 10, none above.
func ratio(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f×", v)
	}
	return fmt.Sprintf("%.0f×", v)
}

// secs formats seconds with a precision that suits their size.
func secs(v float64) string {
	return scenario.Seconds(time.Duration(v * float64(time.Second)))
}

// plotName is the file of a size's latency plot, relative to the docs.
func plotName(n int) string { return fmt.Sprintf("bench/latency-n%d.svg", n) }

// latencyChart draws a size's phases for every set-up.
func latencyChart(sz *Size) plot.StripChart {
	c := plot.StripChart{
		Title:  fmt.Sprintf("Node crash to each failover phase, %d nodes (log scale)", sz.Nodes),
		XLabel: "seconds after the crash",
		Log:    true,
	}
	for _, ph := range scenario.Phases() {
		g := plot.Group{Label: ph.Title(), Missing: "never while watched"}
		any := false
		for _, s := range sz.Setups {
			if !ph.Applies(s.Name == setupHaagent) {
				g.Series = append(g.Series, plot.Series{Name: setupTitles[s.Name], Color: setupColor(s.Name), Missing: "no such phase"})
				continue
			}
			vs := s.values(ph)
			any = any || len(vs) > 0
			g.Series = append(g.Series, plot.Series{Name: setupTitles[s.Name], Color: setupColor(s.Name), Values: vs})
		}
		if any {
			c.Groups = append(c.Groups, g)
		}
	}
	return c
}

// writeDocs writes benchmarks.json, the plots and BENCHMARKS.md into dir.
func writeDocs(dir string, res *Results) error {
	if err := os.MkdirAll(filepath.Join(dir, "bench"), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "benchmarks.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	for _, sz := range res.Sizes {
		if err := os.WriteFile(filepath.Join(dir, plotName(sz.Nodes)), latencyChart(sz).SVG(), 0o644); err != nil {
			return err
		}
	}
	if err := writeAPICost(dir, res); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "BENCHMARKS.md"), []byte(markdown(res)), 0o644)
}

// writeAPICostOnly writes apicost.json, API-COST.md and its plots: the
// files of an -api-cost-only run, which leaves BENCHMARKS.md alone.
func writeAPICostOnly(dir string, res *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "apicost.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	return writeAPICost(dir, res)
}

// mdTable writes a markdown table.
func mdTable(b *strings.Builder, header []string, rows [][]string) {
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	b.WriteString("\n")
}

// markdown is BENCHMARKS.md.
func markdown(res *Results) string {
	var b strings.Builder
	st := res.Settings
	b.WriteString("# haagent benchmarks\n\n")
	b.WriteString("<!-- Written by test/cmd/haagent-bench (make bench) from benchmarks.json; edits are lost on the next run. -->\n\n")
	b.WriteString("Node failover measured on a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) with simulated nodes: each a fake kubelet (node status, Lease, pods reported Running and Ready) and, in the haagent set-up, a real haagent agent process. A crash cuts the node's address off with iptables, kills its agent (SIGKILL) and stops its kubelet. Every time is measured from the crash to what the API's watches (and the agents' membership tables) show.\n\n")

	b.WriteString("## The run\n\n")
	status := "complete"
	if !res.Complete {
		status = "**incomplete**: " + res.Error
	}
	rows := [][]string{
		{"date", fmt.Sprintf("%s to %s UTC (%s)", res.Started.UTC().Format("2006-01-02 15:04"), res.Finished.UTC().Format("15:04"), res.Finished.Sub(res.Started).Round(time.Second))},
		{"command", "`" + res.Command + "`"},
		{"outcome", status},
		{"machine", fmt.Sprintf("%s, %d cores, %d MiB, %s", res.Machine.CPU, res.Machine.Cores, res.Machine.MemoryMiB, res.Machine.Kernel)},
		{"versions", fmt.Sprintf("Go %s, Kubernetes %s, etcd %s, haagent %s", res.Versions.Go, res.Versions.Kubernetes, res.Versions.Etcd, res.Versions.Haagent)},
		{"sizes", fmt.Sprint(st.Sizes)},
		{"chaos seed", fmt.Sprint(st.Seed)},
	}
	mdTable(&b, []string{"", ""}, rows)

	b.WriteString("## Set-ups\n\n")
	fmt.Fprintf(&b, "Every node runs the sample workload: one pod per node of Deployment `web` (with a Service and a PodDisruptionBudget of maxUnavailable 1) and of StatefulSet `db`, spread by topology constraints. Between crashes the workload is spread one pod per node again (a pod of a node with two is deleted; the scheduler puts its successor on the node with none), outside any measured window, so every crash hits a node with one pod of each.\n\n")
	fmt.Fprintf(&b, "- **haagent**: Kubernetes' default node-failure timings (node-monitor-grace-period 50 s, tolerations 300 s, Leases renewed every 10 s) and a haagent agent per node with its default gossip profile, %s (%s). Extra agent flags: `--stabilization=%s` (a returned node is handed back sooner, to shorten the cycle), `--failover-interval=%s` (the failover rate limit, a guard against mass failover and not a detection timing; production default 30s) and `--fence-bound=%s` (StatefulSet pods of a dead node are force-deleted this long after the death is confirmed; at least `--isolation-timeout` + `--fence-after` (10 s) + 2 s + the action's time + a margin; production default 0, never). %d crashes per size, one at a time: %s.\n",
		st.GossipProfile, gossipBySize(res), st.Stabilization, st.FailoverInterval, st.FenceBound, st.Crashes, crashSchedule(st))
	fmt.Fprintf(&b, "- **stock tuned**: no agents; kube-controller-manager `--node-monitor-period=1s --node-monitor-grace-period=8s`, kube-apiserver default not-ready and unreachable toleration 5 s, fake kubelets renewing their Lease every 2 s. %d crashes per size, one at a time.\n", st.TunedCrashes)
	fmt.Fprintf(&b, "- **stock default**: no agents, every Kubernetes default. Its eviction comes 300 s after the taint, so its %d crashes per size overlap: a new one every %s, never more nodes down at once than stay below the node lifecycle controller's 55 %% unhealthy-zone threshold (past it, in a zone of at most 50 nodes, it stops evicting). The controller taints at most one node per 10 s (`--node-eviction-rate` 0.1/s); crashes %s apart never wait for it, so the figures are those of a single crash.", st.StockCrashes, st.StockGap, st.StockGap)
	if st.StockConcurrent {
		b.WriteString(" The stock clusters run side by side, beside the haagent clusters' chaos phases, never beside a cost window or haagent's crashes: the default ones of every size beside the first size's chaos phases, the tuned ones beside the last size's. The stock figures are set by timeouts of seconds to minutes, which a busier machine shifts by milliseconds, and a busier machine can only make the chaos harder on the agents.")
		if st.Beside != "" {
			b.WriteString(" The scale simulation runs in the first of these windows too: it runs in virtual time, so the machine's load changes how long it takes, not what it measures.")
		}
	}
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "Percentiles: %s.\n\n", st.Percentiles)
	b.WriteString("Phases: *dead on every survivor*, every other agent's membership table lists the node dead; *Ready≠True*, the Node's Ready condition left True; *cordoned*, spec.unschedulable set; *tainted*, the first of haagent.io/dead or node.kubernetes.io/unreachable or not-ready; *pods NotReady*, the Ready condition of the node's Deployment pod; *out of the Service endpoints*, from the EndpointSlices: the pod no longer a ready endpoint; *evicted*, the pod got its deletionTimestamp (eviction accepted, or deleted by the taint eviction controller); *replacement ready*, a new Deployment pod Running and Ready elsewhere, counted only after this crash's eviction; *StatefulSet pod ready elsewhere*, the node's `db` pod Running and Ready again, under its name, on another node; *workload recovered*, the Deployment has all its replicas Running and Ready again.\n\n")

	b.WriteString("## Targets\n\n")
	var trows [][]string
	for _, t := range res.Targets {
		s := t.Status
		if s == "missed" {
			s = "**missed**"
		}
		trows = append(trows, []string{t.Name, t.Goal, t.Value, s})
	}
	mdTable(&b, []string{"target", "goal", "measured", "status"}, trows)

	for _, sz := range res.Sizes {
		fmt.Fprintf(&b, "## Failover latency, %d nodes\n\n", sz.Nodes)
		for _, s := range sz.Setups {
			coord := 0
			for _, r := range s.Crashes {
				if r.Coordinator {
					coord++
				}
			}
			fmt.Fprintf(&b, "- %s: %s; %d crashes (%s)", setupTitles[s.Name], s.Description, len(s.Crashes), s.Schedule)
			if s.Name == setupHaagent {
				fmt.Fprintf(&b, "; in %d of them the victim held the coordinator Lease, and another agent had to take it over first", coord)
			}
			b.WriteString("\n")
		}
		b.WriteString("\nSeconds from the crash.\n\n")
		header := []string{"phase"}
		for _, s := range sz.Setups {
			header = append(header, setupTitles[s.Name]+" p50 / p90 / p99 / max (n)")
		}
		var rows [][]string
		for _, ph := range scenario.Phases() {
			row := []string{ph.Title()}
			any := false
			for _, s := range sz.Setups {
				row = append(row, phaseCell(s, ph))
				_, ok := s.stats(ph)
				any = any || ok
			}
			if any {
				rows = append(rows, row)
			}
		}
		mdTable(&b, header, rows)
		if len(sz.Ratios) > 0 {
			b.WriteString("Ratios, stock ÷ haagent:\n\n")
			var rrows [][]string
			for _, r := range sz.Ratios {
				rrows = append(rrows, []string{r.Phase.Title(), ratioCell(r.TunedP50), ratioCell(r.TunedP99), ratioCell(r.DefaultP50), ratioCell(r.DefaultP99)})
			}
			mdTable(&b, []string{"phase", "tuned p50", "tuned p99", "default p50", "default p99"}, rrows)
		}
		fmt.Fprintf(&b, "![failover phases at %d nodes](%s)\n\n", sz.Nodes, plotName(sz.Nodes))
	}

	b.WriteString("## False positives under chaos\n\n")
	fmt.Fprintf(&b, "On the haagent cluster, after its crashes and with every node healthy, no node crashed: each kind of trouble for %s, then %s more of watching. A wrong action is any cordon, haagent.io taint, NodeFailover record or workload pod eviction. The agents keep the settings of the latency runs (the default gossip profile, the flags above; the shorter `--failover-interval` makes a wrong failover easier, not harder). Taints by the node lifecycle controller are counted apart: they are Kubernetes' own.\n\n", st.Chaos, st.ChaosSettle)
	var crows [][]string
	for _, sz := range res.Sizes {
		for _, c := range sz.Chaos {
			injected := "-"
			if c.Injected > 0 {
				injected = fmt.Sprint(c.Injected)
			}
			crows = append(crows, []string{fmt.Sprint(sz.Nodes), string(c.Kind), c.Description, fmt.Sprintf("%.0f s", c.Seconds), injected,
				fmt.Sprint(c.Wrong.Cordons), fmt.Sprint(c.Wrong.HaagentTaints), fmt.Sprint(c.Wrong.Records), fmt.Sprint(c.Wrong.Evictions),
				fmt.Sprintf("**%d**", c.Wrong.Haagent()), fmt.Sprint(c.Wrong.KubernetesTaints)})
		}
	}
	if len(crows) == 0 {
		b.WriteString("Not run.\n\n")
	} else {
		mdTable(&b, []string{"nodes", "kind", "what", "lasted", "stalls/restarts", "cordons", "haagent taints", "records", "evictions", "wrong actions", "node lifecycle taints"}, crows)
	}

	b.WriteString("## Cost per agent\n\n")
	b.WriteString("In a quiet window on the haagent cluster, before its crashes: every agent's VmRSS, RssAnon and RssFile from /proc/<pid>/status and utime+stime from /proc/<pid>/stat each second, its gossip byte counters (`haagent_gossip_sent_bytes_total` and `haagent_gossip_received_bytes_total`, UDP and TCP) at the start and the end. Mean: of the agents' means; max: of any agent. VmRSS counts the pages of the haagent binary mapped in (RssFile), which the page cache shares among processes running the same binary; RssAnon is the agent's own memory.\n\n")
	var krows [][]string
	for _, sz := range res.Sizes {
		if c := sz.Cost; c != nil && len(c.Agents) > 0 {
			var anon, file float64
			for _, a := range c.Agents {
				anon += a.AnonMeanMiB / float64(len(c.Agents))
				file += a.FileMeanMiB / float64(len(c.Agents))
			}
			krows = append(krows, []string{fmt.Sprint(sz.Nodes), fmt.Sprintf("%.0f s", c.WindowSeconds),
				fmt.Sprintf("%.1f / %.1f", c.RSSMeanMiB, c.RSSMaxMiB), fmt.Sprintf("%.1f / %.1f", anon, file),
				fmt.Sprintf("%.2f %% / %.2f %%", 100*c.CPUMean, 100*c.CPUMax),
				fmt.Sprintf("%.1f / %.1f", c.GossipMeanBps/1024, c.GossipMaxBps/1024)})
		}
	}
	if len(krows) == 0 {
		b.WriteString("Not run.\n\n")
	} else {
		mdTable(&b, []string{"nodes", "window", "RSS MiB mean / max", "anon / file MiB (mean)", "CPU of one core mean / max", "gossip KiB/s sent+received mean / max"}, krows)
	}

	apiCostSection(&b, res)

	b.WriteString("## Simulation\n\n")
	b.WriteString(simBegin + "\n")
	switch {
	case res.SimulationMarkdown != "":
		if c := calibration(res); c != "" {
			b.WriteString(c + "\n\n")
		}
		b.WriteString(strings.TrimSpace(res.SimulationMarkdown) + "\n")
	case len(res.Simulation) > 0:
		b.WriteString("The simulator's results are in benchmarks.json, under `simulation`.\n")
	default:
		b.WriteString("Not included in this run: give haagent-bench `-sim-md` (and `-sim-json`), or run it with `-report-from docs/benchmarks.json -sim-md ...` to add them without measuring again.\n")
	}
	b.WriteString(simEnd + "\n")
	return b.String()
}

// crashSchedule says how the haagent cluster's crashes followed each other.
func crashSchedule(st Settings) string {
	s := "each node returns and is handed back before the next crash"
	if st.StatefulEvery > 1 {
		s += fmt.Sprintf("; every %s crash, the first included, waits until the StatefulSet pod runs elsewhere (`--fence-bound` after the confirmation), the others bring the node back once every other phase was seen, so the StatefulSet figures have fewer samples", ordinal(st.StatefulEvery))
	}
	return s
}

// phaseCell is one set-up's figures of a phase.
func phaseCell(s *Setup, ph scenario.Phase) string {
	if !ph.Applies(s.Name == setupHaagent) {
		return "-"
	}
	st, ok := s.stats(ph)
	unseen := s.Unseen[ph]
	if !ok {
		if unseen > 0 {
			return fmt.Sprintf("never while watched (%d of %d crashes, up to %s)", unseen, len(s.Crashes), secs(s.maxWatched()))
		}
		return "-"
	}
	cell := fmt.Sprintf("%s / %s / %s / %s (%d)", secs(st.P50), secs(st.P90), secs(st.P99), secs(st.Max), st.N)
	if unseen > 0 {
		cell += fmt.Sprintf("; %d never", unseen)
	}
	return cell
}

func (s *Setup) maxWatched() float64 {
	var m float64
	for _, r := range s.Crashes {
		m = max(m, r.WatchedSeconds)
	}
	return m
}

func ratioCell(v float64) string {
	if v <= 0 {
		return "-"
	}
	return ratio(v)
}

// printSize prints a size's tables on the terminal.
func (b *bench) printSize(sz *Size) {
	b.p.Raw("\n=== Results at %d nodes (seconds from the crash; nearest-rank percentiles) ===\n\n", sz.Nodes)
	header := []string{"phase"}
	for _, s := range sz.Setups {
		header = append(header, setupTitles[s.Name]+" p50/p90/p99/max (n)")
	}
	var rows [][]string
	for _, ph := range scenario.Phases() {
		row := []string{ph.Title()}
		for _, s := range sz.Setups {
			row = append(row, phaseCell(s, ph))
		}
		rows = append(rows, row)
	}
	scenario.WriteTable(b.stdout, header, rows)
	if len(sz.Ratios) > 0 {
		b.p.Raw("\nstock ÷ haagent:\n")
		var rr [][]string
		for _, r := range sz.Ratios {
			rr = append(rr, []string{r.Phase.Title(), ratioCell(r.TunedP50), ratioCell(r.TunedP99), ratioCell(r.DefaultP50), ratioCell(r.DefaultP99)})
		}
		scenario.WriteTable(b.stdout, []string{"phase", "tuned p50", "tuned p99", "default p50", "default p99"}, rr)
	}
	for _, c := range sz.Chaos {
		b.p.Raw("chaos %-8s %3.0fs: %d wrong actions by haagent, %d node lifecycle taints\n", c.Kind, c.Seconds, c.Wrong.Haagent(), c.Wrong.KubernetesTaints)
	}
}

// printAPITargets prints the API-cost targets on the terminal.
func (b *bench) printAPITargets() {
	if b.stdout == nil {
		return
	}
	b.p.Raw("\n=== API-cost targets ===\n")
	var rows [][]string
	for _, t := range apiTargets(&b.res) {
		rows = append(rows, []string{t.Name, t.Goal, t.Value, t.Status})
	}
	scenario.WriteTable(b.stdout, []string{"target", "goal", "measured", "status"}, rows)
}

// printTargets prints the targets on the terminal.
func (b *bench) printTargets() {
	if b.stdout == nil {
		return
	}
	b.p.Raw("\n=== Targets ===\n")
	var rows [][]string
	for _, t := range b.res.Targets {
		rows = append(rows, []string{t.Name, t.Goal, t.Value, t.Status})
	}
	scenario.WriteTable(b.stdout, []string{"target", "goal", "measured", "status"}, rows)
}

// gossipBySize lists the gossip timings the agents chose at each size, as
// read from their metrics; older results have none.
func gossipBySize(res *Results) string {
	var parts []string
	for _, sz := range res.Sizes {
		if sz.Gossip != "" {
			parts = append(parts, fmt.Sprintf("N=%d: %s", sz.Nodes, sz.Gossip))
		}
	}
	if len(parts) == 0 {
		return "timings not recorded"
	}
	return strings.Join(parts, "; ")
}
