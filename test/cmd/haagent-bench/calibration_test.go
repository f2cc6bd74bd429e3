package main

import (
	"strings"
	"testing"

	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

func TestCalibration(t *testing.T) {
	const sim = `{"runs": [
		{"n": 20, "profile": "default", "loss": 0, "detection": {"all_survivors": {"count": 20, "p50": 6.8, "p90": 7.9}}},
		{"n": 20, "profile": "auto", "loss": 0.05, "detection": {"all_survivors": {"count": 20, "p50": 9, "p90": 9}}},
		{"n": 20, "profile": "auto", "loss": 0, "detection": {"all_survivors": {"count": 20, "p50": 1.55, "p90": 1.89}}}
	]}`
	results := func(realP50 float64, sim string) *Results {
		return &Results{
			Settings: Settings{GossipProfile: "auto"},
			Sizes: []*Size{
				{Nodes: 7, Setups: []*Setup{{Name: "haagent", Summary: map[scenario.Phase]scenario.Stats{scenario.DeadEverywhere: {N: 20, P50: 9, P90: 9}}}}},
				{Nodes: 20, Setups: []*Setup{
					{Name: "stock-tuned"},
					{Name: "haagent", Summary: map[scenario.Phase]scenario.Stats{scenario.DeadEverywhere: {N: 20, P50: realP50, P90: 1.78}}},
				}},
			},
			SimulationCalibration: []byte(sim),
		}
	}
	tests := []struct {
		name string
		res  *Results
		want []string
	}{
		{"agree", results(1.43, sim), []string{"p50 1.43 s, p90 1.78 s on the real control plane (20 crashes)", "p50 1.55 s, p90 1.89 s in the simulation (20 crashes)", "+8 %", "within the 20 % aimed at"}},
		{"disagree", results(1.0, sim), []string{"+55 %", "**outside the 20 % aimed at**"}},
		{"no matching run", results(1.43, `{"runs": [{"n": 100, "profile": "auto", "loss": 0, "detection": {}}]}`), []string{"no loss-free N=20 run of the auto profile"}},
		{"not JSON", results(1.43, `{"runs": 3}`), []string{"do not parse"}},
		{"no simulation", &Results{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := calibration(tc.res)
			if len(tc.want) == 0 && got != "" {
				t.Errorf("calibration() = %q, want nothing", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("calibration() = %q, want it to contain %q", got, w)
				}
			}
		})
	}
}
