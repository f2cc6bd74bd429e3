package main

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

// calibrationSize is the cluster size the simulation is calibrated at.
const calibrationSize = 20

// calibrationTolerance is how far apart the simulated and the real
// detection medians may be for the simulation to count as calibrated.
const calibrationTolerance = 0.20

// simRun is what calibration reads of one run in the simulator's JSON.
type simRun struct {
	N         int     `json:"n"`
	Profile   string  `json:"profile"`
	Loss      float64 `json:"loss"`
	Detection map[string]struct {
		Count int     `json:"count"`
		P50   float64 `json:"p50"`
		P90   float64 `json:"p90"`
	} `json:"detection"`
}

// calibration compares the median time until every survivor saw a crashed
// node dead, on the real 20-node haagent cluster and in the simulation of
// 20 members with the same gossip profile. Empty when either is missing.
func calibration(res *Results) string {
	if len(res.SimulationCalibration) == 0 {
		return ""
	}
	var sim struct {
		Runs []simRun `json:"runs"`
	}
	if err := json.Unmarshal(res.SimulationCalibration, &sim); err != nil {
		return fmt.Sprintf("Calibration: the simulator's N=%d results do not parse: %v.", calibrationSize, err)
	}
	var real scenario.Stats
	for _, sz := range res.Sizes {
		if sz.Nodes != calibrationSize {
			continue
		}
		for _, st := range sz.Setups {
			if st.Name == "haagent" {
				real = st.Summary[scenario.DeadEverywhere]
			}
		}
	}
	if real.N == 0 {
		return ""
	}
	profile := res.Settings.GossipProfile
	for _, r := range sim.Runs {
		d, ok := r.Detection["all_survivors"]
		if r.N != calibrationSize || r.Profile != profile || r.Loss != 0 || !ok || d.Count == 0 {
			continue
		}
		diff := d.P50/real.P50 - 1
		verdict := fmt.Sprintf("within the %.0f %% aimed at", calibrationTolerance*100)
		if math.Abs(diff) > calibrationTolerance {
			verdict = fmt.Sprintf("**outside the %.0f %% aimed at**", calibrationTolerance*100)
		}
		return fmt.Sprintf("**Calibration at N=%d** (gossip profile %s): a crashed node dead on every survivor after p50 %.2f s, p90 %.2f s on the real control plane (%d crashes) and p50 %.2f s, p90 %.2f s in the simulation (%d crashes): the simulated median differs from the real one by %+.0f %%, %s.",
			calibrationSize, profile, real.P50, real.P90, real.N, d.P50, d.P90, d.Count, diff*100, verdict)
	}
	return fmt.Sprintf("Calibration: the simulator's results hold no loss-free N=%d run of the %s profile to compare with.", calibrationSize, profile)
}
