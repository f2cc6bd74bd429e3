package agreement

import (
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetrics_labelValuesSnakeCase: the opinion label is agent_down, not
// the vote's agent-down.
func TestMetrics_labelValuesSnakeCase(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)
	agentDown := 0
	for _, f := range families {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if !snake.MatchString(l.GetValue()) {
					t.Errorf("%s{%s=%q}: label value not snake_case", f.GetName(), l.GetName(), l.GetValue())
				}
				if l.GetName() == "opinion" && l.GetValue() == "agent_down" {
					agentDown++
				}
			}
		}
	}
	if agentDown != 2 {
		t.Errorf("%d series with opinion=agent_down, want 2 (opinions and votes_sent_total)", agentDown)
	}
}
