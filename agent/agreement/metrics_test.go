package agreement

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/haagent/haagent/internal/metricstest"
)

// TestMetrics_conventions lints the agreement metrics as promtool check
// metrics does; the opinion label is agent_down, not the vote's
// agent-down.
func TestMetrics_conventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	metricstest.Check(t, reg)
	m.opinions.WithLabelValues("agent_down").Set(2)
	m.sent.WithLabelValues("agent_down").Inc()
	if n := testutil.CollectAndCount(m.opinions); n != 4 {
		t.Errorf("%d opinion series, want 4: agent_down is not one of the series started at zero", n)
	}
	if n := testutil.CollectAndCount(m.sent); n != 4 {
		t.Errorf("%d votes-sent series, want 4: agent_down is not one of the series started at zero", n)
	}
}
