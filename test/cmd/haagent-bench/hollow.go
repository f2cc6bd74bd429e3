package main

// The hollow ground's report: BENCHMARKS-HOLLOW.md and
// benchmarks-hollow.json, with the haagent figures beside those of the
// fake run in benchmarks.json. A hollow run never writes the fake run's
// files.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

// The hollow run's files, in the docs directory.
const (
	hollowReport = "BENCHMARKS-HOLLOW.md"
	hollowJSON   = "benchmarks-hollow.json"
	fakeJSON     = "benchmarks.json"
)

// hollowPlotName is the file of a size's hollow latency plot.
func hollowPlotName(n int) string { return fmt.Sprintf("bench/hollow-latency-n%d.svg", n) }

// gitCommit is the checkout's short commit, with "-dirty" when it has
// changes; "" when git cannot tell.
func gitCommit(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty", "--abbrev=7").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// readFakeResults reads the fake run's results: path, or benchmarks.json
// in docs. A missing default file is no error (nil results): the report
// then says there is nothing to compare with.
func readFakeResults(path, docs string) (*Results, error) {
	explicit := path != ""
	if !explicit {
		path = filepath.Join(docs, fakeJSON)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fake results to compare with: %w", err)
	}
	var res Results
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("fake results %s: %w", path, err)
	}
	if res.Schema != SchemaVersion {
		return nil, fmt.Errorf("fake results %s: schema %q, this program reads %q", path, res.Schema, SchemaVersion)
	}
	if res.Ground == string(scenario.Hollow) {
		return nil, fmt.Errorf("fake results %s: a hollow run's results, not the fake ground's", path)
	}
	return &res, nil
}

// writeHollow writes the hollow run's files (see write).
func (b *bench) writeHollow() error {
	fake, err := readFakeResults(b.opts.compareWith, b.opts.docs)
	if err != nil {
		return err
	}
	if err := writeHollowDocs(b.opts.docs, &b.res, fake); err != nil {
		return err
	}
	for _, sz := range b.res.Sizes {
		b.printHollowComparison(sz, fake)
	}
	b.p.Raw("\nresults: %s, report: %s, plots: %s\n", filepath.Join(b.opts.docs, hollowJSON),
		filepath.Join(b.opts.docs, hollowReport), filepath.Join(b.opts.docs, "bench", "hollow-*.svg"))
	return nil
}

// writeHollowDocs writes benchmarks-hollow.json, the hollow plots and
// BENCHMARKS-HOLLOW.md into dir; fake (nil: none) is the fake run.
func writeHollowDocs(dir string, res *Results, fake *Results) error {
	if err := os.MkdirAll(filepath.Join(dir, "bench"), 0o755); err != nil {
		return err
	}
	// Targets are the fake benchmark's; a hollow run is judged against
	// the fake figures instead.
	res.Targets = nil
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, hollowJSON), append(data, '\n'), 0o644); err != nil {
		return err
	}
	for _, sz := range res.Sizes {
		c := latencyChart(sz)
		c.Title = fmt.Sprintf("Node crash to each failover phase, %d hollow nodes (log scale)", sz.Nodes)
		if err := os.WriteFile(filepath.Join(dir, hollowPlotName(sz.Nodes)), c.SVG(), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, hollowReport), []byte(hollowMarkdown(res, fake)), 0o644)
}

// fakeSize is the fake run's haagent set-up at n nodes, nil without one.
func fakeSize(fake *Results, n int) *Setup {
	if fake == nil {
		return nil
	}
	for _, sz := range fake.Sizes {
		if sz.Nodes == n {
			return sz.haagent()
		}
	}
	return nil
}

// shortCell is a phase's p50 / p90 / max (n), or "-".
func shortCell(s *Setup, ph scenario.Phase) string {
	st, ok := s.stats(ph)
	if !ok {
		if s != nil && s.Unseen[ph] > 0 {
			return fmt.Sprintf("never while watched (%d)", s.Unseen[ph])
		}
		return "-"
	}
	return fmt.Sprintf("%s / %s / %s (%d)", secs(st.P50), secs(st.P90), secs(st.Max), st.N)
}

// diffCell is hollow's p50 minus fake's, and their ratio.
func diffCell(hollow, fake *Setup, ph scenario.Phase) string {
	h, okH := hollow.stats(ph)
	f, okF := fake.stats(ph)
	if !okH || !okF {
		return "-"
	}
	d := h.P50 - f.P50
	sign := "+"
	if d < 0 {
		sign = "−"
	}
	cell := sign + secs(math.Abs(d))
	if f.P50 > 0 {
		cell += fmt.Sprintf(" (%.2f×)", h.P50/f.P50)
	}
	return cell
}

// comparisonRows are the side-by-side rows of a size.
func comparisonRows(hollow, fake *Setup) [][]string {
	var rows [][]string
	for _, ph := range scenario.Phases() {
		if !ph.Applies(true) {
			continue
		}
		rows = append(rows, []string{ph.Title(), shortCell(hollow, ph), shortCell(fake, ph), diffCell(hollow, fake, ph)})
	}
	return rows
}

var comparisonHeader = []string{"phase", "hollow p50 / p90 / max (n)", "fake p50 / p90 / max (n)", "hollow − fake, p50"}

// groundsDiffer says what differs between the grounds.
const groundsDiffer = "What differs between the grounds. **Fake**: each node is a fake kubelet inside the benchmark process, on an address of the host's loopback; it renews its Lease every 10 s and reports a bound pod Running and Ready at once (no sandbox, no container start, no probe); its agent runs on the host, and a crash drops the node's address with iptables in the host's namespace and stops the fake kubelet. **Hollow**: each node is the real kubelet code (kubemark `--morph=kubelet`: node status, its Lease renewed every 10 s, pod workers, the status manager, graceful termination) over a fake container runtime, in a network namespace of its own linked to a hub bridge by a veth, with its agent in the same namespace (the agents gossip across the bridge, through per-node network stacks, not over loopback); a crash sets the node's link down and SIGKILLs its kubelet and agent, and a return boots a new kubelet process, which takes 10 s or more before the node is Ready again. Detection (dead on every survivor, cordon, taint) is haagent's gossip and API calls on both grounds; what follows the eviction (replacement ready, workload recovered, StatefulSet pod elsewhere) waits for a real kubelet's pod worker on the hollow ground. The hollow kubelets also share the same cores with the control plane and the agents (about one process more per node), so the machine is busier than on the fake ground."

// hollowMarkdown is BENCHMARKS-HOLLOW.md.
func hollowMarkdown(res *Results, fake *Results) string {
	var b strings.Builder
	st := res.Settings
	b.WriteString("# haagent benchmarks on hollow nodes\n\n")
	b.WriteString("<!-- Written by test/cmd/haagent-bench -ground hollow (make bench-hollow) from benchmarks-hollow.json; edits are lost on the next run. -->\n\n")
	b.WriteString("The crash benchmark of [BENCHMARKS.md](BENCHMARKS.md), run on the **hollow ground**: every node a real kubelet (kubemark, over a fake container runtime) in a network namespace of its own, beside a real haagent agent, instead of a fake kubelet on the host's loopback. The control plane is the same real one (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) with Kubernetes' default node-failure timings. Every time is measured from the crash to what the API's watches (and the agents' membership tables) show. `make bench-hollow` writes this file, `benchmarks-hollow.json` and `bench/hollow-latency-n*.svg`; it never touches the fake run's files.\n\n")

	b.WriteString("## The run\n\n")
	status := "complete"
	if !res.Complete {
		status = "**incomplete**: " + res.Error
	}
	commit := res.Commit
	if commit == "" {
		commit = "unknown"
	}
	rows := [][]string{
		{"ground", "hollow (kubemark kubelets, a network namespace per node)"},
		{"date", fmt.Sprintf("%s to %s UTC (%s)", res.Started.UTC().Format("2006-01-02 15:04"), res.Finished.UTC().Format("15:04"), res.Finished.Sub(res.Started).Round(time.Second))},
		{"commit", commit},
		{"command", "`" + res.Command + "`"},
		{"outcome", status},
		{"machine", fmt.Sprintf("%s, %d cores, %d MiB, %s", res.Machine.CPU, res.Machine.Cores, res.Machine.MemoryMiB, res.Machine.Kernel)},
		{"versions", fmt.Sprintf("Go %s, Kubernetes %s (kubelet: kubemark of the same release), etcd %s, haagent %s", res.Versions.Go, res.Versions.Kubernetes, res.Versions.Etcd, res.Versions.Haagent)},
		{"sizes", fmt.Sprint(st.Sizes)},
		{"crashes per size", fmt.Sprint(st.Crashes)},
	}
	mdTable(&b, []string{"", ""}, rows)

	b.WriteString("## Set-up\n\n")
	fmt.Fprintf(&b, "Every node runs the sample workload of BENCHMARKS.md: one pod per node of Deployment `web` (with a Service and a PodDisruptionBudget of maxUnavailable 1) and of StatefulSet `db`, spread one per node again between crashes. **haagent**: Kubernetes' default node-failure timings and a haagent agent per node with its default gossip profile, %s (%s). Extra agent flags: `--stabilization=%s`, `--failover-interval=%s`, `--fence-bound=%s`, as in the fake run. %d crashes per size, one at a time: %s.\n\n",
		st.GossipProfile, gossipBySize(res), st.Stabilization, st.FailoverInterval, st.FenceBound, st.Crashes, crashSchedule(st))
	var skipped []string
	if st.TunedCrashes == 0 {
		skipped = append(skipped, "the **stock tuned** cluster (impossible here: a real kubelet renews its Lease every 10 s, too seldom for the tuned 8 s grace period)")
	}
	if st.StockCrashes == 0 {
		skipped = append(skipped, "the **stock default** cluster (its figures are set by the 50 s grace period and 300 s tolerations, not by the kubelet: see BENCHMARKS.md)")
	}
	if st.APICostWindow == "" {
		skipped = append(skipped, "the **API cost** (a hollow node's kubelet and agent share its address and API proxy: the agent's requests cannot be told apart)")
	}
	if st.Chaos == "0s" {
		skipped = append(skipped, "the **chaos** phases")
	}
	if st.CostWindow == "0s" {
		skipped = append(skipped, "the **cost** window")
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&b, "Not run on this ground: %s.\n\n", strings.Join(skipped, "; "))
	}
	fmt.Fprintf(&b, "Percentiles: %s. With %d crashes per size, p90 is the second-largest sample and p99 the largest.\n\n", st.Percentiles, st.Crashes)

	b.WriteString("## Hollow against fake\n\n")
	if fake == nil {
		b.WriteString("No fake run's results (benchmarks.json) were found to compare with.\n\n")
	} else {
		fc := fake.Commit
		if fc == "" {
			fc = fake.Versions.Haagent
		}
		fmt.Fprintf(&b, "The fake figures are the haagent set-up of [BENCHMARKS.md](BENCHMARKS.md) (`benchmarks.json`: %s UTC, `%s`, haagent %s, %d crashes per size, on %s), read as they are; the hollow figures are this run's. Seconds from the crash.",
			fake.Started.UTC().Format("2006-01-02 15:04"), fake.Command, fc, fake.Settings.Crashes, machineText(fake.Machine))
		if caveat := runsDiffer(res, fake); caveat != "" {
			b.WriteString(" " + caveat)
		}
		b.WriteString("\n\n")
	}
	for _, sz := range res.Sizes {
		h := sz.haagent()
		f := fakeSize(fake, sz.Nodes)
		fmt.Fprintf(&b, "### %d nodes\n\n", sz.Nodes)
		if f == nil && fake != nil {
			fmt.Fprintf(&b, "The fake run has no %d-node haagent cluster.\n\n", sz.Nodes)
		}
		mdTable(&b, comparisonHeader, comparisonRows(h, f))
		if line := differenceSummary(h, f); line != "" {
			b.WriteString(line + "\n\n")
		}
		if line := handBack(h); line != "" {
			b.WriteString(line + "\n\n")
		}
		fmt.Fprintf(&b, "![hollow latency, %d nodes](%s)\n\n", sz.Nodes, hollowPlotName(sz.Nodes))
	}
	b.WriteString(groundsDiffer + "\n\n")

	b.WriteString("## Every set-up, every percentile\n\n")
	for _, sz := range res.Sizes {
		fmt.Fprintf(&b, "### %d nodes\n\n", sz.Nodes)
		for _, s := range sz.Setups {
			coord := 0
			for _, r := range s.Crashes {
				if r.Coordinator {
					coord++
				}
			}
			fmt.Fprintf(&b, "- %s: %s; %d crashes (%s); in %d of them the victim held the coordinator Lease\n", setupTitles[s.Name], s.Description, len(s.Crashes), s.Schedule, coord)
		}
		b.WriteString("\n")
		header := []string{"phase"}
		for _, s := range sz.Setups {
			header = append(header, setupTitles[s.Name]+" p50 / p90 / p99 / max (n)")
		}
		var prow [][]string
		for _, ph := range scenario.Phases() {
			row := []string{ph.Title()}
			for _, s := range sz.Setups {
				row = append(row, phaseCell(s, ph))
			}
			prow = append(prow, row)
		}
		mdTable(&b, header, prow)
		for _, c := range sz.Chaos {
			fmt.Fprintf(&b, "- chaos %s, %.0f s: %d wrong actions by haagent, %d node lifecycle taints\n", c.Kind, c.Seconds, c.Wrong.Haagent(), c.Wrong.KubernetesTaints)
		}
		if sz.Cost != nil {
			fmt.Fprintf(&b, "- agent cost over %.0f s: RSS mean %.1f MiB (max %.1f), CPU mean %.2f %% of a core (max %.2f %%)\n\n",
				sz.Cost.WindowSeconds, sz.Cost.RSSMeanMiB, sz.Cost.RSSMaxMiB, 100*sz.Cost.CPUMean, 100*sz.Cost.CPUMax)
		}
	}
	return b.String()
}

// machineText is a machine in a few words.
func machineText(m Machine) string {
	return fmt.Sprintf("%s, %d cores, %d MiB", m.CPU, m.Cores, m.MemoryMiB)
}

// runsDiffer says what, besides the ground, differs between the two runs.
func runsDiffer(res, fake *Results) string {
	var parts []string
	if machineText(res.Machine) != machineText(fake.Machine) {
		parts = append(parts, fmt.Sprintf("a different machine (this run: %s)", machineText(res.Machine)))
	}
	if res.Versions.Go != fake.Versions.Go {
		parts = append(parts, fmt.Sprintf("another Go (%s, fake run %s)", res.Versions.Go, fake.Versions.Go))
	}
	if res.Settings.Crashes != fake.Settings.Crashes {
		parts = append(parts, fmt.Sprintf("another number of crashes (%d, fake run %d: the p90 and max of the fewer samples are the less sure)", res.Settings.Crashes, fake.Settings.Crashes))
	}
	if len(parts) == 0 {
		return ""
	}
	return "**Besides the ground, the runs differ in** " + strings.Join(parts, "; ") + ": differences of a tenth of a second are within what these change."
}

// differenceSummary puts a size's p50 differences in a sentence: the
// phases up to the eviction (detection and haagent's actions) and those
// after it (a kubelet starts the replacement).
func differenceSummary(hollow, fake *Setup) string {
	if hollow == nil || fake == nil {
		return ""
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	n := 0
	for _, ph := range []scenario.Phase{scenario.DeadEverywhere, scenario.NodeNotReady, scenario.Cordoned, scenario.Tainted,
		scenario.PodsNotReady, scenario.EndpointsRemoved, scenario.Evicted} {
		h, okH := hollow.stats(ph)
		f, okF := fake.stats(ph)
		if okH && okF {
			n++
			lo, hi = min(lo, h.P50-f.P50), max(hi, h.P50-f.P50)
		}
	}
	if n == 0 {
		return ""
	}
	out := fmt.Sprintf("From the crash to the eviction (%d phases) hollow's p50 is %+.2f s to %+.2f s from fake's", n, lo, hi)
	if h, ok := hollow.stats(scenario.ReplacementReady); ok {
		if f, ok := fake.stats(scenario.ReplacementReady); ok {
			d, word := h.P50-f.P50, "later"
			if d < 0 {
				d, word = -d, "sooner"
			}
			out += fmt.Sprintf("; the replacement pod is ready %.2f s %s than on the fake ground (p50): on the hollow ground a real kubelet's pod worker starts it and reports it Running and Ready, on the fake ground the fake kubelet reports it at once", d, word)
		}
	}
	return out + "."
}

// handBack sums up the hand-backs: from a node's return (a new kubelet
// booted and Ready) to its record Completed.
func handBack(s *Setup) string {
	if s == nil {
		return ""
	}
	var xs []float64
	for _, r := range s.Crashes {
		if r.HandBackSeconds > 0 {
			xs = append(xs, r.HandBackSeconds)
		}
	}
	if len(xs) == 0 {
		return ""
	}
	st := scenario.Summarize(xs)
	return fmt.Sprintf("Hand-back, from the node's return (on the hollow ground: after its new kubelet is Ready) to its failover record Completed: p50 %s, max %s (%d).", secs(st.P50), secs(st.Max), st.N)
}

// printHollowComparison prints a size's side-by-side table on the terminal.
func (b *bench) printHollowComparison(sz *Size, fake *Results) {
	if b.stdout == nil {
		return
	}
	b.p.Raw("\n=== %d nodes: hollow against fake (seconds from the crash) ===\n\n", sz.Nodes)
	scenario.WriteTable(b.stdout, comparisonHeader, comparisonRows(sz.haagent(), fakeSize(fake, sz.Nodes)))
}
