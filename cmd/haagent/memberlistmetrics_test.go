package main

import (
	"strings"
	"testing"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// TestExportMemberlistMetrics: memberlist's figures arrive as
// haagent_gossip_* metrics in seconds; the raw haagent_memberlist_* ones
// only with --memberlist-raw-metrics.
func TestExportMemberlistMetrics(t *testing.T) {
	t.Cleanup(func() { _, _ = gometrics.NewGlobal(gometrics.DefaultConfig(""), &gometrics.BlackholeSink{}) })
	for _, raw := range []bool{false, true} {
		reg := prometheus.NewRegistry()
		if err := exportMemberlistMetrics(reg, raw); err != nil {
			t.Fatal(err)
		}
		// As memberlist reports a probe of 250 ms (go-metrics timers are in
		// milliseconds).
		gometrics.AddSample([]string{"memberlist", "probeNode"}, 250)
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		rawSeen := false
		for _, f := range families {
			if f.GetName() == "haagent_gossip_probe_duration_seconds" {
				sum = f.GetMetric()[0].GetHistogram().GetSampleSum()
			}
			if strings.HasPrefix(f.GetName(), "haagent_memberlist_") {
				rawSeen = true
			}
		}
		if sum != 0.25 {
			t.Errorf("raw=%v: haagent_gossip_probe_duration_seconds sum = %v, want 0.25", raw, sum)
		}
		if rawSeen != raw {
			t.Errorf("raw=%v: haagent_memberlist_* exported: %v", raw, rawSeen)
		}
	}
}
