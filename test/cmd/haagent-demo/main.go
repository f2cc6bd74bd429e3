// Command haagent-demo shows, on a real control plane, a node dying and
// haagent failing it over; then the same crash handled by the stock
// Kubernetes controllers alone, and the two side by side. Every figure it
// prints was measured in the same run.
//
//	cd test && go run ./cmd/haagent-demo --control-plane-bin DIR [--haagent BIN]
//
// hack/demo.sh (make demo) builds what it needs and runs it. It needs root,
// for the iptables rules that cut a crashed node off the network.
//
// -ground hollow (HAAGENT_DEMO_GROUND=hollow) runs every node as a real
// kubelet (kubemark, a fake container runtime) in a network namespace of
// its own, beside its agent, instead of a fake kubelet on the host's
// loopback; it takes a few minutes more (a hollow kubelet registers in 10 s
// to 3 minutes) and runs no Prometheus (nothing on the host reaches the
// agents inside the namespaces).
//
// HAAGENT_DEMO_STOCK_FULL=1 also waits (up to 8 minutes after the crash)
// for the stock controllers to evict the pods of the dead node, which with
// the default toleration of 300 s takes about six minutes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/test/cluster"
	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// options of a demo run.
type options struct {
	binDir        string
	haagent       string
	nodes         int
	victim        int
	stabilization time.Duration
	stockFull     bool
	prometheusBin string
	ground        scenario.Ground
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("haagent-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.binDir, "control-plane-bin", getenv("HAAGENT_CONTROL_PLANE_BIN"), "directory of the control-plane binaries (hack/build-control-plane.sh prints it); default $HAAGENT_CONTROL_PLANE_BIN")
	fs.StringVar(&o.haagent, "haagent", "", "haagent binary; empty builds cmd/haagent of this checkout")
	fs.IntVar(&o.nodes, "nodes", 5, "nodes per cluster")
	fs.IntVar(&o.victim, "victim", 4, "number of the node to crash (2..nodes; node-1 is the agents' gossip seed)")
	fs.DurationVar(&o.stabilization, "stabilization", 10*time.Second, "haagent --stabilization: how long the returned node must stay healthy before it is handed back")
	fs.StringVar(&o.prometheusBin, "prometheus-bin", getenv("HAAGENT_PROMETHEUS_BIN"), "directory of prometheus (hack/build-prometheus.sh prints it); a Prometheus then scrapes the agents and the timeline shows the shipped alerts; default $HAAGENT_PROMETHEUS_BIN, empty runs none")
	ground := fs.String("ground", or(getenv("HAAGENT_DEMO_GROUND"), string(scenario.Fake)), "what the nodes run on: fake (a fake kubelet per node on the host's loopback) or hollow (a real kubelet, kubemark, per node in a network namespace of its own; needs root); default $HAAGENT_DEMO_GROUND, else fake")
	fs.BoolVar(&o.stockFull, "stock-full", getenv("HAAGENT_DEMO_STOCK_FULL") == "1", "wait for the stock eviction too (about 6 minutes); default $HAAGENT_DEMO_STOCK_FULL=1")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if o.ground, err = scenario.ParseGround("--ground", *ground); err != nil {
		return o, err
	}
	switch {
	case o.binDir == "":
		return o, errors.New("--control-plane-bin is empty and HAAGENT_CONTROL_PLANE_BIN is not set (hack/build-control-plane.sh prints the directory)")
	case o.nodes < 3 || o.nodes > 20:
		return o, fmt.Errorf("--nodes (%d) must be between 3 and 20", o.nodes)
	case o.victim < 2 || o.victim > o.nodes:
		return o, fmt.Errorf("--victim (%d) must be between 2 and --nodes (%d)", o.victim, o.nodes)
	case o.stabilization < time.Second || o.stabilization > 5*time.Minute:
		return o, fmt.Errorf("--stabilization (%s) must be between 1s and 5m", o.stabilization)
	}
	return o, nil
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "haagent-demo: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{opts: o, p: scenario.NewPrinter(stdout), stdout: stdout}
	if err := d.run(ctx); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "haagent-demo: interrupted; everything it started is stopped")
			return 130
		}
		fmt.Fprintf(stderr, "haagent-demo: FAILED: %v\n", err)
		return 1
	}
	return 0
}

type demo struct {
	opts   options
	p      *scenario.Printer
	stdout io.Writer

	root    string
	haagent string

	// What the two halves measured.
	agents, stock scenario.Measured
	// stockWindow is how long after the crash the stock half watched.
	stockWindow time.Duration
}

func (d *demo) run(ctx context.Context) error {
	var err error
	if d.root, err = cluster.RepoRoot(); err != nil {
		return err
	}
	if n, err := scenario.RemoveStaleRules(); err != nil {
		return fmt.Errorf("remove firewall rules of ended runs: %w", err)
	} else if n > 0 {
		d.p.Printf("removed the firewall rules left behind by %d ended run(s)", n)
	}
	d.haagent = d.opts.haagent
	if d.haagent == "" {
		dir, err := os.MkdirTemp("", "haagent-demo-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		step := d.p.Begin("building cmd/haagent")
		if d.haagent, err = cluster.BuildAgent(ctx, d.root, dir); err != nil {
			return err
		}
		step.Done("built %s", d.haagent)
	}

	d.p.Printf("ground: %s", d.opts.ground.Describe())
	if d.opts.ground == scenario.Hollow && d.opts.prometheusBin != "" {
		d.p.Printf("no Prometheus on the hollow ground: the agents listen inside the nodes' network namespaces, which nothing on the host reaches; the timeline shows no alerts")
		d.opts.prometheusBin = ""
	}
	d.p.Raw("\n=== Part 1 of 2: haagent. %d nodes, each with an agent; node-%d crashes ===\n\n", d.opts.nodes, d.opts.victim)
	if err := d.withAgents(ctx); err != nil {
		return fmt.Errorf("haagent part: %w", err)
	}
	d.p.Raw("\n=== Part 2 of 2: stock Kubernetes. %d nodes, no agents; node-%d crashes the same way ===\n\n", d.opts.nodes, d.opts.victim)
	if err := d.withoutAgents(ctx); err != nil {
		return fmt.Errorf("stock part: %w", err)
	}
	d.comparison()
	return nil
}

// start starts a cluster and makes sure it is stopped: stop must be
// deferred by the caller even when start fails.
func (d *demo) start(ctx context.Context, cfg scenario.Config) (*scenario.Cluster, func(), error) {
	c, err := scenario.Start(ctx, cfg, d.p)
	stop := func() {
		if c == nil {
			return
		}
		step := d.p.Begin("tearing the cluster down (nodes, firewall rules or network namespaces, control plane)")
		if err := c.Stop(); err != nil {
			d.p.Printf("teardown: %v", err)
			return
		}
		step.Done("stopped")
	}
	if err != nil && ctx.Err() == nil {
		d.p.Raw("%s\n", c.Diagnostics(30))
	}
	return c, stop, err
}

func (d *demo) withAgents(ctx context.Context) (err error) {
	c, stop, err := d.start(ctx, scenario.Config{
		BinDir:    d.opts.binDir,
		Nodes:     d.opts.nodes,
		Ground:    d.opts.ground,
		Timings:   scenario.Stock,
		Haagent:   d.haagent,
		AgentArgs: []string{"--stabilization=" + d.opts.stabilization.String()},
		Deploy:    filepath.Join(d.root, "deploy"),

		PrometheusBin: d.opts.prometheusBin,
		RuleFile:      filepath.Join(d.root, "charts/haagent/files/prometheus-rules.yaml"),
		RuleDivisor:   alertTimeDivisor,
	})
	defer stop()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			d.p.Raw("%s\n", c.Diagnostics(30))
		}
	}()
	if err := c.StartWorkload(ctx, d.p); err != nil {
		return err
	}
	var holder string
	if err := scenario.Poll(ctx, 100*time.Millisecond, time.Minute, "a coordinator", func(ctx context.Context) (bool, error) {
		var err error
		holder, err = c.Coordinator(ctx)
		return holder != "", err
	}); err != nil {
		return err
	}
	victim := fmt.Sprintf("node-%d", d.opts.victim)
	pods, err := c.PodsOn(ctx, victim)
	if err != nil {
		return err
	}
	role := "not the coordinator"
	if holder == victim {
		role = "the coordinator itself: another agent must take the Lease first"
	}
	d.p.Printf("coordinator (holder of the haagent-coordinator Lease): %s", holder)
	d.p.Printf("victim: %s, running %s; it is %s", victim, scenario.PodNames(pods), role)

	var alerts *alertPrinter
	if c.Prom != nil {
		alerts = d.watchAlerts(c.Prom)
		defer alerts.stop()
	}
	d.p.Printf("crashing %s: %s", victim, d.opts.ground.CrashDescription())
	cr, err := c.Crash(ctx, victim)
	if err != nil {
		return err
	}
	defer cr.Stop()
	alerts.from(cr.At)
	d.p.Raw("\n  time after the crash, what was seen (API watches; each survivor's /members, polled every 100 ms)\n")
	err = d.stream(ctx, cr, 3*time.Minute, "", func(context.Context) (bool, error) {
		m := cr.Measure()
		_, recovered := m.Get(scenario.Recovered)
		_, dead := m.Get(scenario.DeadEverywhere)
		return recovered && dead, nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, cr.Timeline.Table())
	}
	d.agents = cr.Measure()
	d.p.Raw("\n  summary, from the crash of %s:\n", victim)
	for _, ph := range []scenario.Phase{scenario.DeadEverywhere, scenario.Cordoned, scenario.Tainted, scenario.PodsNotReady,
		scenario.EndpointsRemoved, scenario.Evicted, scenario.ReplacementReady, scenario.Recovered} {
		d.p.Raw("    → %-42s %s\n", ph.Title(), cell(d.agents, ph, "not seen"))
	}
	// The coordinator writes Recovered into its record a moment after the
	// workload is whole; wait for it, briefly, to print the record's figures.
	var rec record.NodeFailover
	recErr := scenario.Poll(ctx, 100*time.Millisecond, 30*time.Second, "the failover record past Recovered", func(ctx context.Context) (bool, error) {
		r, ok, err := c.LatestRecord(ctx, victim)
		rec = r
		return ok && r.Status.WorkloadsRecovered != nil, err
	})
	if recErr != nil {
		d.p.Printf("haagent's record of %s: %v", victim, recErr)
	} else {
		d.p.Raw("  haagent's own record %s: phase %s, %d votes, time to detect %s, time to repair %s (both from the last time a peer heard from the node)\n",
			rec.Name, rec.Status.Phase, len(rec.Status.Votes), orDash(rec.Status.TimeToDetect), orDash(rec.Status.TimeToRepair))
	}

	if alerts != nil {
		// HAAgentNodeDead waits out its for: after the verdict; the node
		// stays down until then, so that the alert shows in the timeline.
		if err := alerts.waitFiring(ctx, "HAAgentNodeDead", "member", victim, time.Minute); err != nil {
			return err
		}
	}
	d.p.Raw("\n")
	d.p.Printf("%s returns (network back, a new kubelet boot, the agent restarted); haagent hands it back after %s of health", victim, d.opts.stabilization)
	returned, err := cr.Return(ctx)
	if err != nil {
		return err
	}
	d.p.Raw("  %+9.3fs  %-18s %s\n", returned.Sub(cr.At).Seconds(), "returned", victim)
	err = d.stream(ctx, cr, 2*time.Minute+d.opts.stabilization, "", func(ctx context.Context) (bool, error) {
		rec, ok, err := c.LatestRecord(ctx, victim)
		return ok && rec.Status.Phase == record.PhaseCompleted, err
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, cr.Timeline.Table())
	}
	d.p.Printf("%s handed back %s after its return: failover record Completed", victim, scenario.Round(time.Since(returned)))
	if alerts != nil {
		if err := alerts.waitResolved(ctx, 2*time.Minute); err != nil {
			return err
		}
	}

	d.p.Raw("\n$ haagent report --kubeconfig <admin kubeconfig>\n")
	out, err := exec.CommandContext(ctx, d.haagent, "report", "--kubeconfig", c.CP.AdminKubeconfig()).CombinedOutput()
	d.p.Raw("%s\n", out)
	if err != nil {
		return fmt.Errorf("haagent report: %w", err)
	}
	return nil
}

func (d *demo) withoutAgents(ctx context.Context) (err error) {
	c, stop, err := d.start(ctx, scenario.Config{
		BinDir:  d.opts.binDir,
		Nodes:   d.opts.nodes,
		Ground:  d.opts.ground,
		Timings: scenario.Stock,
	})
	defer stop()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			d.p.Raw("%s\n", c.Diagnostics(30))
		}
	}()
	if err := c.StartWorkload(ctx, d.p); err != nil {
		return err
	}
	victim := fmt.Sprintf("node-%d", d.opts.victim)
	pods, err := c.PodsOn(ctx, victim)
	if err != nil {
		return err
	}
	d.p.Printf("victim: %s, running %s", victim, scenario.PodNames(pods))
	d.p.Printf("crashing %s the same way; from here only the stock controllers act", victim)
	cr, err := c.Crash(ctx, victim)
	if err != nil {
		return err
	}
	defer cr.Stop()
	d.p.Raw("\n  time after the crash, what was seen (API watches)\n")
	firstActs := func(context.Context) (bool, error) {
		m := cr.Measure()
		for _, ph := range []scenario.Phase{scenario.NodeNotReady, scenario.Tainted, scenario.PodsNotReady, scenario.EndpointsRemoved} {
			if _, ok := m.Get(ph); !ok {
				return false, nil
			}
		}
		return true, nil
	}
	hint := "the node lifecycle controller waits for --node-monitor-grace-period (50 s) without a Lease renewal"
	if err := d.stream(ctx, cr, 3*time.Minute, hint, firstActs); err != nil {
		return fmt.Errorf("%w\n%s", err, cr.Timeline.Table())
	}
	taint, _ := cr.Measure().Get(scenario.Tainted)
	if d.opts.stockFull {
		bound := 8*time.Minute - time.Since(cr.At)
		hint := fmt.Sprintf("the pods tolerate the unreachable taint for 300 s (default tolerationSeconds): eviction due at about %+.0fs", (taint + 300*time.Second).Seconds())
		d.p.Printf("waiting for the stock eviction and the replacement (bounded: 8 minutes after the crash)")
		if err := d.stream(ctx, cr, bound, hint, func(context.Context) (bool, error) {
			_, ok := cr.Measure().Get(scenario.Recovered)
			return ok, nil
		}); err != nil {
			return fmt.Errorf("%w\n%s", err, cr.Timeline.Table())
		}
	} else {
		d.p.Raw("\n  eviction, replacement and recovery: not waited for: default tolerationSeconds 300 → expected at about %+.0fs\n"+
			"  (the taint at %+.1fs plus 300 s); run with HAAGENT_DEMO_STOCK_FULL=1 to measure it.\n",
			(taint + 300*time.Second).Seconds(), taint.Seconds())
	}
	d.stock = cr.Measure()
	d.stockWindow = time.Since(cr.At)
	return nil
}

// stream prints what the crash's watches see, as it happens, until done
// holds or timeout passes. After 10 s with nothing new (30 s from a minute
// after the crash on) it says it is still waiting, with hint.
func (d *demo) stream(ctx context.Context, cr *scenario.Crash, timeout time.Duration, hint string, done func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	lastLine := time.Now()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		for _, l := range cr.NewLines() {
			d.p.Raw("%s\n", scenario.FormatLine(l))
			lastLine = time.Now()
		}
		ok, err := done(ctx)
		if ok {
			// Whatever arrived with the last change.
			for _, l := range cr.NewLines() {
				d.p.Raw("%s\n", scenario.FormatLine(l))
			}
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("not done within %s (last error: %v)", timeout, err)
			}
			return fmt.Errorf("not done within %s", timeout)
		}
		quiet := 10 * time.Second
		if time.Since(cr.At) > time.Minute {
			quiet = 30 * time.Second
		}
		if time.Since(lastLine) >= quiet {
			msg := "nothing new"
			if hint != "" {
				msg += "; " + hint
			}
			d.p.Raw("  %+9.3fs  … %s\n", time.Since(cr.At).Seconds(), msg)
			lastLine = time.Now()
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// comparison prints the two halves side by side.
func (d *demo) comparison() {
	d.p.Raw("\n=== The same crash, side by side (time after the crash; everything measured in this run) ===\n\n")
	header := []string{"phase", "haagent", "stock (default timings)", "stock ÷ haagent"}
	var rows [][]string
	for _, ph := range scenario.Phases() {
		h := cell(d.agents, ph, "not measured")
		s := cell(d.stock, ph, "not measured")
		if ph == scenario.DeadEverywhere {
			s = "n/a (no agents)"
		}
		ha, okH := d.agents.Get(ph)
		st, okS := d.stock.Get(ph)
		ratio := ""
		if okH && okS {
			ratio = scenario.Ratio(st, ha)
		}
		rows = append(rows, []string{ph.Title(), h, s, ratio})
	}
	scenario.WriteTable(d.stdout, header, rows)
	d.p.Raw("\n  \"not measured\": not seen within what this run watched: the stock half watched %s after the crash.\n", scenario.Round(d.stockWindow))
	if _, ok := d.stock.Get(scenario.Cordoned); !ok {
		d.p.Raw("  The stock controllers never cordon a dead node; its NoSchedule and NoExecute taints keep new pods off.\n")
	}
	if _, ok := d.stock.Get(scenario.Evicted); !ok {
		d.p.Raw("  Stock eviction comes 300 s (default tolerationSeconds) after the unreachable taint; HAAGENT_DEMO_STOCK_FULL=1 waits for it.\n")
	}
}

// cell is a phase's time, with its detail, or missing.
func cell(m scenario.Measured, ph scenario.Phase, missing string) string {
	d, ok := m.Get(ph)
	if !ok {
		return missing
	}
	s := "+" + scenario.Seconds(d)
	if detail := m.Detail[ph]; detail != "" {
		s += " (" + detail + ")"
	}
	return s
}

// or is s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
