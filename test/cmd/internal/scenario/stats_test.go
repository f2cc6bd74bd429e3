package scenario

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/haagent/haagent/test/cluster"
)

func TestSummarize_nearestRank(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want Stats
	}{
		{"empty", nil, Stats{}},
		{"one", []float64{3}, Stats{N: 1, P50: 3, P90: 3, P99: 3, Max: 3}},
		// 1..10: p50 is the 5th, p90 the 9th, p99 the 10th.
		{"ten shuffled", []float64{7, 3, 10, 1, 9, 2, 8, 4, 6, 5}, Stats{N: 10, P50: 5, P90: 9, P99: 10, Max: 10}},
		// 1..200: p50 the 100th, p90 the 180th, p99 the 198th.
		{"two hundred", seq(200), Stats{N: 200, P50: 100, P90: 180, P99: 198, Max: 200}},
		{"even pair takes the lower", []float64{2, 1}, Stats{N: 2, P50: 1, P90: 2, P99: 2, Max: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summarize(tc.xs); got != tc.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tc.xs, got, tc.want)
			}
		})
	}
}

func TestSummarize_leavesInputAlone(t *testing.T) {
	xs := []float64{3, 1, 2}
	Summarize(xs)
	if xs[0] != 3 || xs[1] != 1 || xs[2] != 2 {
		t.Errorf("Summarize sorted its input: %v", xs)
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[n-1-i] = float64(i + 1)
	}
	return out
}

func TestParseProc(t *testing.T) {
	status := "Name:\thaagent\nVmPeak:\t  900000 kB\nVmRSS:\t   20480 kB\nRssAnon:\t   12288 kB\nRssFile:\t    8192 kB\nThreads:\t9\n"
	// The command name holds a space and a parenthesis; utime 250, stime 50.
	stat := "4242 (ha agent) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0 100 1000 5000"
	s, err := parseProc(status, stat)
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSKiB != 20480 || s.AnonKiB != 12288 || s.FileKiB != 8192 {
		t.Errorf("memory = %d/%d/%d KiB, want 20480/12288/8192", s.RSSKiB, s.AnonKiB, s.FileKiB)
	}
	if s.CPUSeconds != 3 {
		t.Errorf("CPU = %v s, want 3 (300 ticks)", s.CPUSeconds)
	}
	if _, err := parseProc("VmRSS:\t1 kB\n", stat); err == nil {
		t.Error("a status without RssAnon and RssFile parsed")
	}
	if _, err := parseProc(status, "4242 (x) S 1"); err == nil {
		t.Error("a short stat parsed")
	}
}

func TestReadProc_self(t *testing.T) {
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSKiB <= 0 || s.RSSKiB < s.AnonKiB {
		t.Errorf("RSS %d KiB, anon %d KiB: implausible", s.RSSKiB, s.AnonKiB)
	}
}

func TestSummarizeCost(t *testing.T) {
	a := AgentCost{Samples: []CostSample{
		{Seconds: 0, RSSKiB: 10240, AnonKiB: 6144, FileKiB: 4096, CPUSeconds: 1},
		{Seconds: 10, RSSKiB: 20480, AnonKiB: 8192, FileKiB: 4096, CPUSeconds: 1.2},
	}}
	summarizeCost(&a)
	if a.RSSMeanMiB != 15 || a.RSSMaxMiB != 20 || a.AnonMeanMiB != 7 || a.FileMeanMiB != 4 {
		t.Errorf("memory = %+v", a)
	}
	if math.Abs(a.CPU-0.02) > 1e-9 {
		t.Errorf("CPU = %v per second, want 0.02", a.CPU)
	}
}

func TestPerNodeLoss(t *testing.T) {
	for _, p := range []float64{0.1, 0.3} {
		q := PerNodeLoss(p)
		// A packet crosses two nodes' rules.
		if got := 1 - (1-q)*(1-q); math.Abs(got-p) > 1e-12 {
			t.Errorf("PerNodeLoss(%v) = %v: a path loses %v", p, q, got)
		}
	}
}

func TestCountWrongActions(t *testing.T) {
	ev := func(since time.Duration, kind cluster.EventKind, subject, node, detail string) cluster.Event {
		return cluster.Event{Since: since, Kind: kind, Subject: subject, Node: node, Detail: detail}
	}
	events := []cluster.Event{
		ev(-time.Second, cluster.EventCordoned, "node-2", "node-2", ""), // before the start
		ev(time.Second, cluster.EventCordoned, "node-2", "node-2", ""),
		ev(time.Second, cluster.EventTainted, "node-2", "node-2", "haagent.io/dead:NoExecute"),
		ev(time.Second, cluster.EventTainted, "node-3", "node-3", "node.kubernetes.io/unreachable:NoSchedule"),
		ev(2*time.Second, cluster.EventFailoverRecord, "NodeFailover/haagent/node-2-x", "node-2", "created"),
		ev(2*time.Second, cluster.EventFailoverRecord, "NodeFailover/haagent/node-2-x", "node-2", "phase=Confirmed"),
		ev(3*time.Second, cluster.EventPodDeleting, "default/web-abc", "node-2", "EvictionByEvictionAPI"),
		ev(3*time.Second, cluster.EventPodDeleting, "default/db-0", "node-2", ""),
		ev(3*time.Second, cluster.EventPodDeleting, "kube-system/other", "node-2", ""), // not the workload
		ev(4*time.Second, cluster.EventCordoned, "node-4", "node-4", ""),               // failed on purpose
		ev(4*time.Second, cluster.EventNodeNotReady, "node-5", "node-5", "Unknown"),    // not an action
	}
	w := CountWrongActions(events, map[string]bool{"node-4": true})
	want := WrongActions{Cordons: 1, HaagentTaints: 1, KubernetesTaints: 1, Records: 1, Evictions: 2}
	if w.Cordons != want.Cordons || w.HaagentTaints != want.HaagentTaints || w.KubernetesTaints != want.KubernetesTaints ||
		w.Records != want.Records || w.Evictions != want.Evictions {
		t.Errorf("counted %+v, want %+v", w, want)
	}
	if w.Haagent() != 5 {
		t.Errorf("Haagent() = %d, want 5 (node lifecycle taints left out)", w.Haagent())
	}
	if len(w.Events) != 6 {
		t.Errorf("listed %d events, want 6: %v", len(w.Events), w.Events)
	}
}

func TestPhase_applies(t *testing.T) {
	for _, ph := range Phases() {
		if !ph.Applies(true) {
			t.Errorf("%s does not apply with agents", ph)
		}
		stockOnly := ph != DeadEverywhere && ph != Cordoned
		if ph.Applies(false) != stockOnly {
			t.Errorf("%s applies without agents: %v, want %v", ph, ph.Applies(false), stockOnly)
		}
	}
}
