package fence

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/haagent/haagent/internal/metricstest"
)

// TestMetrics_conventions lints the fence metrics as promtool check
// metrics does.
func TestMetrics_conventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	always := func() bool { return true }
	if _, err := New(DefaultConfig(), Signals{Majority: always, APIReachable: always}, clocktesting.NewFakeClock(time.Now()), zap.NewNop(), reg); err != nil {
		t.Fatal(err)
	}
	metricstest.Check(t, reg)
}
