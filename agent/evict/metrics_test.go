package evict

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haagent/haagent/internal/metricstest"
)

// TestMetrics_conventions lints the eviction metrics as promtool check
// metrics does.
func TestMetrics_conventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	metricstest.Check(t, reg)
}
