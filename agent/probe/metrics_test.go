package probe

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haagent/haagent/internal/metricstest"
)

// TestMetrics_conventions lints the check metrics as promtool check
// metrics does. The check label takes the configured names.
func TestMetrics_conventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newRunnerMetrics(reg, []Check{{Name: "kubelet"}, {Name: "my-disk"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := newPeerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	metricstest.Check(t, reg, "check")
}
