package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

func TestParseFlags_ground(t *testing.T) {
	base := []string{"--control-plane-bin", "/bin"}
	tests := []parseCase{
		{"invalid", []string{"-ground", "kind"}, `--ground ("kind") must be one of fake, hollow`},
		{"empty", []string{"-ground="}, `--ground ("") must be one of fake, hollow`},
		{"hollow defaults", []string{"-ground", "hollow"}, ""},
		{"hollow with tuned", []string{"-ground", "hollow", "-tuned"}, "--tuned cannot run with -ground hollow: a real kubelet renews its node Lease every 10 s, too seldom for the tuned 8 s node-monitor-grace-period (every node would flap NotReady); use --tuned=false"},
		{"hollow with tuned off", []string{"-ground", "hollow", "-tuned=false"}, ""},
		{"hollow with api cost", []string{"-ground", "hollow", "-api-cost", "1m"}, "--api-cost cannot run with -ground hollow: a hollow node's kubelet and agent share its address and API proxy, so the agent's API requests cannot be told apart from the kubelet's; use --api-cost=0"},
		{"hollow with api cost only", []string{"-ground", "hollow", "-api-cost-only"}, "--api-cost cannot run with -ground hollow: a hollow node's kubelet and agent share its address and API proxy, so the agent's API requests cannot be told apart from the kubelet's; use --api-cost=0"},
		{"hollow with api cost sizes", []string{"-ground", "hollow", "-api-cost-sizes", "50"}, `--api-cost-sizes ("50") cannot run with -ground hollow: the API cost is measured on the fake ground only; leave it empty`},
		{"hollow as bench.sh calls it", []string{"--api-cost=0", "--api-cost-sizes=", "-ground", "hollow", "-sizes", "7,20", "-crashes", "10", "-stock=false", "-tuned=false", "-chaos", "0", "-cost", "0"}, ""},
		{"hollow with nothing", []string{"-ground", "hollow", "-crashes", "0"}, "nothing to measure: --crashes is 0, --stock and --tuned are false"},
		{"compare-with on fake", []string{"-compare-with", "x.json"}, "--compare-with is for -ground hollow"},
	}
	checkParseFlags(t, base, tests)
}

func TestParseFlags_hollowTurnsOffWhatCannotRun(t *testing.T) {
	o, err := parseFlags([]string{"--control-plane-bin", "/bin", "-ground", "hollow"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.ground != scenario.Hollow || o.tuned || o.stock || o.apiCost != 0 || len(o.apiCostSizes) != 0 {
		t.Errorf("hollow defaults: ground %q, tuned %v, stock %v, api cost %s at %v; want hollow and all off", o.ground, o.tuned, o.stock, o.apiCost, o.apiCostSizes)
	}
	o, err = parseFlags([]string{"--control-plane-bin", "/bin", "-ground", "hollow", "-stock"}, noEnv, io.Discard)
	if err != nil || !o.stock {
		t.Errorf("-stock on hollow: stock %v, %v; want it kept", o.stock, err)
	}
	o, err = parseFlags([]string{"--control-plane-bin", "/bin"}, noEnv, io.Discard)
	if err != nil || o.ground != scenario.Fake || !o.tuned || !o.stock || o.apiCost == 0 {
		t.Errorf("fake defaults changed: %+v, %v", o, err)
	}
}

// hollowResults is fakeResults on the hollow ground, 0.5 s slower
// everywhere, with the haagent set-up alone.
func hollowResults() *Results {
	res := fakeResults()
	res.Ground = string(scenario.Hollow)
	res.Commit = "abc1234"
	res.Command = "hack/bench.sh -ground hollow"
	res.Machine = Machine{CPU: "Other CPU", Cores: 2, MemoryMiB: 1024}
	res.Settings.Crashes = 10
	sz := res.Sizes[0]
	h := sz.haagent()
	for _, r := range h.Crashes {
		for ph, v := range r.Seconds {
			r.Seconds[ph] = v + 0.5
		}
	}
	h.summarize()
	sz.Setups = []*Setup{h}
	sz.Ratios, sz.Chaos, sz.Cost = nil, nil, nil
	res.Settings.Chaos, res.Settings.CostWindow = "0s", "0s"
	return res
}

func TestWriteHollowDocs_besideTheFakeRun(t *testing.T) {
	dir := t.TempDir()
	if err := writeDocs(dir, fakeResults()); err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	for _, f := range []string{"BENCHMARKS.md", "benchmarks.json", "bench/latency-n20.svg"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		before[f] = data
	}
	fake, err := readFakeResults("", dir)
	if err != nil || fake == nil {
		t.Fatalf("readFakeResults: %v, %v", fake, err)
	}
	if err := writeHollowDocs(dir, hollowResults(), fake); err != nil {
		t.Fatal(err)
	}
	for f, data := range before {
		now, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || string(now) != string(data) {
			t.Errorf("the hollow run changed the fake run's %s", f)
		}
	}
	for _, f := range []string{hollowReport, hollowJSON, "bench/hollow-latency-n20.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, hollowReport))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# haagent benchmarks on hollow nodes",
		"| ground | hollow (kubemark kubelets, a network namespace per node) |",
		"| commit | abc1234 |",
		"| command | `hack/bench.sh -ground hollow` |",
		"| machine | Other CPU, 2 cores, 1024 MiB",
		"**Besides the ground, the runs differ in** a different machine (this run: Other CPU, 2 cores, 1024 MiB); another number of crashes (10, fake run 20",
		"| phase | hollow p50 / p90 / max (n) | fake p50 / p90 / max (n) | hollow − fake, p50 |",
		// fake: 1 + i/10, p50 1.9, p90 2.7, max 2.9; hollow 0.5 s more.
		"| node cordoned | 2.40s / 3.20s / 3.40s (20) | 1.90s / 2.70s / 2.90s (20) | +0.50s (1.26×) |",
		"What differs between the grounds.",
		"Lease renewed every 10 s",
		"Not run on this ground: the **stock tuned** cluster",
		"From the crash to the eviction (3 phases) hollow's p50 is +0.50 s to +0.50 s from fake's.",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("%s lacks %q:\n%s", hollowReport, want, md)
		}
	}

	// -report-from rewrites the hollow report from its JSON, beside the
	// fake run's, and leaves BENCHMARKS.md alone.
	if err := os.Remove(filepath.Join(dir, hollowReport)); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"-report-from", filepath.Join(dir, hollowJSON), "-docs", dir}, noEnv, io.Discard, io.Discard); code != 0 {
		t.Fatalf("-report-from exits %d", code)
	}
	again, err := os.ReadFile(filepath.Join(dir, hollowReport))
	if err != nil || string(again) != string(md) {
		t.Errorf("-report-from wrote another hollow report (%v)", err)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, "BENCHMARKS.md")); string(now) != string(before["BENCHMARKS.md"]) {
		t.Error("-report-from of the hollow results changed BENCHMARKS.md")
	}
}

func TestReadFakeResults(t *testing.T) {
	dir := t.TempDir()
	if res, err := readFakeResults("", dir); res != nil || err != nil {
		t.Errorf("no benchmarks.json: %v, %v; want nothing to compare with", res, err)
	}
	if _, err := readFakeResults(filepath.Join(dir, "missing.json"), dir); err == nil {
		t.Error("a missing -compare-with file is no error")
	}
	if err := writeHollowDocs(dir, hollowResults(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := readFakeResults(filepath.Join(dir, hollowJSON), dir); err == nil || !strings.Contains(err.Error(), "a hollow run's results") {
		t.Errorf("hollow results taken as the fake run's: %v", err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, hollowReport))
	if !strings.Contains(string(md), "No fake run's results (benchmarks.json) were found to compare with.") {
		t.Errorf("the report does not say there was nothing to compare with:\n%s", md)
	}
}
