// Package metricstest checks a component's metrics against haagent's
// conventions, for the components' tests: the lint that `promtool check
// metrics` runs (names, units, _total on counters, HELP), and label values
// that are snake_case. Tests register a component's metrics on a fresh
// registry and call Check.
package metricstest

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

var snake = regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)

// Check gathers reg and fails t for every lint problem, every metric not
// named haagent_*, and every label value that is not snake_case. Labels
// whose values haagent does not choose (node names, check names, API
// resources, versions) are named in free and not checked for spelling.
func Check(t testing.TB, reg prometheus.Gatherer, free ...string) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) == 0 {
		t.Fatal("metricstest: no metrics gathered")
	}
	problems, err := promlint.NewWithMetricFamilies(families).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "haagent_") {
			t.Errorf("%s: not under the haagent_ namespace", f.GetName())
		}
		if strings.TrimSpace(f.GetHelp()) == "" || f.GetHelp() == f.GetName() {
			t.Errorf("%s: HELP %q says nothing", f.GetName(), f.GetHelp())
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(free, l.GetName()) && !snake.MatchString(l.GetValue()) {
					t.Errorf("%s{%s=%q}: label value not snake_case", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}
