package main

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

// SchemaVersion names the layout of the JSON results. Bump it on any change
// that a reader of an older file would misread.
const SchemaVersion = "haagent-bench/v2"

// Setup names, as in the JSON.
const (
	setupHaagent = "haagent"
	setupTuned   = "stock-tuned"
	setupDefault = "stock-default"
)

// Results is what benchmarks.json holds, and everything BENCHMARKS.md is
// made from.
type Results struct {
	Schema   string    `json:"schema"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Complete is true when every part ran and every required phase of
	// every crash was measured.
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
	// Command is the command line that produced the results.
	Command string `json:"command"`
	// Ground is what the nodes ran on: "hollow" (kubemark kubelets in
	// network namespaces, benchmarks-hollow.json), or "fake" or empty
	// (fake kubelets on loopback; older results have none).
	Ground string `json:"ground,omitempty"`
	// Commit is the checkout's commit (git describe), when known.
	Commit   string   `json:"commit,omitempty"`
	Machine  Machine  `json:"machine"`
	Versions Versions `json:"versions"`
	Settings Settings `json:"settings"`
	Sizes    []*Size  `json:"sizes"`
	Targets  []Target `json:"targets"`
	// APICost is what the agents cost the apiserver, per size (-api-cost,
	// -api-cost-sizes); see API-COST.md.
	APICost []*APICostSize `json:"apiCost,omitempty"`
	// Simulation is the simulator's JSON (-sim-json), as it is.
	Simulation json.RawMessage `json:"simulation,omitempty"`
	// SimulationMarkdown is the simulator's markdown (-sim-md), as it is.
	SimulationMarkdown string `json:"simulationMarkdown,omitempty"`
	// SimulationCalibration is the simulator's JSON of its N=20 run
	// (-sim-calibration-json), as it is: the report compares its detection
	// with the real 20-node cluster's.
	SimulationCalibration json.RawMessage `json:"simulationCalibration,omitempty"`
}

// Machine is where the benchmark ran, from /proc.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryMiB int    `json:"memoryMiB"`
	Kernel    string `json:"kernel"`
}

// Versions of what was measured.
type Versions struct {
	Go         string `json:"go"`
	Kubernetes string `json:"kubernetes"`
	Etcd       string `json:"etcd"`
	Haagent    string `json:"haagent"`
}

// Settings are the options of the run, as the report states them.
type Settings struct {
	Sizes            []int  `json:"sizes"`
	Crashes          int    `json:"crashes"`
	TunedCrashes     int    `json:"tunedCrashes"`
	StockCrashes     int    `json:"stockCrashes"`
	StockGap         string `json:"stockGap"`
	StockConcurrent  bool   `json:"stockConcurrent"`
	FailoverInterval string `json:"failoverInterval"`
	FenceBound       string `json:"fenceBound"`
	Stabilization    string `json:"stabilization"`
	GossipProfile    string `json:"gossipProfile"`
	Chaos            string `json:"chaos"`
	ChaosSettle      string `json:"chaosSettle"`
	CostWindow       string `json:"costWindow"`
	APICostWindow    string `json:"apiCostWindow,omitempty"`
	APICostSizes     []int  `json:"apiCostSizes,omitempty"`
	APICostOnly      bool   `json:"apiCostOnly,omitempty"`
	Seed             uint64 `json:"seed"`
	// StatefulEvery: the haagent cluster waited for its StatefulSet pod to
	// run elsewhere on every StatefulEvery-th crash (0 in older results:
	// on every crash).
	StatefulEvery int `json:"statefulEvery,omitempty"`
	// Beside is the command run in the first side window, if any.
	Beside string `json:"beside,omitempty"`
	// Percentiles says how they are computed.
	Percentiles string `json:"percentiles"`
}

// Size is everything measured at one cluster size.
type Size struct {
	Nodes  int      `json:"nodes"`
	Setups []*Setup `json:"setups"`
	// Gossip is the gossip profile, band and timings an agent of the
	// haagent cluster chose at start, as its metrics state them.
	Gossip string `json:"gossip,omitempty"`
	// Ratios per phase: a stock set-up's figure over haagent's.
	Ratios []Ratio                `json:"ratios"`
	Chaos  []scenario.ChaosResult `json:"chaos,omitempty"`
	Cost   *Cost                  `json:"cost,omitempty"`
}

// Setup is one cluster's crashes.
type Setup struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	AgentArgs   []string `json:"agentArgs,omitempty"`
	// Schedule says how the crashes followed each other.
	Schedule string `json:"schedule"`
	Crashes  []*Run `json:"crashes"`
	// Summary per phase, in seconds after the crash.
	Summary map[scenario.Phase]scenario.Stats `json:"summary"`
	// Unseen counts, per phase, the crashes that did not show it while
	// they were watched (the phase was not required there).
	Unseen map[scenario.Phase]int `json:"unseen,omitempty"`
}

// Run is one crash.
type Run struct {
	Victim string `json:"victim"`
	// Coordinator is true when the victim held haagent's coordinator Lease.
	Coordinator bool      `json:"coordinator,omitempty"`
	CrashedAt   time.Time `json:"crashedAt"`
	// Pods and StatefulPods were on the victim at the crash.
	Pods         []string `json:"pods"`
	StatefulPods []string `json:"statefulPods,omitempty"`
	// WatchedSeconds is how long after the crash its phases were watched.
	WatchedSeconds float64 `json:"watchedSeconds"`
	// Seconds from the crash to each phase seen.
	Seconds map[scenario.Phase]float64 `json:"seconds"`
	// Unwatched are phases this crash did not wait for: the node came back
	// before they were due (see Settings.StatefulEvery).
	Unwatched []scenario.Phase `json:"unwatched,omitempty"`
	// What haagent's NodeFailover record says (from the last time a peer
	// heard from the node, not from the crash).
	RecordTimeToDetect string `json:"recordTimeToDetect,omitempty"`
	RecordTimeToRepair string `json:"recordTimeToRepair,omitempty"`
	// HandBackSeconds is from the node's return to its record Completed.
	HandBackSeconds float64 `json:"handBackSeconds,omitempty"`
}

// Ratio compares a phase across set-ups: stock figure ÷ haagent figure.
// Zero means a figure is missing.
type Ratio struct {
	Phase      scenario.Phase `json:"phase"`
	TunedP50   float64        `json:"tunedOverHaagentP50,omitempty"`
	TunedP99   float64        `json:"tunedOverHaagentP99,omitempty"`
	DefaultP50 float64        `json:"defaultOverHaagentP50,omitempty"`
	DefaultP99 float64        `json:"defaultOverHaagentP99,omitempty"`
}

// Cost is what the agents used in a quiet window.
type Cost struct {
	WindowSeconds float64 `json:"windowSeconds"`
	// Over agents: the mean of their means and the largest of any.
	RSSMeanMiB    float64              `json:"rssMeanMiB"`
	RSSMaxMiB     float64              `json:"rssMaxMiB"`
	CPUMean       float64              `json:"cpuMean"`
	CPUMax        float64              `json:"cpuMax"`
	GossipMeanBps float64              `json:"gossipMeanBytesPerSecond"`
	GossipMaxBps  float64              `json:"gossipMaxBytesPerSecond"`
	Agents        []scenario.AgentCost `json:"agents"`
}

// Target is one of the goals of the tracker issue, judged on the results.
type Target struct {
	Name  string `json:"name"`
	Goal  string `json:"goal"`
	Value string `json:"value"`
	// Status: "met", "missed" or "not measured".
	Status string `json:"status"`
}

// setup returns the set-up of that name, nil if it did not run.
func (s *Size) setup(name string) *Setup {
	for _, st := range s.Setups {
		if st.Name == name {
			return st
		}
	}
	return nil
}

// summarize fills the Summary and Unseen of a set-up from its crashes.
func (s *Setup) summarize() {
	s.Summary = map[scenario.Phase]scenario.Stats{}
	s.Unseen = map[scenario.Phase]int{}
	for _, ph := range scenario.Phases() {
		var xs []float64
		n := 0 // crashes that waited for the phase and did not see it
		for _, r := range s.Crashes {
			if v, ok := r.Seconds[ph]; ok {
				xs = append(xs, v)
			} else if !slices.Contains(r.Unwatched, ph) {
				n++
			}
		}
		if len(xs) > 0 {
			s.Summary[ph] = scenario.Summarize(xs)
		}
		if n > 0 && ph.Applies(s.Name == setupHaagent) {
			s.Unseen[ph] = n
		}
	}
	if len(s.Unseen) == 0 {
		s.Unseen = nil
	}
}

// values returns the samples of a phase.
func (s *Setup) values(ph scenario.Phase) []float64 {
	if s == nil {
		return nil
	}
	var xs []float64
	for _, r := range s.Crashes {
		if v, ok := r.Seconds[ph]; ok {
			xs = append(xs, v)
		}
	}
	return xs
}

func (s *Setup) stats(ph scenario.Phase) (scenario.Stats, bool) {
	if s == nil {
		return scenario.Stats{}, false
	}
	st, ok := s.Summary[ph]
	return st, ok && st.N > 0
}

// ratios computes every phase's stock ÷ haagent figures.
func (s *Size) ratios() []Ratio {
	h := s.setup(setupHaagent)
	var out []Ratio
	for _, ph := range scenario.Phases() {
		hs, ok := h.stats(ph)
		if !ok || hs.P50 <= 0 {
			continue
		}
		r := Ratio{Phase: ph}
		if ts, ok := s.setup(setupTuned).stats(ph); ok {
			r.TunedP50, r.TunedP99 = ts.P50/hs.P50, ts.P99/hs.P99
		}
		if ds, ok := s.setup(setupDefault).stats(ph); ok {
			r.DefaultP50, r.DefaultP99 = ds.P50/hs.P50, ds.P99/hs.P99
		}
		if r.TunedP50 > 0 || r.DefaultP50 > 0 {
			out = append(out, r)
		}
	}
	return out
}

// summarizeCost fills the totals over agents.
func summarizeCost(window time.Duration, agents []scenario.AgentCost) *Cost {
	c := &Cost{WindowSeconds: window.Seconds(), Agents: agents}
	if len(agents) == 0 {
		return c
	}
	for _, a := range agents {
		bps := a.SentBytesPerSecond + a.ReceivedBytesPerSecond
		c.RSSMeanMiB += a.RSSMeanMiB / float64(len(agents))
		c.CPUMean += a.CPU / float64(len(agents))
		c.GossipMeanBps += bps / float64(len(agents))
		c.RSSMaxMiB = max(c.RSSMaxMiB, a.RSSMaxMiB)
		c.CPUMax = max(c.CPUMax, a.CPU)
		c.GossipMaxBps = max(c.GossipMaxBps, bps)
	}
	return c
}
