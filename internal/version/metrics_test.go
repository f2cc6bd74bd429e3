package version

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haagent/haagent/internal/metricstest"
)

// TestCollector_conventions lints haagent_build_info as promtool check
// metrics does. Its labels carry build strings, not haagent's values.
func TestCollector_conventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector())
	metricstest.Check(t, reg, "version", "revision", "goversion")
}
