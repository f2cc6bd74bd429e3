package record

import (
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestStoreMetrics_labelValuesSnakeCase: the op label is update_status, not
// the error's "update status".
func TestStoreMetrics_labelValuesSnakeCase(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newStoreMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)
	for _, f := range families {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if !snake.MatchString(l.GetValue()) {
					t.Errorf("%s{%s=%q}: label value not snake_case", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	if n := testutil.CollectAndCount(m.requests); n != 30 {
		t.Errorf("%d request series started, want 30 (5 operations, 6 results)", n)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("update_status", resultOK)); got != 0 {
		t.Errorf("update_status series = %v, want 0", got)
	}
}
