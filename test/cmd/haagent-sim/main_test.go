package main

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/haagent/haagent/agent/record"
)

func TestParseFlags_defaults(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(o.sizes); got != 5 || o.sizes[4] != 1000 {
		t.Errorf("sizes = %v, want 50,100,250,500,1000", o.sizes)
	}
	if strings.Join(o.profiles, ",") != "default,fast" || len(o.losses) != 1 || o.losses[0] != 0 {
		t.Errorf("profiles %v, losses %v", o.profiles, o.losses)
	}
	if o.delay != time.Millisecond || o.crashes != 20 || o.quiet != time.Minute || o.timeout != 20*time.Minute ||
		o.stallsPerHour != 0 || o.stallMin != 2*time.Second || o.stallMax != 5*time.Second || o.probeInterval != 0 {
		t.Errorf("options %+v", o)
	}
}

func TestParseFlags_errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown profile", []string{"-profiles", "slow"}, `-profiles: unknown profile "slow"`},
		{"bad size", []string{"-n", "50,x"}, `-n: "x" must be a group size`},
		{"loss", []string{"-loss", "1"}, "-loss (1) must be at least 0 and below 1"},
		{"too few survivors", []string{"-n", "6", "-crashes", "2", "-coordinator-crashes", "2"}, "-n 6 leaves fewer than 3 survivors of -crashes 2 and -coordinator-crashes 2"},
		{"coordinator crashes", []string{"-coordinator-crashes", "-1"}, "-coordinator-crashes (-1) must be between 0 and 10"},
		{"decide tick", []string{"-decide-tick", "11s"}, "-decide-tick (11s) must be between 10ms and 10s"},
		{"discovery", []string{"-discovery", "dns"}, `-discovery ("dns") must be "all" or "seed"`},
		{"stalls", []string{"-stalls", "-1"}, "-stalls (-1) must be between 0 and 3600 per member-hour"},
		{"stall bounds", []string{"-stall-min", "3s", "-stall-max", "2s"}, "-stall-min (3s) must be positive and at most -stall-max (2s)"},
		{"jitter", []string{"-jitter", "-1ms"}, "-jitter (-1ms) must not be negative"},
		{"push/pull negative", []string{"-push-pull-interval", "-1s"}, "-push-pull-interval, -suspicion-mult and -indirect-checks must not be negative"},
		{"push/pull too long", []string{"-profiles", "auto", "-push-pull-interval", "1h"},
			"profile auto with the timing overrides: gossip: --push-pull-interval (1h0m0s) must be between 1s and 10m0s"},
		{"timing override", []string{"-profiles", "fast", "-probe-timeout", "300ms"},
			"profile fast with the timing overrides: gossip: --probe-timeout (300ms) must be less than --probe-interval (200ms)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// -push-pull-interval reaches every member's gossip configuration, and
// its child process.
func TestParseFlags_pushPull(t *testing.T) {
	o, err := parseFlags([]string{"-profiles", "auto", "-push-pull-interval", "45s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := gossipConfig(o, "sim-0001", "auto", 5000).Effective().PushPullInterval; got != 45*time.Second {
		t.Errorf("member's push/pull interval %s, want 45s", got)
	}
	if args := strings.Join(o.childArgs(runSpec{n: 5000, profile: "auto"}, time.Minute, "out.json"), " "); !strings.Contains(args, "-push-pull-interval 45s") {
		t.Errorf("child arguments %q lack -push-pull-interval 45s", args)
	}
}

func TestParseFlags_lossSweep(t *testing.T) {
	o, err := parseFlags([]string{"-loss-sweep"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.losses) != 2 || o.losses[1] != 0.05 {
		t.Fatalf("losses = %v, want [0 0.05]", o.losses)
	}
}

func TestSummarise_nearestRank(t *testing.T) {
	var xs []*float64
	for i := 1; i <= 10; i++ {
		xs = append(xs, ptr(float64(i)))
	}
	xs = append(xs, nil)
	s := summarise(xs)
	if s.Count != 10 || s.Missing != 1 || *s.P50 != 5 || *s.P90 != 9 || *s.P99 != 10 || *s.Max != 10 {
		t.Fatalf("summary = %+v", s)
	}
	if s := summarise(nil); s.P50 != nil || s.Count != 0 {
		t.Fatalf("empty summary = %+v", s)
	}
}

func TestParseProcStat(t *testing.T) {
	line := "42 (haagent sim) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 1 1"
	got, err := parseProcStat([]byte(line))
	if err != nil || got != 3 {
		t.Fatalf("parseProcStat = %v, %v; want 3 s", got, err)
	}
}

func TestParseMachineStat(t *testing.T) {
	busy, total, err := parseMachineStat([]byte("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n"))
	if err != nil || busy != 2 || total != 10 {
		t.Fatalf("parseMachineStat = %v, %v, %v; want 2, 10", busy, total, err)
	}
}

// TestSimulate_virtual runs a small group in a bubble: each crash must be
// seen by every survivor and recorded by the real coordinator in the fake
// API, in about the protocol's time, although no real second passes for
// each simulated one; then the Lease holder crashes, another member takes
// the Lease over and records its failover.
func TestSimulate_virtual(t *testing.T) {
	o, err := parseFlags([]string{"-n", "8", "-profiles", "fast", "-crashes", "2", "-coordinator-crashes", "1", "-quiet", "5s", "-json", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var r runResult
	wall := wallNow()
	synctest.Test(t, func(t *testing.T) {
		r = simulate(o, runSpec{n: 8, profile: "fast"}, &progress{w: io.Discard, start: wallNow()}, &stopSignal{})
	})
	if !r.Converged || r.Stopped != "" {
		t.Fatalf("converged %v, stopped %q", r.Converged, r.Stopped)
	}
	if len(r.Crashes) != 3 {
		t.Fatalf("crashes = %+v", r.Crashes)
	}
	for i, c := range r.Crashes {
		if c.AllS == nil || c.DecisionS == nil || c.RecordS == nil || c.CordonS == nil || c.TimedOut {
			t.Fatalf("crash not seen by all, not decided or not recorded and cordoned: %+v", c)
		}
		// At 8 members the fast profile's suspicion timeout is 0.8 s
		// (4 × 200 ms): nobody can see a death sooner, and the probe
		// round, the suspicion and the votes take a few seconds at most;
		// the record comes after the decision, the cordon after the
		// record.
		if *c.FirstS < 0.8 || *c.DecisionS > 5 || *c.RecordS < *c.FirstS || (i < 2 && *c.RecordS > 5) || *c.CordonS < *c.RecordS {
			t.Fatalf("crash %d seen first after %.2fs, decided after %.2fs, recorded after %.2fs, cordoned after %.2fs: %+v", i, *c.FirstS, *c.DecisionS, *c.RecordS, *c.CordonS, c)
		}
		if holder := i == 2; c.LeaseHolder != holder {
			t.Fatalf("crash %d: lease holder %v, want %v", i, c.LeaseHolder, holder)
		}
	}
	// The Lease holder's crash: another member took the Lease once a
	// quorum confirmed the holder dead, before the Lease ran out (6 s), and
	// recorded the failover once the old holder surely stopped acting: at
	// most the holder's stop bound (4 s renew deadline + 1 s retry + 1 s
	// allowance) after the takeover, and a tick.
	h := r.Crashes[2]
	t.Logf("holder crash: seen first %s, all %s, Lease taken over %s, recorded %s by %s", fmtS(h.FirstS), fmtS(h.AllS), fmtS(h.TakeoverS), fmtS(h.RecordS), h.RecordBy)
	if h.TakeoverS == nil || h.RecordBy == "" || h.RecordBy == h.Victim || *h.TakeoverS < *h.FirstS || *h.TakeoverS > 6 || *h.RecordS < *h.TakeoverS || *h.RecordS > *h.TakeoverS+6.5 {
		t.Fatalf("holder crash: taken over after %s by %q, recorded after %.2fs: %+v", fmtS(h.TakeoverS), h.RecordBy, *h.RecordS, h)
	}
	if d := r.Detection[keyHolderRecord]; d.Count != 1 || r.Detection[keyRecord].Count != 2 {
		t.Fatalf("summaries: holder %+v, others %+v", d, r.Detection[keyRecord])
	}
	if r.WrongCount != 0 {
		t.Fatalf("wrong actions: %+v", r.WrongActions)
	}
	// The run covers the quiet period and the crashes on the simulated
	// clock.
	if r.VirtualS < 5 || r.WallS >= r.VirtualS || wallNow().Sub(wall) > time.Duration(r.VirtualS*float64(time.Second)) {
		t.Fatalf("simulated %.1fs in %.1fs of wall time", r.VirtualS, r.WallS)
	}
}

// TestFakeAPI_wrongActions: a coordinator's record or cordon of a member
// that did not crash is a wrong action, by its author; of one that
// crashed, it is the failover, noted with its time.
func TestFakeAPI_wrongActions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rec := newRecorder(3)
		api := newFakeAPI([]string{memberName(0), memberName(1), memberName(2)}, rec)
		rec.crashed(2, time.Now())
		typed, dyn, down := api.clients(memberName(0))
		store, err := record.NewStore(record.DefaultConfig(), record.Deps{Client: dyn})
		if err != nil {
			t.Fatal(err)
		}
		for _, node := range []string{memberName(1), memberName(2)} {
			f, err := record.NewNodeFailover(node, "test", false, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Create(ctx, f); err != nil {
				t.Fatal(err)
			}
			patch := []byte(`{"spec":{"unschedulable":true}}`)
			if _, err := typed.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		wrong := api.wrongActions()
		if len(wrong) != 2 || wrong[0].Target != memberName(1) || wrong[0].Action != "record" || wrong[1].Action != "cordon" ||
			wrong[0].By != "coordinator "+memberName(0) {
			t.Fatalf("wrong actions = %+v, want the record and the cordon of %s", wrong, memberName(1))
		}
		if w, ok := api.recorded(memberName(2)); !ok || w.by != memberName(0) {
			t.Fatalf("record of the crashed member: %+v, %v", w, ok)
		}
		if _, ok := api.cordoned(memberName(2)); !ok {
			t.Fatal("cordon of the crashed member not noted")
		}
		// A crashed coordinator's clients refuse everything.
		down.Store(true)
		if _, err := typed.CoreV1().Nodes().Get(ctx, memberName(1), metav1.GetOptions{}); !errors.Is(err, errCrashed) {
			t.Fatalf("get from a crashed coordinator: %v", err)
		}
	})
}

// TestSimulate_stallsAreNotFailedOver stalls members of a small group
// often and long: they are suspected and may be declared dead, but their
// kubelets answer, so no failover may start.
func TestSimulate_stallsAreNotFailedOver(t *testing.T) {
	o, err := parseFlags([]string{"-n", "8", "-profiles", "fast", "-crashes", "0", "-quiet", "60s", "-stalls", "600", "-json", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var r runResult
	synctest.Test(t, func(t *testing.T) {
		r = simulate(o, runSpec{n: 8, profile: "fast"}, &progress{w: io.Discard, start: wallNow()}, &stopSignal{})
	})
	if r.Stopped != "" {
		t.Fatalf("stopped: %s", r.Stopped)
	}
	q := r.False[phaseQuiet]
	// 600 stalls per member-hour of 2-5 s against a suspicion timeout of
	// 0.8 s: about 70 stalls, and the peers notice them.
	if r.Stalls.Count < 20 || q.OfStalledSuspect == 0 {
		t.Fatalf("%d stalls, false events %+v: the stalls were not noticed", r.Stalls.Count, q)
	}
	if r.WrongCount != 0 {
		t.Fatalf("wrong actions: %+v", r.WrongActions)
	}
}

func TestChildArgs_roundTrip(t *testing.T) {
	o, err := parseFlags([]string{"-n", "50,100", "-profiles", "default,fast", "-loss-sweep", "-delay", "2ms", "-quiet", "3s",
		"-delay-spread", "4ms", "-jitter", "1ms", "-stalls", "6", "-stall-min", "1s", "-stall-max", "3s",
		"-probe-interval", "600ms", "-suspicion-mult", "5", "-settle", "7s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	spec := runSpec{n: 100, profile: "fast", loss: 0.05}
	c, err := parseFlags(o.childArgs(spec, time.Minute, "out.json"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.sizes) != 1 || c.sizes[0] != 100 || len(c.profiles) != 1 || c.profiles[0] != "fast" ||
		len(c.losses) != 1 || c.losses[0] != 0.05 || c.runOne != "out.json" || c.timeout != time.Minute ||
		c.delay != 2*time.Millisecond || c.quiet != 3*time.Second || c.jsonPath != "" ||
		c.delaySpread != 4*time.Millisecond || c.jitter != time.Millisecond || c.stallsPerHour != 6 ||
		c.stallMin != time.Second || c.stallMax != 3*time.Second || c.probeInterval != 600*time.Millisecond || c.suspicionMult != 5 || c.settle != 7*time.Second {
		t.Fatalf("child options %+v", c)
	}
}

func TestParseFlags_budgetAndLossSizes(t *testing.T) {
	o, err := parseFlags([]string{"-n", "50,100,250", "-loss-sweep", "-loss-sizes", "100", "-budget", "20m"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range o.plan() {
		got = append(got, s.String())
	}
	want := []string{
		"N=50 default loss=0%", "N=50 fast loss=0%", "N=100 default loss=0%", "N=100 fast loss=0%",
		"N=100 default loss=5%", "N=100 fast loss=5%", "N=250 default loss=0%", "N=250 fast loss=0%",
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if o.budget != 20*time.Minute {
		t.Fatalf("budget = %s", o.budget)
	}
	if _, err := parseFlags([]string{"-loss-sizes", "1"}, io.Discard); err == nil || !strings.Contains(err.Error(), `-loss-sizes: "1" must be a group size`) {
		t.Fatalf("err = %v", err)
	}
}

func TestEstimator_scalesFromTheLastRun(t *testing.T) {
	o, err := parseFlags([]string{"-crashes", "5", "-quiet", "20s", "-batch", "50", "-settle", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e := newEstimator(o)
	small, large := e.estimate(runSpec{n: 50, profile: "fast"}), e.estimate(runSpec{n: 500, profile: "fast"})
	if !(small < large) || small < fixedRunCost {
		t.Fatalf("a priori estimates: N=50 %s, N=500 %s", small, large)
	}
	// A measured run of 100 members: 10 simulated s to converge, 10 s per
	// crash (the Lease holder's apart), 80 simulated s in all that took
	// 40 s of wall time.
	r := runResult{N: 100, Profile: "fast", Converged: true, ConvergenceS: 10, VirtualS: 80, WallS: 40,
		Crashes: append(make([]crashSample, 5), crashSample{LeaseHolder: true}), Phases: []phaseUsage{{Phase: phaseCrash, VirtualS: 50}}}
	e.observe(r)
	got := e.estimate(runSpec{n: 400, profile: "fast"})
	// Converge 10 s × 8 batches / 2; crashes 5 × 10 s × log10(400)/2, and
	// the Lease holder's that much and a Lease duration (6 s) more; wall
	// per member-second 40/80/100 × √4.
	crash := 10 * (2.60206 / 2)
	virtual := 10*8/2 + 20 + 5*crash + (crash + 6)
	want := virtual*400*(40.0/80/100)*2 + fixedRunCost.Seconds()
	if d := got.Seconds() - want; d > 0.5 || d < -0.5 {
		t.Fatalf("estimate after a measured run = %.1fs, want %.1fs", got.Seconds(), want)
	}
	if other := e.estimate(runSpec{n: 400, profile: "default"}); other == got {
		t.Fatal("the default profile's estimate used the fast profile's run")
	}
	if why := budgetSkip(time.Minute, 30*time.Second); !strings.Contains(why, "estimated to take 1m0s, and 30s of the -budget is left") {
		t.Fatalf("budgetSkip = %q", why)
	}
	if why := budgetSkip(time.Minute, 2*time.Minute); why != "" {
		t.Fatalf("budgetSkip of a run that fits = %q", why)
	}
}

func TestQuietRates_perMemberHour(t *testing.T) {
	r := runResult{
		N:       100,
		False:   map[string]falseCounts{phaseQuiet: {Suspect: 10, Dead: 1}},
		Traffic: []traffic{{Phase: phaseQuiet, Seconds: 36, Members: 100}},
		Phases:  []phaseUsage{{Phase: phaseQuiet, CPUPerVirtualS: 0.5}},
	}
	q := r.quietRates()
	// 100 members × 36 s = 1 member-hour.
	if !q.ok || q.suspectPerMemberHour != 10 || q.deadPerMemberHour != 1 || q.cpuPerMember != 0.005 {
		t.Fatalf("quietRates = %+v", q)
	}
}

func TestCharts_fromResults(t *testing.T) {
	res := &results{Runs: []runResult{
		{N: 50, Profile: "fast", Detection: map[string]summary{keyHalf: {Count: 5, P50: ptr(1.5), P99: ptr(2)}},
			Traffic: []traffic{{Phase: phaseQuiet, Seconds: 10, Members: 50, SentBytesPerMemberS: 900}}},
		{N: 100, Profile: "fast", Stopped: "skipped: budget"},
		{N: 50, Profile: "default", Detection: map[string]summary{keyHalf: {Count: 5, P50: ptr(8), P99: ptr(11)}},
			Traffic: []traffic{{Phase: phaseQuiet, Seconds: 10, Members: 50, SentBytesPerMemberS: 400}}},
	}}
	det, tr := charts(res)
	if len(det.Series) != 4 || len(tr.Series) != 2 {
		t.Fatalf("%d detection and %d traffic series, want 4 and 2", len(det.Series), len(tr.Series))
	}
	if s := det.Series[1]; s.Name != "fast p99" || !s.Dashed || s.Y[0] != 2 || !math.IsNaN(s.Y[1]) {
		t.Fatalf("fast p99 series = %+v", s)
	}
	for _, c := range []lineChart{det, tr} {
		svg, err := c.SVG()
		if err != nil {
			t.Fatal(err)
		}
		svgElements(t, svg)
	}
	o := options{jsonPath: "out/sim.json"}
	if got := o.chartPrefix(); got != "out/sim" {
		t.Fatalf("chart prefix = %q", got)
	}
}

func TestMerge_poolsRepeatedRuns(t *testing.T) {
	run := func(crashes int, suspect int, bps float64) runResult {
		r := runResult{N: 20, Profile: "fast", Converged: true, VirtualS: 10, WallS: 1,
			False:   map[string]falseCounts{phaseQuiet: {Suspect: suspect}},
			Traffic: []traffic{{Phase: phaseQuiet, Seconds: 5, Members: 20, SentBytesPerMemberS: bps}},
			Phases:  []phaseUsage{{Phase: phaseQuiet, VirtualS: 5, CPUS: 1}}}
		for i := range crashes {
			r.Crashes = append(r.Crashes, crashSample{HalfS: ptr(float64(i + 1))})
		}
		return r
	}
	r := merge([]runResult{run(2, 1, 100), run(3, 2, 300)})
	if r.Repeats != 2 || len(r.Crashes) != 5 || r.Detection[keyHalf].Count != 5 || *r.Detection[keyHalf].Max != 3 {
		t.Fatalf("merged crashes: repeats %d, %d crashes, half %+v", r.Repeats, len(r.Crashes), r.Detection[keyHalf])
	}
	if r.False[phaseQuiet].Suspect != 3 || r.VirtualS != 20 {
		t.Fatalf("merged false events %+v, virtual %gs", r.False, r.VirtualS)
	}
	q, _ := r.traffic(phaseQuiet)
	p, _ := r.phase(phaseQuiet)
	if q.Seconds != 10 || q.SentBytesPerMemberS != 200 || p.VirtualS != 10 || p.CPUPerVirtualS != 0.2 {
		t.Fatalf("merged traffic %+v, phase %+v", q, p)
	}
}
