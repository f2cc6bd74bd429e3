// Command haagent-bench measures node failover on a real control plane, with
// haagent and with the stock Kubernetes controllers alone, and writes the
// figures, the plots and the report.
//
//	cd test && go run ./cmd/haagent-bench --control-plane-bin DIR [flags]
//
// hack/bench.sh (make bench) builds what it needs and runs it. It needs
// root, for the iptables rules that cut a crashed node off the network.
//
// For each cluster size of -sizes, three set-ups, one cluster each, every
// node running the sample workload (one pod per node of Deployment web, with
// a Service and a PodDisruptionBudget, and of StatefulSet db):
//
//   - haagent: stock control-plane timings, an agent per node (its default
//     gossip profile, auto; the report states the timings it chose). First a quiet window in which every agent's memory, CPU and
//     gossip traffic is sampled (-cost). Then -crashes crashes, one after the
//     other, of a different node each time; after each, the node returns,
//     haagent hands it back (--stabilization=3s) and the workload is spread
//     one pod per node again before the next crash. Then the chaos phases
//     (-chaos each): 10 % and 30 % packet loss, agent stalls, agent
//     restarts, no crash, every cordon, taint, record or eviction counted as
//     a wrong action.
//   - stock tuned: no agents; node-monitor-grace-period 8 s, period 1 s,
//     tolerations 5 s, Leases renewed every 2 s. -tuned-crashes crashes, one
//     after the other.
//   - stock default: no agents, Kubernetes' defaults. Eviction comes 300 s
//     after the taint, so -stock-crashes crashes overlap: one every
//     -stock-gap, never more nodes down at once than MaxDown.
//
// With -stock-concurrent the stock clusters run side by side in side
// windows, beside the haagent clusters' chaos phases, never beside a cost
// window or haagent's crashes: the default ones of every size (and the
// -beside command, the scale simulation under make bench) beside the first
// size's chaos, the tuned ones beside the last size's. Every
// -stateful-every-th haagent crash waits for the StatefulSet pod to run
// elsewhere (--fence-bound after the confirmation); the others bring the
// node back once every other phase was seen.
//
// With -api-cost (default 1m), each haagent cluster runs with the
// apiserver's audit log, and after the cost window comes the API-cost
// measurement: an idle window, then one crash of a node that is not the
// coordinator, measured until its failover is over; per agent, its watches,
// its requests by verb and resource, the bytes it received from the API,
// its memory, and the apiserver's CPU and memory. -api-cost-sizes (default
// 50) adds a cluster per size for these figures alone; -api-cost-only
// (make apicost) measures them alone, at -api-cost-sizes, into API-COST.md
// and apicost.json. Each figure is then modelled to 5000 nodes.
//
// -ground hollow (make bench-hollow) runs every node as a real kubelet
// (kubemark, a fake container runtime) in a network namespace of its own,
// beside its agent, instead of a fake kubelet on the host's loopback. Its
// results go to <docs>/benchmarks-hollow.json, its report, with the
// haagent figures beside those of the fake run in <docs>/benchmarks.json
// (-compare-with), to <docs>/BENCHMARKS-HOLLOW.md and its plots to
// <docs>/bench/hollow-*.svg: a hollow run leaves the fake run's files
// alone. The tuned stock timings and the API cost cannot run there (see
// scenario.Config.Validate) and are off; the stock default cluster is off
// unless -stock is given.
//
// Every time is from the crash to the phase, measured on the API's watches
// (and the agents' /members). The results go, as JSON, to
// <docs>/benchmarks.json; the plots to <docs>/bench/*.svg; the report to
// <docs>/BENCHMARKS.md. -report-from rewrites the report and the plots from
// an earlier JSON file without running anything. The exit status is 0 only
// when every part ran and every required phase of every crash was measured.
package main

// This file is over 500 lines: flags, the run, the clusters and the results
// plumbing; the schedule is in schedule.go, the report in report.go.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/test/cluster"
	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// options of a benchmark run.
type options struct {
	binDir           string
	haagent          string
	docs             string
	reportFrom       string
	simJSON          string
	simCalJSON       string
	simMD            string
	sizes            []int
	crashes          int
	tunedCrashes     int
	stockCrashes     int
	stockGap         time.Duration
	stockConcurrent  bool
	failoverInterval time.Duration
	fenceBound       time.Duration
	chaos            time.Duration
	cost             time.Duration
	apiCost          time.Duration
	apiCostFailover  bool
	apiCostSizes     []int
	apiCostOnly      bool
	seed             uint64
	stock            bool
	tuned            bool
	statefulEvery    int
	beside           string
	ground           scenario.Ground
	// compareWith is the fake run's results, shown beside a hollow run's.
	compareWith string
}

// Agent settings of the haagent cluster that the flags do not choose.
const (
	stabilization = 3 * time.Second
	// chaosSettle is how long wrong actions are still watched for after
	// each chaos phase ends.
	chaosSettle = 15 * time.Second
	// fenceAfter is the agents' --fence-after (their default), which
	// --fence-bound must exceed. The agents accept no bound below 19 s:
	// max(--isolation-timeout (5 s, the auto profile's largest band: a
	// cut-off node may be in another band than its coordinator), the
	// apiserver check's period + timeout (3 s)) + --fence-after + 2 x 1 s
	// fence checks + no action time (none) + the 2 s least margin.
	fenceAfter = 10 * time.Second
)

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("haagent-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var sizes, apiSizes string
	fs.StringVar(&o.binDir, "control-plane-bin", getenv("HAAGENT_CONTROL_PLANE_BIN"), "directory of the control-plane binaries (hack/build-control-plane.sh prints it); default $HAAGENT_CONTROL_PLANE_BIN")
	fs.StringVar(&o.haagent, "haagent", "", "haagent binary; empty builds cmd/haagent of this checkout")
	fs.StringVar(&o.docs, "docs", "", "where BENCHMARKS.md, benchmarks.json and bench/*.svg go; default docs/ of the checkout")
	fs.StringVar(&o.reportFrom, "report-from", "", "run nothing: rewrite the report and the plots from this JSON results file")
	fs.StringVar(&o.simJSON, "sim-json", "", "the simulator's JSON results, kept in benchmarks.json (optional)")
	fs.StringVar(&o.simCalJSON, "sim-calibration-json", "", "the simulator's JSON results of its N=20 run, kept in benchmarks.json and compared with the real 20-node cluster's detection (optional)")
	fs.StringVar(&o.simMD, "sim-md", "", "the simulator's markdown, put in the simulation section of BENCHMARKS.md (optional)")
	fs.StringVar(&sizes, "sizes", "7,20", "cluster sizes (nodes), comma-separated, each 3 to 50, at most 4")
	fs.IntVar(&o.crashes, "crashes", 20, "crashes of the haagent cluster per size, one after the other (0 skips it, chaos and cost included)")
	fs.IntVar(&o.tunedCrashes, "tuned-crashes", 10, "crashes of the tuned stock cluster per size, one after the other")
	fs.IntVar(&o.stockCrashes, "stock-crashes", 3, "crashes of the default stock cluster per size, overlapping (each takes about 6 minutes)")
	fs.DurationVar(&o.stockGap, "stock-gap", 20*time.Second, "time between two crashes of the default stock cluster; at least 10s, the node lifecycle controller's --node-eviction-rate (0.1/s) spacing of taints")
	fs.BoolVar(&o.stockConcurrent, "stock-concurrent", true, "run the stock clusters side by side, beside the haagent clusters' chaos phases (never beside a cost window or crashes): the default ones of every size beside the first size's, the tuned ones beside the last size's")
	fs.DurationVar(&o.failoverInterval, "failover-interval", 5*time.Second, "the agents' --failover-interval (a rate limit: one more failover each interval after a burst of 3); crashes of the haagent cluster come at least this far apart")
	fs.DurationVar(&o.fenceBound, "fence-bound", 19*time.Second, "the agents' --fence-bound: after a confirmed death, when StatefulSet pods may be force-deleted; the agents accept no less than 19s with the auto profile and --fence-after 10s")
	fs.DurationVar(&o.chaos, "chaos", time.Minute, "duration of each chaos phase (packet loss 10 %, 30 %, stalls, restarts) on the haagent cluster; 0 skips them")
	fs.DurationVar(&o.cost, "cost", 30*time.Second, "quiet window in which the agents' memory, CPU and gossip traffic are sampled; 0 skips it")
	fs.DurationVar(&o.apiCost, "api-cost", time.Minute, "idle window of the API-cost measurement (what each agent costs the kube-apiserver; the clusters then run with the apiserver's audit log), at every size of -sizes and -api-cost-sizes, followed by one crash measured until its failover is over; 0 skips it")
	fs.BoolVar(&o.apiCostFailover, "api-cost-failover", true, "measure the API cost of one crash and its failover after the idle window")
	fs.StringVar(&apiSizes, "api-cost-sizes", "50", "more cluster sizes (nodes, up to 200; 50 is the most a 2-core machine ran), comma-separated, each a cluster of its own for the API-cost figures only; empty for none")
	fs.BoolVar(&o.apiCostOnly, "api-cost-only", false, "measure the API cost alone, at -api-cost-sizes: no failover benchmark, no stock clusters; writes API-COST.md and apicost.json only")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the chaos's random choices; 0 picks one (printed and saved)")
	fs.BoolVar(&o.stock, "stock", true, "measure the stock controllers with default timings")
	fs.BoolVar(&o.tuned, "tuned", true, "measure the stock controllers with tuned timings")
	fs.IntVar(&o.statefulEvery, "stateful-every", 4, "wait for the StatefulSet pod to run elsewhere (about --fence-bound after the crash) on every Kth crash of the haagent cluster, the first included; the others bring the node back once the other phases are seen (1: every crash)")
	fs.StringVar(&o.beside, "beside", "", "a shell command (bash -c) run in the first side window, beside the stock clusters' waits and the chaos phases, never beside a cost window or crashes; the window ends when it has (make bench runs the scale simulation so)")
	ground := fs.String("ground", string(scenario.Fake), "what the nodes run on: fake (a fake kubelet per node on the host's loopback; writes BENCHMARKS.md) or hollow (a real kubelet, kubemark, per node in a network namespace of its own; writes BENCHMARKS-HOLLOW.md and benchmarks-hollow.json, compared with -compare-with; the tuned stock timings and the API cost cannot run there and are off, the stock default cluster is off unless -stock is given)")
	fs.StringVar(&o.compareWith, "compare-with", "", "with -ground hollow: the fake run's results shown beside the hollow figures; default benchmarks.json of -docs")
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
	if o.reportFrom != "" {
		return o, nil
	}
	if o.ground == scenario.Hollow {
		if err := hollowDefaults(fs, &o); err != nil {
			return o, err
		}
	} else if o.compareWith != "" {
		return o, errors.New("--compare-with is for -ground hollow")
	}
	if o.sizes, err = parseSizes(sizes); err != nil {
		return o, err
	}
	if o.apiCostSizes, err = parseAPISizes(apiSizes); err != nil {
		return o, err
	}
	switch {
	case o.binDir == "":
		return o, errors.New("--control-plane-bin is empty and HAAGENT_CONTROL_PLANE_BIN is not set (hack/build-control-plane.sh prints the directory)")
	case o.crashes < 0 || o.crashes > 100:
		return o, fmt.Errorf("--crashes (%d) must be between 0 and 100", o.crashes)
	case o.tunedCrashes < 1 || o.tunedCrashes > 100:
		return o, fmt.Errorf("--tuned-crashes (%d) must be between 1 and 100", o.tunedCrashes)
	case o.stockCrashes < 1 || o.stockCrashes > 20:
		return o, fmt.Errorf("--stock-crashes (%d) must be between 1 and 20", o.stockCrashes)
	case o.stockGap < 10*time.Second || o.stockGap > 10*time.Minute:
		return o, fmt.Errorf("--stock-gap (%s) must be between 10s and 10m", o.stockGap)
	case o.failoverInterval < time.Second || o.failoverInterval > 10*time.Minute:
		return o, fmt.Errorf("--failover-interval (%s) must be between 1s and 10m", o.failoverInterval)
	case o.fenceBound <= fenceAfter || o.fenceBound > 10*time.Minute:
		return o, fmt.Errorf("--fence-bound (%s) must be more than the agents' --fence-after (%s) and at most 10m", o.fenceBound, fenceAfter)
	case o.chaos < 0 || o.chaos > 10*time.Minute:
		return o, fmt.Errorf("--chaos (%s) must be between 0 and 10m", o.chaos)
	case o.chaos > 0 && o.chaos < 10*time.Second:
		return o, fmt.Errorf("--chaos (%s) must be 0 (skip) or at least 10s", o.chaos)
	case o.cost < 0 || o.cost > 10*time.Minute:
		return o, fmt.Errorf("--cost (%s) must be between 0 and 10m", o.cost)
	case o.cost > 0 && o.cost < 5*time.Second:
		return o, fmt.Errorf("--cost (%s) must be 0 (skip) or at least 5s", o.cost)
	case o.apiCost < 0 || o.apiCost > 30*time.Minute:
		return o, fmt.Errorf("--api-cost (%s) must be between 0 and 30m", o.apiCost)
	case o.apiCost > 0 && o.apiCost < 10*time.Second:
		return o, fmt.Errorf("--api-cost (%s) must be 0 (skip) or at least 10s", o.apiCost)
	case o.apiCostOnly && (o.apiCost == 0 || len(o.apiCostSizes) == 0):
		return o, errors.New("--api-cost-only needs --api-cost and --api-cost-sizes")
	case o.apiCostOnly:
		return o, nil
	case o.statefulEvery < 1 || o.statefulEvery > 100:
		return o, fmt.Errorf("--stateful-every (%d) must be between 1 and 100", o.statefulEvery)
	case o.crashes == 0 && !o.stock && !o.tuned:
		return o, errors.New("nothing to measure: --crashes is 0, --stock and --tuned are false")
	}
	return o, nil
}

// hollowDefaults turns off, on the hollow ground, what cannot run there
// unless a flag asked for it, and refuses the flags that ask for it.
func hollowDefaults(fs *flag.FlagSet, o *options) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["tuned"] && o.tuned:
		return errors.New("--tuned cannot run with -ground hollow: a real kubelet renews its node Lease every 10 s, too seldom for the tuned 8 s node-monitor-grace-period (every node would flap NotReady); use --tuned=false")
	case set["api-cost"] && o.apiCost > 0, o.apiCostOnly:
		return errors.New("--api-cost cannot run with -ground hollow: a hollow node's kubelet and agent share its address and API proxy, so the agent's API requests cannot be told apart from the kubelet's; use --api-cost=0")
	}
	if v := fs.Lookup("api-cost-sizes").Value.String(); set["api-cost-sizes"] && strings.TrimSpace(v) != "" {
		return fmt.Errorf("--api-cost-sizes (%q) cannot run with -ground hollow: the API cost is measured on the fake ground only; leave it empty", v)
	}
	o.tuned = false
	o.apiCost = 0
	// Parsed after this from the flag's value: empty, no API-cost clusters.
	if err := fs.Set("api-cost-sizes", ""); err != nil {
		return err
	}
	if !set["stock"] {
		o.stock = false
	}
	return nil
}

// parseSizes reads -sizes: distinct sizes from 3 to 50, at most 4.
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("--sizes (%q): %q is not a number", s, f)
		}
		if n < 3 || n > 50 {
			return nil, fmt.Errorf("--sizes (%q): %d must be between 3 and 50", s, n)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("--sizes (%q): %d given twice", s, n)
		}
		out = append(out, n)
	}
	if len(out) > 4 {
		return nil, fmt.Errorf("--sizes (%q): at most 4 sizes", s)
	}
	return out, nil
}

// parseAPISizes reads -api-cost-sizes: distinct sizes from 3 to
// scenario.MaxNodes; empty is none.
func parseAPISizes(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("--api-cost-sizes (%q): %q is not a number", s, f)
		}
		if n < 3 || n > scenario.MaxNodes {
			return nil, fmt.Errorf("--api-cost-sizes (%q): %d must be between 3 and %d", s, n, scenario.MaxNodes)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("--api-cost-sizes (%q): %d given twice", s, n)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "haagent-bench: %v\n", err)
		return 2
	}
	if o.reportFrom != "" {
		if err := rewriteReport(o, stdout); err != nil {
			fmt.Fprintf(stderr, "haagent-bench: %v\n", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{opts: o, p: scenario.NewPrinter(stdout), stdout: stdout}
	b.res.Command = commandLine(args)
	err = b.run(ctx)
	if werr := b.write(err); werr != nil {
		fmt.Fprintf(stderr, "haagent-bench: write results: %v\n", werr)
		if err == nil {
			return 1
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "haagent-bench: interrupted; everything it started is stopped")
			return 130
		}
		fmt.Fprintf(stderr, "haagent-bench: FAILED: %v\n", err)
		return 1
	}
	return 0
}

// commandLine is how the report shows the command: make bench's script
// when it ran the program, the program otherwise.
func commandLine(args []string) string {
	prog := "haagent-bench"
	if os.Getenv("HAAGENT_BENCH_SCRIPT") != "" {
		prog = "hack/bench.sh"
		// bench.sh adds these, in their double-dash spelling: the first
		// two and the side command name paths of the machine, and every
		// one of them is what hack/bench.sh does by itself.
		var kept []string
		for i := 0; i < len(args); i++ {
			switch a := args[i]; {
			case a == "--control-plane-bin" || a == "--haagent" || a == "--beside":
				i++
			case strings.HasPrefix(a, "--control-plane-bin=") || strings.HasPrefix(a, "--haagent="),
				a == "--api-cost=0", a == "--api-cost-sizes=":
			default:
				kept = append(kept, a)
			}
		}
		args = kept
	}
	return strings.TrimSpace(prog + " " + strings.Join(args, " "))
}

type bench struct {
	opts   options
	p      *scenario.Printer
	stdout io.Writer
	res    Results
	root   string
}

func (b *bench) run(ctx context.Context) error {
	o := b.opts
	if o.seed == 0 {
		o.seed = rand.Uint64()
		b.opts.seed = o.seed
	}
	b.res.Schema = SchemaVersion
	b.res.Started = time.Now()
	b.res.Ground = string(o.ground)
	b.res.Settings = Settings{
		Sizes: o.sizes, Crashes: o.crashes, TunedCrashes: o.tunedCrashes, StockCrashes: o.stockCrashes,
		StockGap: o.stockGap.String(), StockConcurrent: o.stockConcurrent,
		FailoverInterval: o.failoverInterval.String(), FenceBound: o.fenceBound.String(), Stabilization: stabilization.String(),
		GossipProfile: gossip.ProfileAuto, Chaos: o.chaos.String(), ChaosSettle: chaosSettle.String(), CostWindow: o.cost.String(), Seed: o.seed,
		APICostSizes: o.apiCostSizes, APICostOnly: o.apiCostOnly, StatefulEvery: o.statefulEvery,
		Percentiles: "nearest rank: the q-quantile is the smallest sample with at least a fraction q of the samples at or below it (with fewer than 100 samples, p99 is the maximum)",
	}
	if o.apiCost > 0 {
		b.res.Settings.APICostWindow = o.apiCost.String()
	}
	if !o.stock {
		b.res.Settings.StockCrashes = 0
	}
	if !o.tuned {
		b.res.Settings.TunedCrashes = 0
	}
	var err error
	if b.root, err = cluster.RepoRoot(); err != nil {
		return err
	}
	b.res.Settings.Beside = relativeTo(b.root, o.beside)
	b.res.Commit = gitCommit(ctx, b.root)
	if b.opts.docs == "" {
		b.opts.docs = filepath.Join(b.root, "docs")
	}
	if err := b.loadSim(); err != nil {
		return err
	}
	b.res.Machine = readMachine()
	if n, err := scenario.RemoveStaleRules(); err != nil {
		return fmt.Errorf("remove firewall rules of ended runs: %w", err)
	} else if n > 0 {
		b.p.Printf("removed the firewall rules left behind by %d ended run(s)", n)
	}
	bin := o.haagent
	needAgents := o.crashes > 0 || (o.apiCost > 0 && len(o.apiCostSizes) > 0)
	if needAgents && bin == "" {
		dir, err := os.MkdirTemp("", "haagent-bench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		step := b.p.Begin("building cmd/haagent")
		if bin, err = cluster.BuildAgent(ctx, b.root, dir); err != nil {
			return err
		}
		step.Done("built")
	}
	b.res.Versions = readVersions(ctx, o.binDir, bin)
	b.p.Printf("seed %d; versions: %s, Kubernetes %s, etcd %s, haagent %s", o.seed, b.res.Versions.Go, b.res.Versions.Kubernetes, b.res.Versions.Etcd, b.res.Versions.Haagent)
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))
	if o.apiCostOnly {
		return b.apiCostSizes(ctx, bin, nil)
	}
	// Every set-up is known before the first cluster starts: the stock
	// clusters of every size run in side windows (see size), the default
	// ones beside the first size's chaos phases, the tuned ones beside the
	// last size's.
	var haagents []*Setup
	var tuned, dflt []func(context.Context) error
	for _, n := range o.sizes {
		sz := &Size{Nodes: n}
		b.res.Sizes = append(b.res.Sizes, sz)
		haagents = append(haagents, b.haagentSetup(sz))
		t, d := b.stockJobs(sz)
		tuned, dflt = append(tuned, t...), append(dflt, d...)
	}
	defer func() {
		for _, sz := range b.res.Sizes {
			for _, s := range sz.Setups {
				s.summarize()
			}
			sz.Ratios = sz.ratios()
			b.printSize(sz)
		}
	}()
	for i, sz := range b.res.Sizes {
		var side []func(context.Context) error
		if i == 0 {
			side = append(side, dflt...)
			if o.beside != "" {
				side = append(side, b.besideJob(o.beside))
			}
		}
		if i == len(b.res.Sizes)-1 {
			side = append(side, tuned...)
		}
		if err := b.size(ctx, sz, haagents[i], side, bin, rng); err != nil {
			return fmt.Errorf("%d nodes: %w", sz.Nodes, err)
		}
	}
	if o.apiCost > 0 && o.crashes > 0 {
		return b.apiCostSizes(ctx, bin, o.sizes)
	}
	return nil
}

// apiCostSizes runs a cluster for the API-cost figures at every size of
// -api-cost-sizes not in done (measured already, on the failover
// benchmark's cluster).
func (b *bench) apiCostSizes(ctx context.Context, bin string, done []int) error {
	for _, n := range b.opts.apiCostSizes {
		if slices.Contains(done, n) {
			continue
		}
		if err := b.apiCostCluster(ctx, n, bin); err != nil {
			return fmt.Errorf("API cost at %d nodes: %w", n, err)
		}
	}
	return nil
}

// agentArgs are the flags the bench gives every agent beyond the harness's.
func (b *bench) agentArgs() []string {
	return []string{
		"--stabilization=" + stabilization.String(),
		"--failover-interval=" + b.opts.failoverInterval.String(),
		"--fence-bound=" + b.opts.fenceBound.String(),
	}
}

// cluster starts a cluster with the whole workload, runs body, and tears
// the cluster down whatever happens.
func (b *bench) cluster(ctx context.Context, s *Setup, cfg scenario.Config, body func(*scenario.Cluster) error) (err error) {
	c, err := scenario.Start(ctx, cfg, b.p)
	defer func() {
		if err != nil && ctx.Err() == nil && c != nil {
			b.p.Raw("%s\n", c.Diagnostics(30))
		}
		step := b.p.Begin("[%s] tearing the cluster down (nodes, firewall rules or network namespaces, control plane)", s.Name)
		if serr := c.Stop(); serr != nil {
			b.p.Printf("teardown: %v", serr)
			err = errors.Join(err, serr)
			return
		}
		step.Done("[%s] stopped", s.Name)
	}()
	if err != nil {
		return err
	}
	if err := c.StartWorkload(ctx, b.p); err != nil {
		return err
	}
	if err := c.StartStatefulWorkload(ctx, b.p); err != nil {
		return err
	}
	return body(c)
}

// cost samples every agent in a quiet window, after a short settling.
func (b *bench) cost(ctx context.Context, c *scenario.Cluster, sz *Size) error {
	step := b.p.Begin("cost: letting the agents settle for 10s, then sampling every agent's /proc and gossip counters every second for %s", b.opts.cost)
	if err := scenario.Sleep(ctx, 10*time.Second); err != nil {
		return err
	}
	agents, err := c.MeasureCost(ctx, b.opts.cost, time.Second)
	if err != nil {
		return err
	}
	sz.Cost = summarizeCost(b.opts.cost, agents)
	step.Done("RSS mean %.1f MiB (max %.1f), CPU mean %.2f %% of a core (max %.2f %%), gossip mean %.0f B/s (max %.0f)",
		sz.Cost.RSSMeanMiB, sz.Cost.RSSMaxMiB, 100*sz.Cost.CPUMean, 100*sz.Cost.CPUMax, sz.Cost.GossipMeanBps, sz.Cost.GossipMaxBps)
	return nil
}

// gossipTimings reads from the first agent's metrics the gossip profile,
// band and timings the agents chose at start (every agent of the cluster
// counts the same few Nodes, so they choose alike).
func gossipTimings(ctx context.Context, c *scenario.Cluster) (string, error) {
	m, err := c.Nodes[0].Agent().Metrics(ctx)
	if err != nil {
		return "", fmt.Errorf("gossip timings: %w", err)
	}
	info, ok := m["haagent_gossip_profile_info"]
	if !ok || len(info.GetMetric()) != 1 {
		return "", errors.New("gossip timings: the agent exports no haagent_gossip_profile_info")
	}
	labels := map[string]string{}
	for _, l := range info.GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	out := fmt.Sprintf("profile %s, band %s:", labels["profile"], labels["band"])
	for _, s := range []struct{ setting, name string }{
		{"probe_interval", "probe"}, {"probe_timeout", "probe timeout"}, {"gossip_interval", "gossip"},
		{"push_pull_interval", "push/pull"}, {"isolation_timeout", "isolation timeout"},
	} {
		v, ok := m.Value("haagent_gossip_timing_seconds", "setting", s.setting)
		if !ok {
			return "", fmt.Errorf("gossip timings: no %s", s.setting)
		}
		out += fmt.Sprintf(" %s %s,", s.name, time.Duration(v*float64(time.Second)).Round(time.Millisecond))
	}
	mult, _ := m.Value("haagent_gossip_suspicion_multiplier")
	return out + fmt.Sprintf(" suspicion ×%g", mult), nil
}

// chaos runs every chaos kind on the haagent cluster, with the cluster made
// whole again between kinds.
func (b *bench) chaos(ctx context.Context, c *scenario.Cluster, sz *Size, r *runner, rng *rand.Rand) error {
	for _, kind := range scenario.ChaosKinds() {
		step := b.p.Begin("[haagent] chaos %s for %s (%s), then %s more of watching", kind, b.opts.chaos, kind.Describe(), chaosSettle)
		res, err := c.Chaos(ctx, kind, b.opts.chaos, chaosSettle, rng, b.p)
		sz.Chaos = append(sz.Chaos, res)
		if err != nil {
			return fmt.Errorf("chaos %s: %w", kind, err)
		}
		step.Done("%d wrong actions by haagent (%d cordons, %d haagent taints, %d records, %d evictions); %d taints by the node lifecycle controller",
			res.Wrong.Haagent(), res.Wrong.Cordons, res.Wrong.HaagentTaints, res.Wrong.Records, res.Wrong.Evictions, res.Wrong.KubernetesTaints)
		for _, e := range res.Wrong.Events {
			b.p.Raw("      %s\n", e)
		}
		if err := r.whole(ctx); err != nil {
			return fmt.Errorf("after chaos %s: %w", kind, err)
		}
	}
	return nil
}

// loadSim reads the simulator's files, when given.
func (b *bench) loadSim() error {
	if b.opts.simJSON != "" {
		data, err := os.ReadFile(b.opts.simJSON)
		if err != nil {
			return err
		}
		if !json.Valid(data) {
			return fmt.Errorf("--sim-json %s: not valid JSON", b.opts.simJSON)
		}
		b.res.Simulation = data
	}
	if b.opts.simCalJSON != "" {
		data, err := os.ReadFile(b.opts.simCalJSON)
		if err != nil {
			return err
		}
		if !json.Valid(data) {
			return fmt.Errorf("--sim-calibration-json %s: not valid JSON", b.opts.simCalJSON)
		}
		b.res.SimulationCalibration = data
	}
	if b.opts.simMD != "" {
		data, err := os.ReadFile(b.opts.simMD)
		if err != nil {
			return err
		}
		b.res.SimulationMarkdown = string(data)
	}
	return nil
}

// write saves the results as JSON and writes the report and the plots,
// whatever the outcome.
func (b *bench) write(runErr error) error {
	if b.opts.docs == "" {
		return nil
	}
	b.res.Finished = time.Now()
	b.res.Complete = runErr == nil
	if runErr != nil {
		b.res.Error = runErr.Error()
	}
	for _, sz := range b.res.Sizes {
		for _, s := range sz.Setups {
			if s.Summary == nil {
				s.summarize()
			}
		}
		sz.Ratios = sz.ratios()
	}
	b.res.Targets = targets(&b.res)
	if b.opts.ground == scenario.Hollow {
		return b.writeHollow()
	}
	if b.opts.apiCostOnly {
		if err := writeAPICostOnly(b.opts.docs, &b.res); err != nil {
			return err
		}
		b.printAPITargets()
		b.p.Raw("\nresults: %s, report: %s, plots: %s\n", filepath.Join(b.opts.docs, "apicost.json"),
			filepath.Join(b.opts.docs, "API-COST.md"), filepath.Join(b.opts.docs, "bench"))
		return nil
	}
	if err := writeDocs(b.opts.docs, &b.res); err != nil {
		return err
	}
	b.printTargets()
	b.p.Raw("\nresults: %s, report: %s, plots: %s\n", filepath.Join(b.opts.docs, "benchmarks.json"),
		filepath.Join(b.opts.docs, "BENCHMARKS.md"), filepath.Join(b.opts.docs, "bench"))
	return nil
}

// rewriteReport is -report-from.
func rewriteReport(o options, stdout io.Writer) error {
	data, err := os.ReadFile(o.reportFrom)
	if err != nil {
		return err
	}
	var res Results
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("%s: %w", o.reportFrom, err)
	}
	if res.Schema != SchemaVersion {
		return fmt.Errorf("%s: schema %q, this program reads %q", o.reportFrom, res.Schema, SchemaVersion)
	}
	docs := o.docs
	if docs == "" {
		root, err := cluster.RepoRoot()
		if err != nil {
			return err
		}
		docs = filepath.Join(root, "docs")
	}
	b := &bench{opts: o, res: res}
	if err := b.loadSim(); err != nil {
		return err
	}
	if res.Ground == string(scenario.Hollow) {
		fake, err := readFakeResults(o.compareWith, docs)
		if err != nil {
			return err
		}
		if err := writeHollowDocs(docs, &b.res, fake); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %s\n", filepath.Join(docs, hollowReport), filepath.Join(docs, hollowJSON))
		return nil
	}
	b.res.Targets = targets(&b.res)
	if res.Settings.APICostOnly {
		if err := writeAPICostOnly(docs, &b.res); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %s\n", filepath.Join(docs, "API-COST.md"), filepath.Join(docs, "apicost.json"))
		return nil
	}
	if err := writeDocs(docs, &b.res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s, %s and %s\n", filepath.Join(docs, "BENCHMARKS.md"), filepath.Join(docs, "benchmarks.json"), filepath.Join(docs, "bench"))
	return nil
}

// relativeTo writes the paths inside root of a command line relative to
// it: the results name no directory of the machine they were measured on.
func relativeTo(root, command string) string {
	if root == "" || command == "" {
		return command
	}
	command = strings.ReplaceAll(command, root+"/", "")
	return strings.ReplaceAll(command, root, ".")
}
