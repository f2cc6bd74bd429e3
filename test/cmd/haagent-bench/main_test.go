package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

func noEnv(string) string { return "" }

// parseCase is a command line after base and the error it must give
// ("" for none).
type parseCase struct {
	name string
	args []string
	want string
}

func checkParseFlags(t *testing.T, base []string, tests []parseCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(append(append([]string{}, base...), tc.args...), noEnv, io.Discard)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseFlags_bounds(t *testing.T) {
	base := []string{"--control-plane-bin", "/bin"}
	tests := []parseCase{
		{"defaults", nil, ""},
		{"no binaries", []string{"--control-plane-bin="}, "--control-plane-bin is empty and HAAGENT_CONTROL_PLANE_BIN is not set (hack/build-control-plane.sh prints the directory)"},
		{"size too small", []string{"-sizes", "2"}, `--sizes ("2"): 2 must be between 3 and 50`},
		{"size too large", []string{"-sizes", "7,51"}, `--sizes ("7,51"): 51 must be between 3 and 50`},
		{"size twice", []string{"-sizes", "7,7"}, `--sizes ("7,7"): 7 given twice`},
		{"too many sizes", []string{"-sizes", "3,4,5,6,7"}, `--sizes ("3,4,5,6,7"): at most 4 sizes`},
		{"size not a number", []string{"-sizes", "7,x"}, `--sizes ("7,x"): "x" is not a number`},
		{"crashes", []string{"-crashes", "101"}, "--crashes (101) must be between 0 and 100"},
		{"tuned crashes", []string{"-tuned-crashes", "0"}, "--tuned-crashes (0) must be between 1 and 100"},
		{"stock crashes", []string{"-stock-crashes", "21"}, "--stock-crashes (21) must be between 1 and 20"},
		{"stock gap below the eviction rate", []string{"-stock-gap", "5s"}, "--stock-gap (5s) must be between 10s and 10m"},
		{"failover interval", []string{"-failover-interval", "500ms"}, "--failover-interval (500ms) must be between 1s and 10m"},
		{"fence bound not past fence-after", []string{"-fence-bound", "10s"}, "--fence-bound (10s) must be more than the agents' --fence-after (10s) and at most 10m"},
		{"chaos too short", []string{"-chaos", "5s"}, "--chaos (5s) must be 0 (skip) or at least 10s"},
		{"chaos too long", []string{"-chaos", "11m"}, "--chaos (11m0s) must be between 0 and 10m"},
		{"chaos off", []string{"-chaos", "0"}, ""},
		{"cost too short", []string{"-cost", "1s"}, "--cost (1s) must be 0 (skip) or at least 5s"},
		{"stateful every 0", []string{"-stateful-every", "0"}, "--stateful-every (0) must be between 1 and 100"},
		{"stateful every crash", []string{"-stateful-every", "1"}, ""},
		{"nothing", []string{"-crashes", "0", "-stock=false", "-tuned=false"}, "nothing to measure: --crashes is 0, --stock and --tuned are false"},
		{"stray argument", []string{"now"}, "unexpected arguments: [now]"},
	}
	checkParseFlags(t, base, tests)
}

func TestParseFlags_defaults(t *testing.T) {
	o, err := parseFlags(nil, func(k string) string {
		if k == "HAAGENT_CONTROL_PLANE_BIN" {
			return "/cp"
		}
		return ""
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.binDir != "/cp" || len(o.sizes) != 2 || o.sizes[0] != 7 || o.sizes[1] != 20 || o.crashes != 20 {
		t.Errorf("defaults = %+v, want sizes 7,20, 20 crashes, binaries from the environment", o)
	}
}

func TestParseFlags_reportFromNeedsNoCluster(t *testing.T) {
	o, err := parseFlags([]string{"-report-from", "x.json", "-sizes", "bogus"}, noEnv, io.Discard)
	if err != nil || o.reportFrom != "x.json" {
		t.Errorf("-report-from: %+v, %v", o, err)
	}
}

func TestRun_helpAndUsageErrors(t *testing.T) {
	if code := run([]string{"-h"}, noEnv, io.Discard, io.Discard); code != 0 {
		t.Errorf("-h exits %d, want 0", code)
	}
	var stderr strings.Builder
	if code := run([]string{"-crashes", "-1"}, noEnv, io.Discard, &stderr); code != 2 {
		t.Errorf("a bad flag exits %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "--control-plane-bin is empty") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestCommandLine(t *testing.T) {
	t.Setenv("HAAGENT_BENCH_SCRIPT", "1")
	got := commandLine([]string{"--control-plane-bin", "/x/bin", "--haagent=/x/haagent", "--api-cost=0", "--api-cost-sizes=", "--beside", "cd /x && sim", "-sizes", "7"})
	if got != "hack/bench.sh -sizes 7" {
		t.Errorf("commandLine = %q, want the script and the user's flags only", got)
	}
	t.Setenv("HAAGENT_BENCH_SCRIPT", "")
	if got := commandLine([]string{"-sizes", "7"}); got != "haagent-bench -sizes 7" {
		t.Errorf("commandLine = %q", got)
	}
}

func TestMaxDown(t *testing.T) {
	for n, want := range map[int]int{3: 1, 5: 2, 7: 3, 10: 5, 20: 10, 50: 27} {
		got := MaxDown(n)
		if got != want {
			t.Errorf("MaxDown(%d) = %d, want %d", n, got, want)
		}
		if float64(got)/float64(n) >= 0.55 {
			t.Errorf("MaxDown(%d) = %d reaches the 55 %% threshold", n, got)
		}
	}
}

// fakeResults is a run at 20 nodes with every part.
func fakeResults() *Results {
	crash := func(secs map[scenario.Phase]float64) *Run {
		return &Run{Victim: "node-2", Pods: []string{"web-1"}, StatefulPods: []string{"db-1"}, WatchedSeconds: 30, Seconds: secs}
	}
	h := &Setup{Name: setupHaagent, Description: "agents"}
	for i := range 20 {
		d := float64(i) / 10 // 0 .. 1.9
		h.Crashes = append(h.Crashes, crash(map[scenario.Phase]float64{
			scenario.Cordoned: 1 + d, scenario.EndpointsRemoved: 1.1 + d, scenario.Evicted: 2 + d, scenario.StatefulMoved: 15 + d,
		}))
	}
	tuned := &Setup{Name: setupTuned, Description: "tuned"}
	tuned.Crashes = append(tuned.Crashes, crash(map[scenario.Phase]float64{scenario.EndpointsRemoved: 8, scenario.Evicted: 13}))
	stock := &Setup{Name: setupDefault, Description: "default"}
	stock.Crashes = append(stock.Crashes, crash(map[scenario.Phase]float64{scenario.EndpointsRemoved: 45, scenario.Evicted: 350}))
	sz := &Size{Nodes: 20, Setups: []*Setup{h, tuned, stock}}
	for _, s := range sz.Setups {
		s.summarize()
	}
	sz.Ratios = sz.ratios()
	sz.Chaos = []scenario.ChaosResult{{Kind: scenario.Loss10, Description: "loss", Seconds: 60}, {Kind: scenario.Stall, Seconds: 60, Injected: 12, Wrong: scenario.WrongActions{Cordons: 1}}}
	sz.Cost = summarizeCost(30*time.Second, []scenario.AgentCost{
		{Node: "node-1", RSSMeanMiB: 20, RSSMaxMiB: 22, CPU: 0.01, SentBytesPerSecond: 1000, ReceivedBytesPerSecond: 1000},
		{Node: "node-2", RSSMeanMiB: 30, RSSMaxMiB: 31, CPU: 0.03, SentBytesPerSecond: 500, ReceivedBytesPerSecond: 700},
	})
	res := &Results{Schema: SchemaVersion, Command: "hack/bench.sh", Complete: true, Sizes: []*Size{sz},
		Started: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Finished: time.Date(2026, 1, 2, 3, 44, 0, 0, time.UTC),
		Settings: Settings{Sizes: []int{20}, Crashes: 20, Chaos: "1m0s", ChaosSettle: "15s"}}
	res.Targets = targets(res)
	return res
}

func TestSummarize_unseenAndStats(t *testing.T) {
	res := fakeResults()
	h := res.Sizes[0].setup(setupHaagent)
	st := h.Summary[scenario.Cordoned]
	// 1.0 .. 2.9 in steps of 0.1: the 10th, 18th and 20th.
	if st.N != 20 || !near(st.P50, 1.9) || !near(st.P90, 2.7) || !near(st.P99, 2.9) || !near(st.Max, 2.9) {
		t.Errorf("cordoned stats %+v", st)
	}
	stock := res.Sizes[0].setup(setupDefault)
	if stock.Unseen[scenario.StatefulMoved] != 1 {
		t.Errorf("stock default: unseen %v, want the StatefulSet phase once", stock.Unseen)
	}
	if _, ok := stock.Unseen[scenario.Cordoned]; ok {
		t.Error("stock default counts a phase it cannot have (cordoned) as unseen")
	}
}

// A crash that brought its node back before the StatefulSet phase was due
// does not count that phase as unseen, and adds no sample; a crash that
// waited for it and did not see it does count.
func TestSummarize_unwatchedPhases(t *testing.T) {
	h := &Setup{Name: setupHaagent}
	for i := range 8 {
		r := &Run{Seconds: map[scenario.Phase]float64{scenario.Cordoned: 1}}
		switch {
		case i%4 == 0 && i < 4:
			r.Seconds[scenario.StatefulMoved] = 19
		case i%4 == 0:
			// waited, never seen
		default:
			r.Unwatched = []scenario.Phase{scenario.StatefulMoved}
		}
		h.Crashes = append(h.Crashes, r)
	}
	h.summarize()
	if st := h.Summary[scenario.StatefulMoved]; st.N != 1 || st.Max != 19 {
		t.Errorf("StatefulSet stats %+v, want the one sample", st)
	}
	if got := h.Unseen[scenario.StatefulMoved]; got != 1 {
		t.Errorf("StatefulSet unseen = %d, want 1 (the crash that waited for it)", got)
	}
	if st := h.Summary[scenario.Cordoned]; st.N != 8 {
		t.Errorf("cordoned samples = %d, want 8", st.N)
	}
	s := crashSchedule(Settings{StatefulEvery: 4})
	if !strings.Contains(s, "every 4th crash") {
		t.Errorf("schedule %q does not say every 4th crash", s)
	}
	if s := crashSchedule(Settings{StatefulEvery: 1}); strings.Contains(s, "every") {
		t.Errorf("schedule with every crash waiting = %q", s)
	}
}

func TestOrdinal(t *testing.T) {
	for k, want := range map[int]string{2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 21: "21st", 22: "22nd", 100: "100th"} {
		if got := ordinal(k); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", k, got, want)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestTargets(t *testing.T) {
	got := map[string]Target{}
	for _, tg := range fakeResults().Targets {
		got[tg.Name] = tg
	}
	want := map[string]string{
		"crash → node cordoned at N=20":                         "met", // p50 1.9, p99 2.9
		"crash → its pods out of the Service endpoints at N=20": "met", // p50 2.0, p99 3.0
		"evictions vs stock default (p50 ratio, every size)":    "met", // 350 / 2.9 = 121×
		"evictions vs stock tuned (p50 ratio, every size)":      "met",
		"wrong actions under chaos (every size and kind)":       "missed",
		"agent RSS at N=20":                                     "met",
		"agent CPU at N=20":                                     "missed",
	}
	for name, status := range want {
		tg, ok := got[name]
		if !ok {
			t.Errorf("no target %q (have %v)", name, got)
			continue
		}
		if tg.Status != status {
			t.Errorf("%s: %s (%s), want %s", name, tg.Status, tg.Value, status)
		}
	}
	if v := got["evictions vs stock default (p50 ratio, every size)"].Value; v != "N=20: 121×" {
		t.Errorf("ratio value %q, want N=20: 121×", v)
	}
}

func TestTargets_notMeasuredWithoutTwentyNodes(t *testing.T) {
	res := fakeResults()
	res.Sizes[0].Nodes = 7
	for _, tg := range targets(res) {
		if strings.Contains(tg.Name, "N=20") && tg.Status != "not measured" {
			t.Errorf("%s: %s without a 20-node run", tg.Name, tg.Status)
		}
	}
}

func TestMarkdown(t *testing.T) {
	res := fakeResults()
	res.SimulationMarkdown = "### From the simulator\n\n| n | t |\n"
	md := markdown(res)
	for _, want := range []string{
		"# haagent benchmarks",
		"`hack/bench.sh`",
		"## Failover latency, 20 nodes",
		"| node cordoned | 1.90s / 2.70s / 2.90s / 2.90s (20) | - | - |",
		"never while watched (1 of 1 crashes, up to 30.0s)",
		// 13/2.9, 13/3.9, 350/2.9, 350/3.9
		"| its pods evicted (deleting) | 4.5× | 3.3× | 121× | 90× |",
		"![failover phases at 20 nodes](bench/latency-n20.svg)",
		"| 20 | stall |",
		"**1**",
		simBegin + "\n### From the simulator",
		simEnd,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Count(md, simBegin) != 1 || strings.Index(md, simBegin) > strings.Index(md, simEnd) {
		t.Error("the simulation markers are not one begin before one end")
	}
}

func TestWriteDocs_andReportFrom(t *testing.T) {
	dir := t.TempDir()
	res := fakeResults()
	if err := writeDocs(dir, res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"BENCHMARKS.md", "benchmarks.json", "bench/latency-n20.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "benchmarks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Schema != SchemaVersion || len(back.Sizes[0].Setups[0].Crashes) != 20 {
		t.Errorf("the JSON does not hold the raw crashes: schema %q", back.Schema)
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "bench/latency-n20.svg"))
	if !strings.Contains(string(svg), "stock default: never while watched") || !strings.HasPrefix(string(svg), "<svg") {
		t.Errorf("the plot does not mark the stock StatefulSet phase as never reached")
	}
	if !strings.Contains(string(svg), "stock tuned: no such phase") {
		t.Errorf("the plot does not mark the phases stock cannot have (cordoned)")
	}

	// -report-from with a simulator fragment rewrites the report.
	sim := filepath.Join(t.TempDir(), "sim.md")
	if err := os.WriteFile(sim, []byte("simulated: 1000 members"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var stdout strings.Builder
	code := run([]string{"-report-from", filepath.Join(dir, "benchmarks.json"), "-sim-md", sim, "-docs", out}, noEnv, &stdout, io.Discard)
	if code != 0 {
		t.Fatalf("-report-from exits %d", code)
	}
	md, _ := os.ReadFile(filepath.Join(out, "BENCHMARKS.md"))
	if !strings.Contains(string(md), simBegin+"\nsimulated: 1000 members\n"+simEnd) {
		t.Errorf("the simulator's markdown is not in its section:\n%s", md)
	}
}

func TestReportFrom_wrongSchema(t *testing.T) {
	f := filepath.Join(t.TempDir(), "old.json")
	if err := os.WriteFile(f, []byte(`{"schema":"haagent-bench/v1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	if code := run([]string{"-report-from", f, "-docs", t.TempDir()}, noEnv, io.Discard, &stderr); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), `schema "haagent-bench/v1", this program reads "haagent-bench/v2"`) {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestParseMachine(t *testing.T) {
	model, n := parseCPUInfo("processor\t: 0\nmodel name\t: Some  CPU @ 2.0GHz\n\nprocessor\t: 1\nmodel name\t: Some  CPU @ 2.0GHz\n")
	if model != "Some CPU @ 2.0GHz" || n != 2 {
		t.Errorf("cpuinfo: %q, %d", model, n)
	}
	if got := parseMemTotal("MemFree: 1 kB\nMemTotal:       25165824 kB\n"); got != 24576 {
		t.Errorf("MemTotal = %d MiB, want 24576", got)
	}
}

func TestRelativeTo(t *testing.T) {
	got := relativeTo("/src/haagent", "cd /src/haagent && /src/haagent/_output/bin/sim -json docs/x.json >/src/haagent/_output/t.txt")
	want := "cd . && _output/bin/sim -json docs/x.json >_output/t.txt"
	if got != want {
		t.Errorf("relativeTo = %q, want %q", got, want)
	}
}
