// Command haagent-sim simulates haagent's gossip and agreement for many
// members in one process, on the in-memory network of internal/simnet, in
// virtual time, and measures how the protocol scales with the number of
// members.
//
//	cd test && go run ./cmd/haagent-sim [flags]
//
// Each run plays N members inside a testing/synctest bubble: every member's
// memberlist, timers and goroutines, the network, agreement, the decision
// core, the coordinators with their in-memory API and the fake kubelets
// live in it, and its clock moves only when all
// of them wait. The protocol's times are then what they would be if every
// member had a CPU of its own, however long one process takes to play a
// thousand of them; what the simulation costs is measured apart, in CPU
// and wall seconds.
//
// For each group size (-n) and timing profile (-profiles, with the
// -probe-interval etc. overrides), and for each loss rate (-loss, and 5 %
// too with -loss-sweep), one run:
//
//  1. starts the members in batches of -batch, each with gossip
//     (agent/gossip) and agreement (agent/agreement), a batch once the group
//     has taken in the last (-pace), and measures how long until every
//     member sees every other;
//  2. after the formation's gossip has died down (-settle), watches a
//     quiet period (-quiet) in which nothing fails: suspicions and
//     deaths of live members, gossip bytes and messages per second per
//     member;
//  3. crashes -crashes members one after the other, silently (off the
//     network first, then their goroutines stop), and measures for each the
//     time until the first survivor, half of the survivors and all of them
//     see it dead, until the coordinator that holds the Lease creates its
//     NodeFailover record and cordons its Node in the in-memory API, and,
//     as before the coordinators ran here, until the decision core
//     (agent/failover) alone, fed with the Lease holder's membership and
//     ballots, would start its failover; then crashes the Lease holder
//     (-coordinator-crashes) and measures the same and the takeover of the
//     Lease, apart.
//
// The coordinators are the agent's own (agent/coordinator: leader election
// on the Lease, the Node watch, the roster, the records, the evictor and
// Events), wired to their member's gossip and agreement as the agent wires
// them, on client-go's fake clientsets; only the members that rank first
// for the Lease run one (see coordinators).
//
// Packets may be lost (-loss), delayed per link and per packet (-delay,
// -delay-spread, -jitter), and members other than the coordinator may
// stall for -stall-min to -stall-max at -stalls per member-hour during the
// quiet and crash phases (see simnet's Transport.Pause: what reaches a
// stalled member and what it sends wait for the end of the stall).
//
// Throughout, a failover decision about a member that is alive is a wrong
// action; the run reports every one.
//
// The parent process runs each (size, profile, loss) as a child process of
// the same binary (-run-one), which runs the simulation as a test through
// testing.Main (synctest needs a *testing.T), bounds its time (-run-timeout
// and the whole budget) and its resident memory (-max-rss-mib), and reads
// back its JSON result, its CPU time and its peak RSS (rusage). Runs go
// smallest first, both profiles side by side, then the 5 % loss runs
// (-loss-sweep, at -loss-sizes).
//
// The whole program stops by itself at -timeout, or at -budget: with a
// budget, each run is first estimated in wall time (from the protocol's
// timings before any run, then from the last measured run of its profile)
// and skipped, with the reason printed, when it does not fit in what is
// left. A run cut short reports what it measured and why it stopped.
//
// Progress goes to stderr, the tables to stdout and everything, raw samples
// included, to the JSON file -json; two SVG charts (detection time and
// bytes per second per member against N) go beside it (-svg).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/haagent/haagent/agent/gossip"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options of a simulation.
type options struct {
	sizes           []int
	profiles        []string
	losses          []float64
	delay           time.Duration
	crashes         int
	quiet           time.Duration
	timeout         time.Duration
	jsonPath        string
	batch           int
	discovery       string
	pace            string
	convergeTimeout time.Duration
	crashTimeout    time.Duration
	decideTick      time.Duration
	maxRSSMiB       int
	budget          time.Duration
	lossSizes       []int
	runTimeout      time.Duration
	svgPrefix       string
	gcPercent       int
	repeat          int
	settle          time.Duration
	cpuProfile      string
	memProfile      string
	// Overrides of the profile's timings (zero: the profile's), as the
	// agent's flags of the same names.
	probeInterval  time.Duration
	probeTimeout   time.Duration
	gossipInterval time.Duration
	pushPull       time.Duration
	suspicionMult  int
	indirectChecks int
	// Network and process faults.
	delaySpread   time.Duration
	jitter        time.Duration
	stallsPerHour float64
	stallMin      time.Duration
	stallMax      time.Duration
	// runOne, set only in the child process of one run, is where it writes
	// its result.
	runOne string

	// coordinatorCrashes: after -crashes, crash the Lease holder this many
	// times.
	coordinatorCrashes int
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("haagent-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o               options
		sizes, profiles string
		lossSizes       string
		loss            float64
		lossSweep       bool
		profileNames    = strings.Join(gossip.ProfileNames(), ",")
	)
	fs.StringVar(&sizes, "n", "50,100,250,500,1000", "group sizes to simulate, comma-separated")
	fs.StringVar(&profiles, "profiles", "default,fast", "gossip profiles to measure, comma-separated, of "+profileNames)
	fs.Float64Var(&loss, "loss", 0, "probability that a packet is lost (0 to 1); streams are not affected")
	fs.BoolVar(&lossSweep, "loss-sweep", false, "also run every size and profile with 5% packet loss")
	fs.StringVar(&lossSizes, "loss-sizes", "", "with -loss-sweep: the sizes to run at 5% loss, comma-separated (empty: every size)")
	fs.DurationVar(&o.budget, "budget", 0, "total time the simulation may take: runs estimated not to fit in what is left are skipped, and say so (0: no budget; -timeout still holds)")
	fs.DurationVar(&o.runTimeout, "run-timeout", 0, "longest one run may take, in wall time, before its process is stopped (0: bounded by -timeout and -budget only)")
	fs.StringVar(&o.svgPrefix, "svg", "", "write the charts to this prefix + -detection.svg and -traffic.svg (empty: beside -json, with its name)")
	fs.IntVar(&o.gcPercent, "gc-percent", 200, "GOGC of each run's process: the simulation trades memory (bounded by -max-rss-mib) for CPU; the protocol is not affected")
	fs.DurationVar(&o.delay, "delay", time.Millisecond, "one-way delay of every packet (the base of every link)")
	fs.DurationVar(&o.delaySpread, "delay-spread", 0, "each pair of members adds a fixed delay drawn from [0, this) to -delay: near and far hosts")
	fs.DurationVar(&o.jitter, "jitter", 0, "each packet adds an exponentially distributed delay of this mean (cut at 10 times it); packets may then overtake each other")
	fs.Float64Var(&o.stallsPerHour, "stalls", 0, "stalls per member and hour in the quiet and crash phases: a member (not the coordinator) stops receiving and sending for -stall-min to -stall-max")
	fs.DurationVar(&o.stallMin, "stall-min", 2*time.Second, "shortest stall (see -stalls)")
	fs.DurationVar(&o.stallMax, "stall-max", 5*time.Second, "longest stall (see -stalls)")
	fs.DurationVar(&o.probeInterval, "probe-interval", 0, "override the profiles' probe interval (0: the profile's)")
	fs.DurationVar(&o.probeTimeout, "probe-timeout", 0, "override the profiles' probe timeout (0: the profile's)")
	fs.DurationVar(&o.gossipInterval, "gossip-interval", 0, "override the profiles' gossip interval (0: the profile's)")
	fs.DurationVar(&o.pushPull, "push-pull-interval", 0, "override the profiles' push/pull interval, before memberlist stretches it with N (0: the profile's)")
	fs.IntVar(&o.suspicionMult, "suspicion-mult", 0, "override the profiles' suspicion multiplier (0: the profile's)")
	fs.IntVar(&o.indirectChecks, "indirect-checks", 0, "override the profiles' number of indirect probes (0: the profile's)")
	fs.IntVar(&o.crashes, "crashes", 20, "members crashed one after the other in each run")
	fs.IntVar(&o.coordinatorCrashes, "coordinator-crashes", 1, "then crash the member that holds the coordinator Lease this many times, each time the one that holds it then")
	fs.IntVar(&o.repeat, "repeat", 1, "run each size, profile and loss this many times, each in a fresh group, and pool their crashes and counts: many crashes at a small N without crashing most of the group")
	fs.DurationVar(&o.settle, "settle", 2*time.Minute, "after convergence, wait up to this long (virtual time) for the formation's gossip to die down before the quiet period: until a 5s window's packets average under 150 bytes, bare probes and acks (0: no wait)")
	fs.DurationVar(&o.quiet, "quiet", 60*time.Second, "quiet period (virtual time) in which false suspicions and traffic are measured")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "hard deadline of the whole simulation")
	fs.StringVar(&o.jsonPath, "json", "haagent-sim.json", "file to write every sample and summary to, as JSON (empty: none)")
	fs.IntVar(&o.batch, "batch", 50, "members started at once; the next batch starts when this one is seen (see -pace)")
	fs.StringVar(&o.pace, "pace", "all", `when the next batch starts: "all" (every member started so far sees the last batch: the group has taken it in) or "seed" (the first member sees it)`)
	fs.StringVar(&o.discovery, "discovery", "all", `peers each member is given to join: "all" (every member started so far, as the Kubernetes pod list) or "seed" (the first member only)`)
	fs.DurationVar(&o.convergeTimeout, "converge-timeout", 5*time.Minute, "how long (virtual time) a group may take to converge before the run is given up")
	fs.DurationVar(&o.crashTimeout, "crash-timeout", 0, "how long (virtual time) to wait for each crash to be seen and decided; 0 derives it from the profile's suspicion timeout")
	fs.DurationVar(&o.decideTick, "decide-tick", 250*time.Millisecond, "how often the coordinators decide and advance failovers (their --coordinator-tick), and the decision core alone runs")
	fs.IntVar(&o.maxRSSMiB, "max-rss-mib", 8192, "stop a run when the process's resident memory exceeds this many MiB")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of each run to this file, suffixed with the run's size, profile and loss")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile at the end of each run's quiet period to this file, suffixed like -cpuprofile, and one at the end of its start-up (converged or stopped) to the same name + .converge")
	fs.StringVar(&o.runOne, "run-one", "", "internal: run the single size, profile and loss given, in this process, and write its result as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if o.sizes, err = parseSizes("-n", sizes); err != nil {
		return o, err
	}
	for _, p := range strings.Split(profiles, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, ok := gossip.LookupProfile(p); !ok && p != gossip.ProfileAuto {
			return o, fmt.Errorf("-profiles: unknown profile %q, want some of %s", p, profileNames)
		}
		o.profiles = append(o.profiles, p)
	}
	if len(o.profiles) == 0 {
		return o, errors.New("-profiles: no profile given")
	}
	if !(loss >= 0 && loss < 1) {
		return o, fmt.Errorf("-loss (%g) must be at least 0 and below 1", loss)
	}
	o.losses = []float64{loss}
	if lossSweep && loss != 0.05 {
		o.losses = append(o.losses, 0.05)
	}
	if lossSizes != "" {
		if o.lossSizes, err = parseSizes("-loss-sizes", lossSizes); err != nil {
			return o, err
		}
	}
	switch {
	case o.delay < 0:
		return o, fmt.Errorf("-delay (%s) must not be negative", o.delay)
	case o.crashes < 0:
		return o, fmt.Errorf("-crashes (%d) must not be negative", o.crashes)
	case o.quiet < 0:
		return o, fmt.Errorf("-quiet (%s) must not be negative", o.quiet)
	case o.settle < 0:
		return o, fmt.Errorf("-settle (%s) must not be negative", o.settle)
	case o.timeout <= 0:
		return o, fmt.Errorf("-timeout (%s) must be positive", o.timeout)
	case o.repeat < 1 || o.repeat > 100:
		return o, fmt.Errorf("-repeat (%d) must be between 1 and 100", o.repeat)
	case o.batch < 1:
		return o, fmt.Errorf("-batch (%d) must be at least 1", o.batch)
	case o.pace != "all" && o.pace != "seed":
		return o, fmt.Errorf(`-pace (%q) must be "all" or "seed"`, o.pace)
	case o.discovery != "all" && o.discovery != "seed":
		return o, fmt.Errorf(`-discovery (%q) must be "all" or "seed"`, o.discovery)
	case o.convergeTimeout <= 0:
		return o, fmt.Errorf("-converge-timeout (%s) must be positive", o.convergeTimeout)
	case o.crashTimeout < 0:
		return o, fmt.Errorf("-crash-timeout (%s) must not be negative", o.crashTimeout)
	case o.decideTick < 10*time.Millisecond || o.decideTick > 10*time.Second:
		return o, fmt.Errorf("-decide-tick (%s) must be between 10ms and 10s", o.decideTick)
	case o.coordinatorCrashes < 0 || o.coordinatorCrashes > 10:
		return o, fmt.Errorf("-coordinator-crashes (%d) must be between 0 and 10", o.coordinatorCrashes)
	case o.maxRSSMiB < 64:
		return o, fmt.Errorf("-max-rss-mib (%d) must be at least 64", o.maxRSSMiB)
	case o.budget < 0:
		return o, fmt.Errorf("-budget (%s) must not be negative", o.budget)
	case o.runTimeout < 0:
		return o, fmt.Errorf("-run-timeout (%s) must not be negative", o.runTimeout)
	case o.gcPercent < 50:
		return o, fmt.Errorf("-gc-percent (%d) must be at least 50", o.gcPercent)
	case o.delaySpread < 0:
		return o, fmt.Errorf("-delay-spread (%s) must not be negative", o.delaySpread)
	case o.jitter < 0:
		return o, fmt.Errorf("-jitter (%s) must not be negative", o.jitter)
	case !(o.stallsPerHour >= 0 && o.stallsPerHour <= 3600):
		return o, fmt.Errorf("-stalls (%g) must be between 0 and 3600 per member-hour", o.stallsPerHour)
	case o.stallMin <= 0 || o.stallMax < o.stallMin:
		return o, fmt.Errorf("-stall-min (%s) must be positive and at most -stall-max (%s)", o.stallMin, o.stallMax)
	case o.probeInterval < 0 || o.probeTimeout < 0 || o.gossipInterval < 0 || o.pushPull < 0 || o.suspicionMult < 0 || o.indirectChecks < 0:
		return o, errors.New("-probe-interval, -probe-timeout, -gossip-interval, -push-pull-interval, -suspicion-mult and -indirect-checks must not be negative")
	}
	for _, p := range o.profiles {
		if err := gossipConfig(o, "sim-0000", p, 0).Validate(); err != nil {
			return o, fmt.Errorf("profile %s with the timing overrides: %w", p, err)
		}
	}
	for _, n := range o.sizes {
		// The members that run a coordinator, 3 + -coordinator-crashes,
		// are not crashed otherwise: with 3 survivors left, enough remain.
		if crashed := o.crashes + o.coordinatorCrashes; crashed > 0 && n-crashed < 3 {
			return o, fmt.Errorf("-n %d leaves fewer than 3 survivors of -crashes %d and -coordinator-crashes %d", n, o.crashes, o.coordinatorCrashes)
		}
	}
	return o, nil
}

// parseSizes reads "50,100,250", the value of flag name.
func parseSizes(name, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 || n > 5000 {
			return nil, fmt.Errorf("%s: %q must be a group size between 2 and 5000", name, f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no group size given", name)
	}
	return out, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "haagent-sim:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	deadline, why := o.timeout, fmt.Errorf("the -timeout of %s passed", o.timeout)
	if o.budget > 0 && o.budget < deadline {
		deadline, why = o.budget, fmt.Errorf("the -budget of %s is spent", o.budget)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, deadline, why)
	defer cancel()
	if o.runOne != "" {
		if err := runOne(ctx, o, stderr); err != nil {
			fmt.Fprintln(stderr, "haagent-sim:", err)
			return 1
		}
		return 0 // not reached: runOne exits through testing.Main
	}

	start := wallNow()
	res := &results{
		Command:     append([]string{"haagent-sim"}, args...),
		Date:        start.UTC().Format(time.RFC3339),
		GoVersion:   runtime.Version(),
		GOMAXPROCS:  runtime.GOMAXPROCS(0),
		NumCPU:      runtime.NumCPU(),
		LoadAtStart: loadAverage(),
		Options:     o.export(),
	}
	progress := &progress{w: stderr, start: start}
	progress.printf("haagent-sim: sizes %v, profiles %v, loss %v, delay %s (+%s per link, jitter %s), stalls %g per member-hour; %d cores, GOMAXPROCS %d, load average %s; deadline %s",
		o.sizes, o.profiles, o.losses, o.delay, o.delaySpread, o.jitter, o.stallsPerHour, res.NumCPU, res.GOMAXPROCS, res.LoadAtStart, deadline)

	est := newEstimator(o)
	if o.budget > 0 {
		var total time.Duration
		for _, spec := range o.plan() {
			total += est.estimate(spec)
		}
		progress.printf("budget %s; all %d runs estimated at %s before any is measured", o.budget, len(o.plan()), total.Round(time.Second))
	}
	failedAt := map[runSpec]int{} // per profile and loss: the smallest size that did not converge
	for _, spec := range o.plan() {
		key := runSpec{profile: spec.profile, loss: spec.loss}
		estimate := est.estimate(spec)
		var why string
		switch {
		case ctx.Err() != nil:
			why = "not started: " + context.Cause(ctx).Error()
		case failedAt[key] > 0 && spec.n > failedAt[key]:
			why = fmt.Sprintf("not started: N=%d did not converge or was stopped", failedAt[key])
		case o.budget > 0:
			why = budgetSkip(estimate, o.budget-wallNow().Sub(start))
		}
		if why != "" {
			progress.printf("%s: %s", spec, why)
			r := skipped(o, spec, why)
			r.EstimateS = estimate.Seconds()
			res.Runs = append(res.Runs, r)
			continue
		}
		progress.printf("%s: starting, estimated %s", spec, estimate.Round(time.Second))
		var rs []runResult
		for i := 0; i < o.repeat && ctx.Err() == nil; i++ {
			rs = append(rs, runChild(ctx, o, spec, progress, stderr))
		}
		r := merge(rs)
		r.EstimateS = estimate.Seconds()
		if !r.Converged || r.Stopped != "" {
			if failedAt[key] == 0 {
				failedAt[key] = spec.n
			}
		}
		est.observe(r)
		res.Runs = append(res.Runs, r)
		if err := res.write(o.jsonPath); err != nil {
			progress.printf("write %s: %v", o.jsonPath, err)
		}
	}
	res.Finished = wallNow().UTC().Format(time.RFC3339)
	res.LoadAtEnd = loadAverage()
	res.TookS = wallNow().Sub(start).Seconds()
	printTables(stdout, res)
	if err := res.write(o.jsonPath); err != nil {
		fmt.Fprintln(stderr, "haagent-sim:", err)
		return 1
	}
	if o.jsonPath != "" {
		progress.printf("results written to %s", o.jsonPath)
	}
	for _, f := range writeCharts(o, res) {
		progress.printf("%s", f)
	}
	if res.wrongActions() > 0 {
		return 3
	}
	return 0
}

// loadAverage is the machine's 1, 5 and 15 minute load averages, as
// /proc/loadavg gives them: the other work that shared the cores.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// progress prints progress lines stamped with the wall time since start,
// and the simulated time since vstart when it is set (inside a run).
type progress struct {
	w      io.Writer
	start  time.Time // wallNow
	vstart time.Time // time.Now in the run's bubble
}

func (p *progress) printf(format string, args ...any) {
	el := wallNow().Sub(p.start).Truncate(time.Second)
	if p.vstart.IsZero() {
		fmt.Fprintf(p.w, "[%7s] %s\n", el, fmt.Sprintf(format, args...))
		return
	}
	v := time.Since(p.vstart).Truncate(100 * time.Millisecond)
	fmt.Fprintf(p.w, "[%7s sim %7s] %s\n", el, v, fmt.Sprintf(format, args...))
}
