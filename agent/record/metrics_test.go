package record

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/haagent/haagent/internal/metricstest"
)

// TestStoreMetrics_conventions lints the record metrics as promtool check
// metrics does; the op label is update_status, not the error's "update
// status".
func TestStoreMetrics_conventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newStoreMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	metricstest.Check(t, reg)
	m.requests.WithLabelValues("update_status", resultOK).Inc()
	if n := testutil.CollectAndCount(m.requests); n != 30 {
		t.Errorf("%d request series, want 30 (5 operations, 6 results): update_status is not one of those started at zero", n)
	}
}
