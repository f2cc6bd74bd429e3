// Command haagent-bench measures how long a node failover takes, with
// haagent and with the stock Kubernetes controllers alone, on a real
// control plane, and prints the figures side by side.
//
//	cd test && go run ./cmd/haagent-bench --control-plane-bin DIR [flags]
//
// hack/bench.sh (make bench) builds what it needs and runs it. It needs
// root, for the iptables rules that cut a crashed node off the network.
//
// Three set-ups, one cluster each, every node running the sample workload
// (one pod of Deployment web per node, a Service, a PodDisruptionBudget):
//
//   - haagent: stock control-plane timings, an agent per node. -crashes
//     crashes, one after the other, of a different node each time; after
//     each, the node returns and haagent hands it back (--stabilization=3s)
//     before the next crash, which comes at least -spacing (30 s) after the
//     previous one, so that haagent's failover rate limit never holds one back.
//   - stock tuned: no agents; node-monitor-grace-period 8 s, tolerations
//     5 s, Leases renewed every 2 s. -tuned-crashes crashes, the same way.
//   - stock default: no agents, Kubernetes' defaults. One crash: eviction
//     comes 300 s after the node is tainted, so it takes about 7 minutes.
//
// Every time is from the crash to the phase, measured on the API's watches
// (and the agents' /members). The results also go, as JSON, to -out.
// The exit status is 0 only when every phase of every crash was measured.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
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

// options of a benchmark run.
type options struct {
	binDir       string
	haagent      string
	out          string
	nodes        int
	crashes      int
	tunedCrashes int
	spacing      time.Duration
	stock        bool
	tuned        bool
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("haagent-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.binDir, "control-plane-bin", getenv("HAAGENT_CONTROL_PLANE_BIN"), "directory of the control-plane binaries (hack/build-control-plane.sh prints it); default $HAAGENT_CONTROL_PLANE_BIN")
	fs.StringVar(&o.haagent, "haagent", "", "haagent binary; empty builds cmd/haagent of this checkout")
	fs.StringVar(&o.out, "out", "", "where to write the results as JSON; default _output/bench/results.json in the checkout")
	fs.IntVar(&o.nodes, "nodes", 7, "nodes per cluster")
	fs.IntVar(&o.crashes, "crashes", 5, "crashes of the haagent cluster, one after the other (0 skips it)")
	fs.IntVar(&o.tunedCrashes, "tuned-crashes", 3, "crashes of the tuned stock cluster")
	fs.DurationVar(&o.spacing, "spacing", 30*time.Second, "least time between two crashes of the haagent cluster; below haagent's --failover-interval (30s) later crashes may be held back by its rate limit")
	fs.BoolVar(&o.stock, "stock", true, "measure the stock controllers with default timings (one crash, about 7 minutes)")
	fs.BoolVar(&o.tuned, "tuned", true, "measure the stock controllers with tuned timings")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	switch {
	case o.binDir == "":
		return o, errors.New("--control-plane-bin is empty and HAAGENT_CONTROL_PLANE_BIN is not set (hack/build-control-plane.sh prints the directory)")
	case o.nodes < 3 || o.nodes > 50:
		return o, fmt.Errorf("--nodes (%d) must be between 3 and 50", o.nodes)
	case o.crashes < 0 || o.crashes > 100:
		return o, fmt.Errorf("--crashes (%d) must be between 0 and 100", o.crashes)
	case o.tunedCrashes < 1 || o.tunedCrashes > 100:
		return o, fmt.Errorf("--tuned-crashes (%d) must be between 1 and 100", o.tunedCrashes)
	case o.spacing < 0 || o.spacing > 10*time.Minute:
		return o, fmt.Errorf("--spacing (%s) must be between 0 and 10m", o.spacing)
	case o.crashes == 0 && !o.stock && !o.tuned:
		return o, errors.New("nothing to measure: --crashes is 0, --stock and --tuned are false")
	}
	return o, nil
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{opts: o, p: scenario.NewPrinter(stdout), stdout: stdout}
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

// Results is what -out receives.
type Results struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Complete is true when every phase of every crash was measured.
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
	Nodes    int    `json:"nodes"`
	// Setups: "haagent", "stock-tuned", "stock-default"; those not run are absent.
	Setups []*Setup `json:"setups"`
}

// Setup is one cluster's crashes.
type Setup struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	AgentArgs   []string `json:"agentArgs,omitempty"`
	// Spacing is the least time between two crashes (haagent only).
	Spacing string `json:"spacing,omitempty"`
	Crashes []*Run `json:"crashes"`
	// Summary per phase, in seconds after the crash.
	Summary map[scenario.Phase]Stats `json:"summary"`
}

// Run is one crash.
type Run struct {
	Victim string `json:"victim"`
	// Coordinator is true when the victim held haagent's coordinator Lease.
	Coordinator bool      `json:"coordinator,omitempty"`
	CrashedAt   time.Time `json:"crashedAt"`
	// Seconds from the crash to each phase seen.
	Seconds map[scenario.Phase]float64 `json:"seconds"`
	// What haagent's NodeFailover record says (from the last time a peer
	// heard from the node, not from the crash).
	RecordTimeToDetect string `json:"recordTimeToDetect,omitempty"`
	RecordTimeToRepair string `json:"recordTimeToRepair,omitempty"`
	// HandBackSeconds is from the node's return to its record Completed.
	HandBackSeconds float64 `json:"handBackSeconds,omitempty"`

	measured scenario.Measured
}

// Stats of one phase over a setup's crashes, in seconds.
type Stats struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	Max float64 `json:"max"`

	p50 time.Duration
}

type bench struct {
	opts   options
	p      *scenario.Printer
	stdout io.Writer
	res    Results
	root   string
}

func (b *bench) run(ctx context.Context) error {
	b.res = Results{Started: time.Now(), Nodes: b.opts.nodes}
	var err error
	if b.root, err = cluster.RepoRoot(); err != nil {
		return err
	}
	if b.opts.out == "" {
		b.opts.out = filepath.Join(b.root, "_output", "bench", "results.json")
	}
	if n, err := scenario.RemoveStaleRules(); err != nil {
		return fmt.Errorf("remove firewall rules of ended runs: %w", err)
	} else if n > 0 {
		b.p.Printf("removed the firewall rules left behind by %d ended run(s)", n)
	}
	if b.opts.crashes > 0 {
		bin := b.opts.haagent
		if bin == "" {
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
		s := &Setup{
			Name:        "haagent",
			Description: "stock control-plane timings, a haagent agent per node (fast gossip profile)",
			AgentArgs:   []string{"--stabilization=3s"},
			Spacing:     b.opts.spacing.String(),
		}
		b.res.Setups = append(b.res.Setups, s)
		b.p.Raw("\n=== haagent: %d nodes with agents, %d crashes ===\n\n", b.opts.nodes, b.opts.crashes)
		if err := b.setup(ctx, s, scenario.Config{
			BinDir: b.opts.binDir, Nodes: b.opts.nodes, Timings: scenario.Stock,
			Haagent: bin, AgentArgs: s.AgentArgs, Deploy: filepath.Join(b.root, "deploy"),
		}, b.opts.crashes, 2*time.Minute); err != nil {
			return fmt.Errorf("haagent: %w", err)
		}
	}
	if b.opts.tuned {
		s := &Setup{Name: "stock-tuned", Description: scenario.Tuned.String()}
		b.res.Setups = append(b.res.Setups, s)
		b.p.Raw("\n=== stock, tuned: %d nodes without agents, %d crashes ===\n\n", b.opts.nodes, b.opts.tunedCrashes)
		if err := b.setup(ctx, s, scenario.Config{BinDir: b.opts.binDir, Nodes: b.opts.nodes, Timings: scenario.Tuned},
			b.opts.tunedCrashes, 3*time.Minute); err != nil {
			return fmt.Errorf("stock tuned: %w", err)
		}
	}
	if b.opts.stock {
		s := &Setup{Name: "stock-default", Description: scenario.Stock.String()}
		b.res.Setups = append(b.res.Setups, s)
		b.p.Raw("\n=== stock, default timings: %d nodes without agents, 1 crash (eviction comes ~300 s after the taint: about 7 minutes) ===\n\n", b.opts.nodes)
		if err := b.setup(ctx, s, scenario.Config{BinDir: b.opts.binDir, Nodes: b.opts.nodes, Timings: scenario.Stock},
			1, 9*time.Minute); err != nil {
			return fmt.Errorf("stock default: %w", err)
		}
	}
	b.report()
	return nil
}

// required are the phases a crash must show to count as measured.
func required(agents bool) []scenario.Phase {
	ps := []scenario.Phase{scenario.NodeNotReady, scenario.Tainted, scenario.PodsNotReady, scenario.EndpointsRemoved,
		scenario.Evicted, scenario.ReplacementReady, scenario.Recovered}
	if agents {
		ps = append([]scenario.Phase{scenario.DeadEverywhere, scenario.Cordoned}, ps...)
	}
	return ps
}

// setup runs one cluster and its crashes.
func (b *bench) setup(ctx context.Context, s *Setup, cfg scenario.Config, crashes int, perCrash time.Duration) (err error) {
	c, err := scenario.Start(ctx, cfg, b.p)
	defer func() {
		if err != nil && ctx.Err() == nil && c != nil {
			b.p.Raw("%s\n", c.Diagnostics(30))
		}
		step := b.p.Begin("tearing the cluster down (nodes, firewall rules, control plane)")
		if serr := c.Stop(); serr != nil {
			b.p.Printf("teardown: %v", serr)
			err = errors.Join(err, serr)
			return
		}
		step.Done("stopped")
	}()
	if err != nil {
		return err
	}
	if err := c.StartWorkload(ctx, b.p); err != nil {
		return err
	}
	agents := cfg.Haagent != ""
	next := 1 // index into c.Nodes of the next victim; node-1 is the gossip seed
	for i := range crashes {
		victim, err := b.pickVictim(ctx, c, &next)
		if err != nil {
			return err
		}
		if i > 0 && agents {
			// haagent starts at most 3 failovers at once, then one per 30 s
			// (--failover-burst, --failover-interval). Crashes closer together
			// than that would measure the rate limit, not the failover.
			prev := s.Crashes[i-1].CrashedAt
			if wait := time.Until(prev.Add(b.opts.spacing)); wait > 0 {
				b.p.Printf("  waiting %s: crashes %s apart, so that haagent's failover rate limit (one per 30 s after a burst of 3) never holds one back",
					scenario.Round(wait), b.opts.spacing)
				select {
				case <-ctx.Done():
					return context.Cause(ctx)
				case <-time.After(wait):
				}
			}
		}
		r := &Run{Victim: victim}
		s.Crashes = append(s.Crashes, r)
		if err := b.crash(ctx, c, r, i+1, crashes, agents, perCrash); err != nil {
			return err
		}
	}
	s.Summary = summarize(s.Crashes)
	return nil
}

// pickVictim returns the next node, in turn from node-2 on, that runs at
// least one pod of the workload.
func (b *bench) pickVictim(ctx context.Context, c *scenario.Cluster, next *int) (string, error) {
	for range len(c.Nodes) {
		n := c.Nodes[*next]
		*next++
		if *next >= len(c.Nodes) {
			*next = 1
		}
		pods, err := c.PodsOn(ctx, n.Name())
		if err != nil {
			return "", err
		}
		if len(pods) > 0 {
			return n.Name(), nil
		}
	}
	return "", errors.New("no node but node-1 runs a pod of the workload")
}

// crash crashes r.Victim, waits until every required phase is seen, brings
// the node back and waits until the cluster is whole again.
func (b *bench) crash(ctx context.Context, c *scenario.Cluster, r *Run, i, n int, agents bool, timeout time.Duration) error {
	if agents {
		holder, err := c.Coordinator(ctx)
		if err != nil {
			return err
		}
		r.Coordinator = holder == r.Victim
	}
	pods, err := c.PodsOn(ctx, r.Victim)
	if err != nil {
		return err
	}
	role := ""
	if r.Coordinator {
		role = ", the coordinator"
	}
	b.p.Printf("crash %d/%d: %s (%s%s)", i, n, r.Victim, scenario.PodNames(pods), role)
	cr, err := c.Crash(ctx, r.Victim)
	if err != nil {
		return err
	}
	defer cr.Stop()
	r.CrashedAt = cr.At
	if err := b.waitPhases(ctx, cr, required(agents), timeout); err != nil {
		return fmt.Errorf("crash of %s: %w\n%s", r.Victim, err, cr.Timeline.Table())
	}
	r.measured = cr.Measure()
	r.Seconds = map[scenario.Phase]float64{}
	for ph, d := range r.measured.Times {
		r.Seconds[ph] = d.Seconds()
	}

	returned, err := cr.Return(ctx)
	if err != nil {
		return err
	}
	what := "network back, a new kubelet registered"
	if agents {
		what += ", agent restarted"
	}
	b.p.Printf("  %s returned: %s (took %s)", r.Victim, what, scenario.Round(time.Since(returned)))
	if agents {
		var rec record.NodeFailover
		err := scenario.Poll(ctx, 100*time.Millisecond, 2*time.Minute, r.Victim+"'s failover record Completed", func(ctx context.Context) (bool, error) {
			var ok bool
			var err error
			rec, ok, err = c.LatestRecord(ctx, r.Victim)
			return ok && rec.Status.Phase == record.PhaseCompleted, err
		})
		if err != nil {
			return fmt.Errorf("%w\n%s", err, cr.Timeline.Table())
		}
		r.HandBackSeconds = time.Since(returned).Seconds()
		r.RecordTimeToDetect, r.RecordTimeToRepair = rec.Status.TimeToDetect, rec.Status.TimeToRepair
		b.p.Printf("  %s handed back (record Completed) %.1fs after its return; the record says: detect %s, repair %s from last heard",
			r.Victim, r.HandBackSeconds, rec.Status.TimeToDetect, rec.Status.TimeToRepair)
	}
	step := b.p.Begin("  waiting until every node is Ready and untainted, the workload whole again")
	if err := c.WaitHealthy(ctx, 2*time.Minute); err != nil {
		return err
	}
	if err := c.WaitWorkload(ctx, 2*time.Minute); err != nil {
		return err
	}
	step.Done("  cluster whole")
	return nil
}

// waitPhases prints each phase as it is first seen, until all of need are,
// or timeout passes. Every 30 s without news it says what it waits for.
func (b *bench) waitPhases(ctx context.Context, cr *scenario.Crash, need []scenario.Phase, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	shown := map[scenario.Phase]bool{}
	lastNews := time.Now()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		m := cr.Measure()
		for _, ph := range scenario.Phases() {
			if d, ok := m.Get(ph); ok && !shown[ph] {
				shown[ph] = true
				lastNews = time.Now()
				detail := ""
				if m.Detail[ph] != "" {
					detail = " (" + m.Detail[ph] + ")"
				}
				b.p.Raw("    %+9.3fs  %s%s\n", d.Seconds(), ph.Title(), detail)
			}
		}
		var missing []scenario.Phase
		for _, ph := range need {
			if _, ok := m.Get(ph); !ok {
				missing = append(missing, ph)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not seen within %s of the crash: %v", timeout, missing)
		}
		if time.Since(lastNews) >= 30*time.Second {
			b.p.Raw("    %+9.3fs  … waiting for: %v\n", time.Since(cr.At).Seconds(), missing)
			lastNews = time.Now()
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

func summarize(runs []*Run) map[scenario.Phase]Stats {
	out := map[scenario.Phase]Stats{}
	for _, ph := range scenario.Phases() {
		var ds []time.Duration
		for _, r := range runs {
			if d, ok := r.measured.Get(ph); ok {
				ds = append(ds, d)
			}
		}
		if len(ds) == 0 {
			continue
		}
		st := Stats{N: len(ds), p50: scenario.Quantile(ds, 0.5)}
		st.P50 = st.p50.Seconds()
		st.P90 = scenario.Quantile(ds, 0.9).Seconds()
		st.Max = scenario.Quantile(ds, 1).Seconds()
		out[ph] = st
	}
	return out
}

func (b *bench) setupNamed(name string) *Setup {
	for _, s := range b.res.Setups {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// report prints each setup's crashes and the side-by-side table.
func (b *bench) report() {
	b.p.Raw("\n=== Results (seconds from the crash; nearest-rank percentiles) ===\n")
	for _, s := range b.res.Setups {
		b.p.Raw("\n%s: %s\n", s.Name, s.Description)
		header := []string{"phase"}
		for i, r := range s.Crashes {
			h := fmt.Sprintf("#%d %s", i+1, r.Victim)
			if r.Coordinator {
				h += "*"
			}
			header = append(header, h)
		}
		header = append(header, "p50", "p90", "max")
		var rows [][]string
		for _, ph := range scenario.Phases() {
			st, ok := s.Summary[ph]
			if !ok {
				continue
			}
			row := []string{ph.Title()}
			for _, r := range s.Crashes {
				if d, ok := r.measured.Get(ph); ok {
					row = append(row, scenario.Seconds(d))
				} else {
					row = append(row, "-")
				}
			}
			row = append(row, fmt.Sprintf("%.2fs", st.P50), fmt.Sprintf("%.2fs", st.P90), fmt.Sprintf("%.2fs", st.Max))
			rows = append(rows, row)
		}
		scenario.WriteTable(b.stdout, header, rows)
		for _, r := range s.Crashes {
			if r.Coordinator {
				b.p.Raw("  * the crashed node held the coordinator Lease: another agent took it over first.\n")
				break
			}
		}
	}

	h, tuned, stock := b.setupNamed("haagent"), b.setupNamed("stock-tuned"), b.setupNamed("stock-default")
	b.p.Raw("\nSide by side (p50 of each set-up; ratio = stock ÷ haagent):\n")
	header := []string{"phase", "haagent", "stock tuned", "stock default", "tuned ÷ haagent", "default ÷ haagent"}
	var rows [][]string
	for _, ph := range scenario.Phases() {
		hv, hOK := p50(h, ph)
		tv, tOK := p50(tuned, ph)
		sv, sOK := p50(stock, ph)
		if !hOK && !tOK && !sOK {
			continue
		}
		row := []string{ph.Title(), cell(h, ph), cell(tuned, ph), cell(stock, ph), "", ""}
		if hOK && tOK {
			row[4] = scenario.Ratio(tv, hv)
		}
		if hOK && sOK {
			row[5] = scenario.Ratio(sv, hv)
		}
		rows = append(rows, row)
	}
	scenario.WriteTable(b.stdout, header, rows)
	b.p.Raw("\n\"not run\": that set-up was switched off; \"-\": the phase does not exist there (stock never cordons, and has no gossip).\n")
	b.p.Raw("results: %s\n", b.opts.out)
}

func p50(s *Setup, ph scenario.Phase) (time.Duration, bool) {
	if s == nil {
		return 0, false
	}
	st, ok := s.Summary[ph]
	return st.p50, ok
}

func cell(s *Setup, ph scenario.Phase) string {
	if s == nil {
		return "not run"
	}
	st, ok := s.Summary[ph]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2fs (n=%d)", st.P50, st.N)
}

// write saves the results as JSON, whatever the outcome.
func (b *bench) write(runErr error) error {
	if b.opts.out == "" {
		return nil
	}
	b.res.Finished = time.Now()
	b.res.Complete = runErr == nil
	if runErr != nil {
		b.res.Error = runErr.Error()
	}
	for _, s := range b.res.Setups {
		if s.Summary == nil {
			s.Summary = summarize(s.Crashes)
		}
	}
	data, err := json.MarshalIndent(b.res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(b.opts.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(b.opts.out, append(data, '\n'), 0o644)
}
