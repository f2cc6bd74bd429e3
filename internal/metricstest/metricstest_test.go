package metricstest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// recorder is a testing.TB that keeps the failures instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatal(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }

func TestCheck(t *testing.T) {
	reg := prometheus.NewRegistry()
	good := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "haagent_x_events_total", Help: "Events."}, []string{"kind", "node"})
	good.WithLabelValues("agent_down", "Node-1.Example")
	reg.MustRegister(good)
	r := &recorder{TB: t}
	Check(r, reg, "node")
	if len(r.errs) != 0 {
		t.Fatalf("good metrics: %v", r.errs)
	}

	bad := prometheus.NewRegistry()
	noTotal := prometheus.NewCounter(prometheus.CounterOpts{Name: "haagent_x_probeNode", Help: "haagent_x_probeNode"})
	ms := prometheus.NewGauge(prometheus.GaugeOpts{Name: "haagent_x_duration_milliseconds", Help: "A duration."})
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "memberlist_x", Help: "Other."})
	dashed := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "haagent_x_opinions", Help: "Opinions."}, []string{"opinion"})
	dashed.WithLabelValues("agent-down")
	bad.MustRegister(noTotal, ms, other, dashed)
	r = &recorder{TB: t}
	Check(r, bad)
	all := strings.Join(r.errs, "\n")
	for _, want := range []string{
		"haagent_x_probeNode: counter metrics should have \"_total\" suffix",
		"haagent_x_probeNode: metric names should be written in 'snake_case' not 'camelCase'",
		"haagent_x_duration_milliseconds: use base unit \"seconds\" instead of \"milliseconds\"",
		"memberlist_x: not under the haagent_ namespace",
		`haagent_x_probeNode: HELP "haagent_x_probeNode" says nothing`,
		`haagent_x_opinions{opinion="agent-down"}: label value not snake_case`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no failure %q in:\n%s", want, all)
		}
	}
}
