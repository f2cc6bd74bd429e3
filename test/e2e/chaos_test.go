package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/test/cluster"
)

// The chaos campaign: a randomized, seedable, bounded sequence of faults on
// the real control plane, with the safety rules of docs/design.md checked
// as invariants.
//
//	HAAGENT_CHAOS_DURATION  how long faults are drawn, per cluster size (default 90s, at most 2h)
//	HAAGENT_CHAOS_SEED      the seed of the draws (default: from the clock); always logged
//	HAAGENT_CHAOS_SIZES     cluster sizes, comma-separated (default 7)
//	HAAGENT_CHAOS_REPORT    a path: write a markdown report there
//
// The seed fixes the draws (kinds, durations, node indices), not the
// timing of the cluster: a replay injects the same faults, but the cluster
// may answer them at other instants, and "the node of db-0" is wherever
// db-0 runs at that moment.
const (
	// chaosDownCap bounds how long a powered-off node stays down waiting
	// for its failover (invariant 3), and so the failover bound.
	chaosDownCap = 60 * time.Second
	// chaosActionMargin: an action on a node within this long after its
	// justifying fault ended still counts as the failover of that fault.
	chaosActionMargin = 10 * time.Second
	// chaosSettleCap bounds the settle after each fault.
	chaosSettleCap = 90 * time.Second
	// chaosFinalSettleCap bounds the settle after the campaign.
	chaosFinalSettleCap = 2 * time.Minute
)

type chaosSettings struct {
	duration time.Duration
	seed     uint64
	sizes    []int
	report   string
}

func chaosSettingsFromEnv(t *testing.T) chaosSettings {
	t.Helper()
	s := chaosSettings{duration: 90 * time.Second, sizes: []int{7}, report: os.Getenv("HAAGENT_CHAOS_REPORT")}
	if v := os.Getenv("HAAGENT_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 2*time.Hour {
			t.Fatalf("HAAGENT_CHAOS_DURATION (%q) must be a duration between 0 and 2h", v)
		}
		s.duration = d
	}
	if v := os.Getenv("HAAGENT_CHAOS_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("HAAGENT_CHAOS_SEED (%q) must be an unsigned 64-bit integer", v)
		}
		s.seed = seed
	} else {
		s.seed = uint64(time.Now().UnixNano())
	}
	if v := os.Getenv("HAAGENT_CHAOS_SIZES"); v != "" {
		s.sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 3 || n > 50 {
				t.Fatalf("HAAGENT_CHAOS_SIZES (%q): each size must be a number of nodes between 3 and 50", v)
			}
			s.sizes = append(s.sizes, n)
		}
	}
	return s
}

// chaosKind is a kind of fault.
type chaosKind string

const (
	chaosCrash            chaosKind = "crash"
	chaosIsolate          chaosKind = "isolate"
	chaosMinority         chaosKind = "minority-partition"
	chaosEven             chaosKind = "even-partition"
	chaosLoss             chaosKind = "loss"
	chaosStall            chaosKind = "agent-stall"
	chaosRestart          chaosKind = "agent-restart"
	chaosAPIOutage        chaosKind = "api-outage"
	chaosCrashDuringLoss  chaosKind = "crash+loss"
	chaosStallDuringCrash chaosKind = "crash+agent-stall"
)

var chaosKinds = []struct {
	kind   chaosKind
	weight int
}{
	{chaosCrash, 3}, {chaosIsolate, 2}, {chaosMinority, 2}, {chaosEven, 1}, {chaosLoss, 2},
	{chaosStall, 2}, {chaosRestart, 2}, {chaosAPIOutage, 1}, {chaosCrashDuringLoss, 1}, {chaosStallDuringCrash, 1},
}

// The invariants, numbered as in docs/chaos-testing.md.
var chaosInvariants = []string{
	1: "no pod on two nodes at once",
	2: "no action on a node without a fault",
	3: "a powered-off node is failed over",
	4: "no record lost",
}

type chaosViolation struct {
	invariant int
	msg       string
}

type chaosFault struct {
	size       int
	index      int
	kind       chaosKind
	nodes      []string
	start, end time.Time
	outcome    []string
	violations int
}

// chaosSpan is a time a node had a fault that justifies a failover.
type chaosSpan struct{ from, to time.Time }

// chaosResult is one size's campaign, for the report.
type chaosResult struct {
	size       int
	faults     []*chaosFault
	counts     map[chaosKind]int
	failovers  int
	paused     int
	violations []chaosViolation
	elapsed    time.Duration
}

// chaosAgents are the isolation tests' agents (the least fence bound the
// coordinator accepts for command fencing, isolationFenceBound) with the
// failover tests' stabilization.
func chaosAgents(i int, c *cluster.AgentConfig) {
	isolationAgents(i, c)
	c.ExtraArgs = append(c.ExtraArgs, "--stabilization="+stabilization.String())
}

// TestChaos_campaign draws faults at random from a seed for a bounded time,
// on a fencing cluster of each size, and checks after every fault and at
// the end: (1) no pod identity ran on two nodes at once; (2) haagent acted
// (cordon, its taints, pod deletions) only on nodes that had a fault that
// justifies it (crashed, isolated, minority side), or had one within
// chaosActionMargin; (3) every powered-off node was failed over within
// chaosDownCap, unless a guard held it back; (4) every record seen stays
// readable and ends final once the cluster settles.
func TestChaos_campaign(t *testing.T) {
	s := chaosSettingsFromEnv(t)
	t.Logf("chaos seed: %d (replay with HAAGENT_CHAOS_SEED=%d)", s.seed, s.seed)
	t.Logf("chaos: sizes %v, %s of faults per size", s.sizes, s.duration)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chaos seed: %d (replay with HAAGENT_CHAOS_SEED=%d)", s.seed, s.seed)
		}
	})
	var results []*chaosResult
	if s.report != "" {
		t.Cleanup(func() {
			if err := os.WriteFile(s.report, []byte(chaosReport(s, results)), 0o644); err != nil {
				t.Errorf("chaos report: %v", err)
			} else {
				t.Logf("chaos report written to %s", s.report)
			}
		})
	}
	for _, n := range s.sizes {
		res := &chaosResult{size: n, counts: map[chaosKind]int{}}
		results = append(results, res)
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			runChaos(t, s, res)
		})
	}
}

type chaosRun struct {
	t      *testing.T
	s      chaosSettings
	res    *chaosResult
	tc     *testCluster
	tl     *cluster.Timeline
	store  *record.Store
	rng    *rand.Rand
	start  time.Time
	ledger map[string][]chaosSpan
	// seen holds every record name seen, reported holds violations already
	// reported (by key), checkedEvents the timeline events already judged.
	seen          map[string]record.NodeFailover
	reported      map[string]bool
	checkedEvents map[string]bool
	failedOver    map[string]bool // record names counted as failovers
}

func runChaos(t *testing.T, s chaosSettings, res *chaosResult) {
	n := res.size
	began := time.Now()
	defer func() { res.elapsed = time.Since(began) }()
	tc := startCluster(t, clusterOptions{nodes: n, agent: chaosAgents, fence: true})
	names := nodeNames(tc.nodes)
	client := tc.cp.Client()
	ctx := context.Background()
	waitMembers(t, tc.nodes, 2*time.Minute, fmt.Sprintf("every agent sees %d alive and ready members", n), allAliveAndReady(names))
	startWorkload(t, client, int32(n))
	startDB(t, client, names[1])
	tl, err := cluster.StartTimeline(ctx, tc.cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tl.Stop)
	dyn, err := dynamic.NewForConfig(tc.cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	store, err := record.NewStore(record.DefaultConfig(), record.Deps{Client: dyn})
	if err != nil {
		t.Fatal(err)
	}
	r := &chaosRun{
		t: t, s: s, res: res, tc: tc, tl: tl, store: store,
		// A stream per size, so that a size's draws do not depend on the others.
		rng:    rand.New(rand.NewPCG(s.seed, uint64(n))),
		ledger: map[string][]chaosSpan{}, seen: map[string]record.NodeFailover{},
		reported: map[string]bool{}, checkedEvents: map[string]bool{}, failedOver: map[string]bool{},
	}
	r.start = time.Now()
	tl.Fault(r.start)
	t.Logf("chaos N=%d: campaign starts (fence bound %s)", n, isolationFenceBound)

	for i := 1; time.Since(r.start) < s.duration; i++ {
		kind := r.drawKind()
		f := &chaosFault{size: n, index: i, kind: kind}
		res.faults = append(res.faults, f)
		res.counts[kind]++
		r.inject(f)
		if took, why := r.settle(chaosSettleCap); why != "" {
			r.logf("settle after fault #%d capped at %s: %s", i, took.Round(time.Second), why)
			f.outcome = append(f.outcome, "settle capped: "+why)
		} else {
			r.logf("settled after fault #%d in %s", i, took.Round(100*time.Millisecond))
		}
		before := len(res.violations)
		r.check(false)
		f.violations += len(res.violations) - before
	}
	if took, why := r.settle(chaosFinalSettleCap); why != "" {
		r.logf("final settle capped at %s: %s", took.Round(time.Second), why)
	}
	r.check(true)
	var b strings.Builder
	for _, k := range chaosKinds {
		if c := res.counts[k.kind]; c > 0 {
			fmt.Fprintf(&b, " %s=%d", k.kind, c)
		}
	}
	byInv := make([]int, len(chaosInvariants))
	for _, v := range res.violations {
		byInv[v.invariant]++
	}
	t.Logf("chaos N=%d: %d faults:%s; %d failovers, %d paused; violations: (1) %d, (2) %d, (3) %d, (4) %d",
		n, len(res.faults), b.String(), res.failovers, res.paused, byInv[1], byInv[2], byInv[3], byInv[4])
	if len(res.violations) > 0 {
		t.Logf("chaos N=%d timeline:\n%s\ncontainer journal:\n%s", n, tl.Table(), tc.journal.Table(r.start))
	}
}

func (r *chaosRun) logf(format string, args ...any) {
	r.t.Helper()
	r.t.Logf("chaos N=%d +%.1fs: %s", r.res.size, time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// violate records and reports a violation, once per key.
func (r *chaosRun) violate(key string, inv int, format string, args ...any) {
	r.t.Helper()
	if r.reported[key] {
		return
	}
	r.reported[key] = true
	msg := fmt.Sprintf(format, args...)
	r.res.violations = append(r.res.violations, chaosViolation{inv, msg})
	r.t.Errorf("chaos seed %d (replay with HAAGENT_CHAOS_SEED=%d), N=%d: invariant %d (%s) violated: %s",
		r.s.seed, r.s.seed, r.res.size, inv, chaosInvariants[inv], msg)
}

func (r *chaosRun) drawKind() chaosKind {
	total := 0
	for _, k := range chaosKinds {
		if k.kind != chaosEven || r.res.size%2 == 0 {
			total += k.weight
		}
	}
	x := r.rng.IntN(total)
	for _, k := range chaosKinds {
		if k.kind == chaosEven && r.res.size%2 != 0 {
			continue
		}
		if x < k.weight {
			return k.kind
		}
		x -= k.weight
	}
	panic("unreachable")
}

// drawDuration draws a fault length in [lo, hi].
func (r *chaosRun) drawDuration(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.rng.Int64N(int64(hi-lo)+1)).Round(100*time.Millisecond)
}

// minority is the most nodes that may be faulted at once.
func (r *chaosRun) minority() int { return (r.res.size - 1) / 2 }

// pick draws k distinct nodes. With preferDB, the first is db-0's node
// (where it runs at that moment) when the draw says so.
func (r *chaosRun) pick(k int, preferDB bool) []*cluster.Node {
	perm := r.rng.Perm(r.res.size)
	wantDB := r.rng.IntN(2) == 0
	nodes := make([]*cluster.Node, 0, k)
	if preferDB && wantDB {
		if p, err := r.tc.cp.Client().CoreV1().Pods("default").Get(context.Background(), "db-0", metav1.GetOptions{}); err == nil {
			for _, n := range r.tc.nodes {
				if n.Name() == p.Spec.NodeName {
					nodes = append(nodes, n)
				}
			}
		}
	}
	for _, i := range perm {
		if len(nodes) == k {
			break
		}
		if n := r.tc.nodes[i]; !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	return nodes
}

func (r *chaosRun) justify(nodes []*cluster.Node, from, to time.Time) {
	for _, n := range nodes {
		r.ledger[n.Name()] = append(r.ledger[n.Name()], chaosSpan{from, to})
	}
}

func (r *chaosRun) begin(f *chaosFault, nodes []*cluster.Node, detail string) {
	f.nodes = nodeNames(nodes)
	f.start = time.Now()
	r.logf("fault #%d %s starts on %v %s", f.index, f.kind, f.nodes, detail)
}

func (r *chaosRun) finish(f *chaosFault) {
	f.end = time.Now()
	outcome := strings.Join(f.outcome, "; ")
	if outcome == "" {
		outcome = "no failover expected"
	}
	r.logf("fault #%d %s ends on %v after %s: %s", f.index, f.kind, f.nodes,
		f.end.Sub(f.start).Round(100*time.Millisecond), outcome)
}

func (r *chaosRun) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatalf("chaos seed %d: %v", r.s.seed, err)
	}
}

func (r *chaosRun) inject(f *chaosFault) {
	ctx := context.Background()
	switch f.kind {
	case chaosCrash:
		victims := r.pick(1+r.rng.IntN(min(2, r.minority())), true)
		d := r.drawDuration(5*time.Second, 30*time.Second)
		r.begin(f, victims, fmt.Sprintf("(powered off for at least %s)", d))
		r.crashAndReturn(ctx, f, victims, d, nil)
	case chaosIsolate:
		victim := r.pick(1, true)
		d := r.drawDuration(5*time.Second, 30*time.Second)
		r.begin(f, victim, fmt.Sprintf("(cut off for at least %s, until fenced and failed over)", d))
		fault, err := r.tc.faults.Isolate(victim[0].IP())
		r.must(err)
		r.awaitFailover(f, victim, d, true)
		// Powered off by its fence: the agent dies with the node; then the
		// node boots again, on the network.
		if a := victim[0].Agent(); a.Running() {
			r.must(victim[0].CrashAgent())
		}
		r.must(fault.Remove())
		r.must(victim[0].Return(ctx))
		r.justify(victim, f.start, time.Now())
		r.finish(f)
	case chaosMinority:
		k := 1 + r.rng.IntN(r.minority())
		nodes := r.pick(r.res.size, false)
		minor, major := nodes[:k], nodes[k:]
		d := r.drawDuration(5*time.Second, 30*time.Second)
		r.begin(f, minor, fmt.Sprintf("(cut from the other %d for %s)", len(major), d))
		fault, err := r.tc.faults.Partition(ips(major), ips(minor))
		r.must(err)
		time.Sleep(d)
		r.must(fault.Remove())
		r.justify(minor, f.start, time.Now())
		f.outcome = append(f.outcome, fmt.Sprintf("%d of %d failed over", r.failedOverSince(minor, f.start), k))
		r.finish(f)
	case chaosEven:
		nodes := r.pick(r.res.size, false)
		half := r.res.size / 2
		d := r.drawDuration(5*time.Second, 30*time.Second)
		r.begin(f, nodes[:half], fmt.Sprintf("(cut %d|%d for %s)", half, half, d))
		fault, err := r.tc.faults.Partition(ips(nodes[:half]), ips(nodes[half:]))
		r.must(err)
		time.Sleep(d)
		r.must(fault.Remove())
		r.finish(f)
	case chaosLoss:
		victims := r.pick(1+r.rng.IntN(min(3, r.minority())), false)
		p := 0.10 + 0.20*r.rng.Float64()
		d := r.drawDuration(5*time.Second, 30*time.Second)
		r.begin(f, victims, fmt.Sprintf("(%.0f %% loss for %s)", 100*p, d))
		faults := r.loss(victims, p)
		time.Sleep(d)
		for _, fl := range faults {
			r.must(fl.Remove())
		}
		r.finish(f)
	case chaosStall:
		victim := r.pickAgent()
		d := r.drawDuration(2*time.Second, 5*time.Second)
		r.begin(f, victim, fmt.Sprintf("(SIGSTOP for %s)", d))
		r.must(victim[0].PauseAgent())
		time.Sleep(d)
		r.must(victim[0].ResumeAgent())
		r.finish(f)
	case chaosRestart:
		victim := r.pickAgent()
		d := r.drawDuration(0, 3*time.Second)
		r.begin(f, victim, fmt.Sprintf("(SIGKILL, started again after %s)", d))
		r.must(victim[0].CrashAgent())
		time.Sleep(d)
		r.must(victim[0].StartAgent())
		r.finish(f)
	case chaosAPIOutage:
		d := r.drawDuration(2*time.Second, 2*isolationFenceAfter)
		r.begin(f, r.tc.nodes, fmt.Sprintf("(every node cut off from the API server for %s)", d))
		var cuts []*cluster.Fault
		for _, n := range r.tc.nodes {
			c, err := n.IsolateFromAPI()
			r.must(err)
			cuts = append(cuts, c)
		}
		time.Sleep(d)
		for _, c := range cuts {
			r.must(c.Remove())
		}
		r.finish(f)
	case chaosCrashDuringLoss:
		nodes := r.pick(1+min(2, r.minority()-1), true)
		victim, lossy := nodes[:1], nodes[1:]
		p := 0.10 + 0.20*r.rng.Float64()
		d := r.drawDuration(5*time.Second, 30*time.Second)
		r.begin(f, nodes, fmt.Sprintf("(%.0f %% loss on %v, crash of %s for at least %s)", 100*p, nodeNames(lossy), victim[0].Name(), d))
		faults := r.loss(lossy, p)
		time.Sleep(r.drawDuration(time.Second, 3*time.Second))
		r.crashAndReturn(ctx, f, victim, d, nil)
		for _, fl := range faults {
			r.must(fl.Remove())
		}
	case chaosStallDuringCrash:
		nodes := r.pick(2, true)
		victim := nodes[:1]
		stalled := nodes[1]
		if r.rng.IntN(2) == 0 {
			// The coordinator's agent, when it is not on the victim.
			if holder, err := coordinator(ctx, r.tc.cp.Client()); err == nil && holder != victim[0].Name() {
				for _, n := range r.tc.nodes {
					if n.Name() == holder {
						stalled = n
					}
				}
			}
		}
		d := r.drawDuration(5*time.Second, 30*time.Second)
		stall := r.drawDuration(2*time.Second, 5*time.Second)
		r.begin(f, []*cluster.Node{victim[0], stalled},
			fmt.Sprintf("(crash of %s for at least %s; %s's agent stalled %s right after)", victim[0].Name(), d, stalled.Name(), stall))
		r.crashAndReturn(ctx, f, victim, d, func() {
			r.must(stalled.PauseAgent())
			time.Sleep(stall)
			r.must(stalled.ResumeAgent())
		})
	default:
		panic("chaos: unknown kind " + string(f.kind))
	}
}

// pickAgent draws a node for an agent fault: the coordinator's, by a coin.
func (r *chaosRun) pickAgent() []*cluster.Node {
	nodes := r.pick(1, false)
	if r.rng.IntN(2) == 0 {
		if holder, err := coordinator(context.Background(), r.tc.cp.Client()); err == nil {
			for _, n := range r.tc.nodes {
				if n.Name() == holder {
					return []*cluster.Node{n}
				}
			}
		}
	}
	return nodes
}

func (r *chaosRun) loss(nodes []*cluster.Node, p float64) []*cluster.Fault {
	var out []*cluster.Fault
	for _, n := range nodes {
		fl, err := r.tc.faults.Loss(n.IP(), p)
		r.must(err)
		out = append(out, fl)
	}
	return out
}

// crashAndReturn powers the victims off, runs during (if any) right after,
// keeps them down until awaitFailover is done, and brings them back.
func (r *chaosRun) crashAndReturn(ctx context.Context, f *chaosFault, victims []*cluster.Node, d time.Duration, during func()) {
	if f.start.IsZero() {
		f.start = time.Now()
	}
	crashed := time.Now()
	for _, v := range victims {
		_, err := v.Crash()
		r.must(err)
	}
	if during != nil {
		during()
	}
	// awaitFailover measures from the fault's start, which may be before
	// the crash (crash+loss).
	r.awaitFailover(f, victims, crashed.Sub(f.start)+d, false)
	for _, v := range victims {
		r.must(v.Return(ctx))
	}
	r.justify(victims, crashed, time.Now())
	r.finish(f)
}

// failoverOf returns the record of a failover of node that started at or
// after since and got as far as evicting.
func failoverOf(recs []record.NodeFailover, node string, since time.Time) (record.NodeFailover, bool) {
	for _, rec := range recs {
		// creationTimestamp has whole seconds.
		if rec.Spec.Node != node || rec.CreationTimestamp.Time.Before(since.Truncate(time.Second)) || rec.Spec.DryRun {
			continue
		}
		if rec.Status.EvictionsAccepted != nil {
			return rec, true
		}
		switch rec.Status.Phase {
		case record.PhaseEvicting, record.PhaseAwaitingFence, record.PhaseFenced, record.PhaseRecovering,
			record.PhaseRecovered, record.PhaseNodeReturned, record.PhaseCompleted:
			return rec, true
		}
	}
	return record.NodeFailover{}, false
}

func (r *chaosRun) failedOverSince(nodes []*cluster.Node, since time.Time) int {
	recs, _ := r.records()
	c := 0
	for _, n := range nodes {
		if rec, ok := failoverOf(recs, n.Name(), since); ok {
			c++
			if !r.failedOver[rec.Name] {
				r.failedOver[rec.Name] = true
				r.res.failovers++
			}
		}
	}
	return c
}

// records lists every record, and notes the ones seen.
func (r *chaosRun) records() ([]record.NodeFailover, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := r.store.ListAll(ctx)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		r.seen[rec.Name] = rec
	}
	return recs, nil
}

var heldBackLine = regexp.MustCompile(`failover held back.*"node": ?"([^"]+)"`)

// heldBack counts, per node, the "failover held back" lines in the logs
// of the agents not on skip (a cut-off victim's own view holds nothing back).
func (r *chaosRun) heldBack(skip []*cluster.Node) map[string]int {
	out := map[string]int{}
	for _, n := range r.tc.nodes {
		if slices.Contains(skip, n) {
			continue
		}
		data, err := os.ReadFile(n.Agent().LogPath())
		if err != nil {
			continue
		}
		for _, m := range heldBackLine.FindAllStringSubmatch(string(data), -1) {
			out[m[1]]++
		}
	}
	return out
}

// pausedMetric reports whether some reachable agent reports failover paused.
func (r *chaosRun) pausedMetric(skip []*cluster.Node) bool {
	for _, n := range r.tc.nodes {
		if slices.Contains(skip, n) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m, err := n.Agent().Metrics(ctx)
		cancel()
		if err == nil {
			if v, _ := m.Value("haagent_failover_paused"); v == 1 {
				return true
			}
		}
	}
	return false
}

// awaitFailover keeps the victims down for at least d and until each was
// failed over (invariant 3) and, with fence, fenced itself; at most
// chaosDownCap. A node held back by a guard counts as paused.
func (r *chaosRun) awaitFailover(f *chaosFault, victims []*cluster.Node, d time.Duration, fence bool) {
	since := f.start
	held0 := r.heldBack(victims)
	done := map[string]string{}
	fenced := map[string]time.Time{}
	pausedSeen := map[string]bool{}
	deadline := since.Add(chaosDownCap)
	lastPauseCheck := time.Time{}
	for {
		recs, err := r.records()
		if err != nil {
			r.logf("list records: %v", err)
		}
		for _, v := range victims {
			if _, ok := fenced[v.Name()]; fence && !ok {
				if at, ok := v.Fenced(); ok {
					fenced[v.Name()] = at
				}
			}
			if _, ok := done[v.Name()]; ok {
				continue
			}
			if rec, ok := failoverOf(recs, v.Name(), since); ok {
				at := time.Now()
				if rec.Status.EvictionsAccepted != nil {
					at = rec.Status.EvictionsAccepted.Time
				}
				done[v.Name()] = fmt.Sprintf("%s failed over (evicting at +%.1fs, record %s)", v.Name(), at.Sub(since).Seconds(), rec.Name)
				if !r.failedOver[rec.Name] {
					r.failedOver[rec.Name] = true
					r.res.failovers++
				}
			}
		}
		if time.Since(lastPauseCheck) > 2*time.Second {
			lastPauseCheck = time.Now()
			held := r.heldBack(victims)
			metric := r.pausedMetric(victims)
			for _, v := range victims {
				// A guard on the whole cluster logs the node "*".
				if held[v.Name()]+held["*"] > held0[v.Name()]+held0["*"] || metric {
					pausedSeen[v.Name()] = true
				}
			}
		}
		allDone := len(done) == len(victims) && (!fence || len(fenced) == len(victims))
		if (allDone && time.Since(since) >= d) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, v := range victims {
		name := v.Name()
		if fence {
			if at, ok := fenced[name]; ok {
				f.outcome = append(f.outcome, fmt.Sprintf("%s fenced itself at +%.1fs", name, at.Sub(since).Seconds()))
			} else {
				f.outcome = append(f.outcome, fmt.Sprintf("%s did not fence itself within %s", name, chaosDownCap))
				r.logf("%s, cut off, did not fence itself; its agent's log, last 40 lines:\n%s", name, v.Agent().LogTail(40))
				// Rule 5 of docs/design.md rests on the fence: the
				// out-of-service taint on a node that runs on unfenced is
				// a second copy waiting to happen, even when no stateful
				// pod was there to show it.
				for _, e := range r.tl.All(cluster.EventTainted, name) {
					if e.At.After(since) && strings.HasPrefix(e.Detail, "node.kubernetes.io/out-of-service") {
						r.violate(fmt.Sprintf("1/unfenced/%d/%s", f.index, name), 1,
							"fault #%d %s: %s was taken out of service at +%.1fs while cut off and not fenced (its kubelet and pods ran on)",
							f.index, f.kind, name, e.At.Sub(r.start).Seconds())
						break
					}
				}
			}
		}
		if msg, ok := done[name]; ok {
			if pausedSeen[name] {
				msg += ", after a guard held it back for a while"
			}
			f.outcome = append(f.outcome, msg)
			continue
		}
		if pausedSeen[name] {
			r.res.paused++
			f.outcome = append(f.outcome, name+" paused: a guard held its failover back")
			continue
		}
		f.outcome = append(f.outcome, name+" NOT failed over")
		r.violate(fmt.Sprintf("3/%d/%s", f.index, name), 3, "fault #%d %s: %s was powered off at +%.1fs and not failed over (no record reached Evicting) within %s, and no guard held it back",
			f.index, f.kind, name, since.Sub(r.start).Seconds(), chaosDownCap)
	}
}

// settle waits until every agent sees every node alive and ready and
// every record is final, at most limit. It returns how long it took and,
// if it gave up, what was still missing.
func (r *chaosRun) settle(limit time.Duration) (time.Duration, string) {
	start := time.Now()
	names := nodeNames(r.tc.nodes)
	check := allAliveAndReady(names)
	why := ""
	for time.Since(start) < limit {
		why = ""
		for _, n := range r.tc.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := n.Agent().Members(ctx)
			cancel()
			if err == nil {
				err = check(resp)
			}
			if err != nil {
				why = fmt.Sprintf("%s: %v", n.Name(), err)
				break
			}
		}
		if why == "" {
			recs, err := r.records()
			if err != nil {
				why = "records: " + err.Error()
			}
			for _, rec := range recs {
				if !rec.Status.Phase.Final() {
					why = fmt.Sprintf("record %s of %s is %s", rec.Name, rec.Spec.Node, rec.Status.Phase)
					break
				}
			}
		}
		if why == "" {
			return time.Since(start), ""
		}
		time.Sleep(500 * time.Millisecond)
	}
	return time.Since(start), why
}

// haagentTaint reports whether a timeline taint detail is one of haagent's
// own (the unreachable taint is also the node lifecycle controller's).
func haagentTaint(detail string) bool {
	return strings.HasPrefix(detail, "haagent.io/") || strings.HasPrefix(detail, "node.kubernetes.io/out-of-service")
}

// check judges what happened so far: invariants 1, 2 and 4 (final: every
// record must be final now).
func (r *chaosRun) check(final bool) {
	// (1) Never two copies.
	for _, pod := range r.tc.journal.Overlaps() {
		r.violate("1/"+pod, 1, "%s ran on two nodes at once:\n%s", pod, r.tc.journal.Table(r.start, pod))
	}
	// (2) Actions only on faulted nodes.
	for _, e := range r.tl.Events() {
		if e.At.Before(r.start) || e.Node == "" {
			continue
		}
		switch {
		case e.Kind == cluster.EventCordoned:
		case e.Kind == cluster.EventTainted && haagentTaint(e.Detail):
		case e.Kind == cluster.EventPodDeleting:
		default:
			continue
		}
		key := fmt.Sprintf("%s|%s|%s|%d", e.Kind, e.Subject, e.Detail, e.At.UnixNano())
		if r.checkedEvents[key] {
			continue
		}
		r.checkedEvents[key] = true
		if !r.justified(e.Node, e.At) {
			r.violate("2/"+key, 2, "%s %s %s on %s at +%.1fs, and the node had no crash, isolation or minority side in [%+.1fs, %+.1fs]; faults then: %s",
				e.Kind, e.Subject, e.Detail, e.Node, e.At.Sub(r.start).Seconds(),
				e.At.Add(-chaosActionMargin).Sub(r.start).Seconds(), e.At.Sub(r.start).Seconds(), r.faultsAround(e.At))
		}
	}
	// (4) No record lost; all final at the end.
	before := maps2slice(r.seen)
	recs, err := r.records()
	if err != nil {
		r.logf("list records: %v", err)
		return
	}
	have := map[string]record.NodeFailover{}
	for _, rec := range recs {
		have[rec.Name] = rec
	}
	for _, old := range before {
		if _, ok := have[old.Name]; !ok {
			r.violate("4/lost/"+old.Name, 4, "record %s of %s (last seen %s) is gone", old.Name, old.Spec.Node, old.Status.Phase)
		}
	}
	if final {
		for _, rec := range recs {
			if !rec.Status.Phase.Final() {
				r.violate("4/final/"+rec.Name, 4, "record %s of %s is %s (outcome %q) after the final settle, with every node up",
					rec.Name, rec.Spec.Node, rec.Status.Phase, rec.Status.Outcome)
			}
		}
	}
}

func maps2slice(m map[string]record.NodeFailover) []record.NodeFailover {
	out := make([]record.NodeFailover, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// justified reports whether node had a justifying fault at some point in
// [at - chaosActionMargin, at].
func (r *chaosRun) justified(node string, at time.Time) bool {
	for _, s := range r.ledger[node] {
		if !s.from.After(at) && !s.to.Add(chaosActionMargin).Before(at) {
			return true
		}
	}
	return false
}

// faultsAround names the faults going on within a minute before at.
func (r *chaosRun) faultsAround(at time.Time) string {
	var out []string
	for _, f := range r.res.faults {
		end := f.end
		if end.IsZero() {
			end = time.Now()
		}
		if !f.start.After(at) && end.Add(time.Minute).After(at) {
			out = append(out, fmt.Sprintf("#%d %s %v [%+.1fs, %+.1fs]", f.index, f.kind, f.nodes,
				f.start.Sub(r.start).Seconds(), end.Sub(r.start).Seconds()))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// chaosReport renders the markdown report.
func chaosReport(s chaosSettings, results []*chaosResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Chaos campaign\n\n")
	fmt.Fprintf(&b, "Written by `TestChaos_campaign` (`make chaos`); see [chaos-testing.md](chaos-testing.md) for what it does and checks.\n\n")
	fmt.Fprintf(&b, "| setting | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| machine | %d CPUs (nproc), %s/%s |\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "| seed | %d (replay with `HAAGENT_CHAOS_SEED=%d`) |\n", s.seed, s.seed)
	fmt.Fprintf(&b, "| sizes | %s |\n", strings.Trim(strings.Join(strings.Fields(fmt.Sprint(s.sizes)), ","), "[]"))
	fmt.Fprintf(&b, "| duration of faults per size | %s |\n", s.duration)
	fmt.Fprintf(&b, "| fence bound | %s |\n\n", isolationFenceBound)

	fmt.Fprintf(&b, "## Summary\n\n| size | wall time | faults | failovers | paused | violations (target 0) |\n|---|---|---|---|---|---|\n")
	for _, res := range results {
		fmt.Fprintf(&b, "| %d | %s | %d | %d | %d | %d |\n", res.size, res.elapsed.Round(time.Second), len(res.faults), res.failovers, res.paused, len(res.violations))
	}
	fmt.Fprintf(&b, "\n## Faults by kind\n\n| kind |")
	for _, res := range results {
		fmt.Fprintf(&b, " N=%d |", res.size)
	}
	fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---|", len(results)))
	for _, k := range chaosKinds {
		fmt.Fprintf(&b, "| %s |", k.kind)
		for _, res := range results {
			fmt.Fprintf(&b, " %d |", res.counts[k.kind])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n## Violations by invariant\n\n| invariant |")
	for _, res := range results {
		fmt.Fprintf(&b, " N=%d |", res.size)
	}
	fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---|", len(results)))
	for i := 1; i < len(chaosInvariants); i++ {
		fmt.Fprintf(&b, "| (%d) %s |", i, chaosInvariants[i])
		for _, res := range results {
			c := 0
			for _, v := range res.violations {
				if v.invariant == i {
					c++
				}
			}
			fmt.Fprintf(&b, " %d |", c)
		}
		b.WriteString("\n")
	}
	for _, res := range results {
		if len(res.violations) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n### Violations at N=%d\n\n", res.size)
		for _, v := range res.violations {
			fmt.Fprintf(&b, "- (%d) %s\n", v.invariant, strings.ReplaceAll(v.msg, "\n", " "))
		}
	}
	fmt.Fprintf(&b, "\n## Faults\n\n| size | # | start | length | kind | nodes | outcome | violations |\n|---|---|---|---|---|---|---|---|\n")
	for _, res := range results {
		var zero time.Time
		if len(res.faults) > 0 {
			zero = res.faults[0].start
		}
		for _, f := range res.faults {
			length := "-"
			if !f.end.IsZero() {
				length = f.end.Sub(f.start).Round(100 * time.Millisecond).String()
			}
			nodes := append([]string(nil), f.nodes...)
			sort.Strings(nodes)
			if len(nodes) == res.size {
				nodes = []string{"all"}
			}
			outcome := strings.Join(f.outcome, "; ")
			if outcome == "" {
				outcome = "no failover expected"
			}
			fmt.Fprintf(&b, "| %d | %d | +%.1fs | %s | %s | %s | %s | %d |\n", res.size, f.index,
				f.start.Sub(zero).Seconds(), length, f.kind, strings.Join(nodes, " "), outcome, f.violations)
		}
	}
	return b.String()
}
