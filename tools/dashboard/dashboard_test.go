package dashboard

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Paths from the repository root, which is two levels above this package.
const (
	root          = "../.."
	dashboardPath = "charts/haagent/files/grafana-dashboard.json"
	metricsPath   = "docs/metrics.md"
)

// dsVariable is the data source variable every query must use, so that one
// import of the dashboard works with whichever Prometheus the user picks.
const dsVariable = "datasource"

// filterVariables are the template variables every selector of a panel or an
// annotation filters by, as label=~"$variable" with the label named like the
// variable.
var filterVariables = []string{"cluster", "namespace", "job", "instance"}

// allMatchesAbsent are the filter variables whose All value must also match
// a series without the label: many setups have no cluster label, and a
// Prometheus set up by hand may add no namespace.
var allMatchesAbsent = []string{"cluster", "namespace", "instance"}

// builtins are the Grafana variables a query may use, each with a value that
// is valid where Grafana puts it.
var builtins = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "30s",
	"__interval_ms":   "30000",
	"__range":         "3h",
	"__range_s":       "10800",
	"__range_ms":      "10800000",
}

// gridWidth is the width of a Grafana dashboard in grid units.
const gridWidth = 24

type dashboard struct {
	Annotations struct {
		List []annotation `json:"list"`
	} `json:"annotations"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	Panels  []panel  `json:"panels"` // of a row
	Targets []target `json:"targets"`
}

type target struct {
	Datasource json.RawMessage `json:"datasource"`
	Expr       string          `json:"expr"`
	RefID      string          `json:"refId"`
}

type annotation struct {
	Name       string          `json:"name"`
	BuiltIn    int             `json:"builtIn"`
	Datasource json.RawMessage `json:"datasource"`
	Expr       string          `json:"expr"`
	// Target holds the query in the layout of newer Grafana releases.
	Target *struct {
		Expr string `json:"expr"`
	} `json:"target"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource json.RawMessage `json:"datasource"`
	// Query is a string, or an object with the string in its query field.
	Query      json.RawMessage `json:"query"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   *string         `json:"allValue"`
}

// query is one PromQL expression of the dashboard and where it is.
type query struct {
	where string
	expr  string
	// filtered: its selectors must filter by every filter variable. A
	// template variable's query is not: it lists what the filters offer.
	filtered bool
}

// metricSet maps each documented metric to its type (gauge, counter,
// histogram, ...), as the second cell of its docs/metrics.md row says.
type metricSet map[string]string

// knows reports whether the series name belongs to a documented metric:
// the metric itself, `up`, or a _bucket, _sum or _count series of a metric
// not documented as a gauge or a counter.
func (m metricSet) knows(name string) bool {
	if name == "up" {
		return true
	}
	if _, ok := m[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if typ, ok := m[base]; ok && typ != "gauge" && typ != "counter" {
			return true
		}
	}
	return false
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	metrics := loadMetrics(t)
	problems := check(d, metrics)
	for _, p := range problems {
		t.Error(p)
	}
	qs, _ := queries(d)
	n := 0
	for _, p := range allPanels(d.Panels) {
		if p.Type != "row" {
			n++
		}
	}
	t.Logf("%s: %d panels, %d queries checked against %d metrics of %s", dashboardPath, n, len(qs), len(metrics), metricsPath)
	if n == 0 || len(qs) < n {
		t.Errorf("%s: %d panels and %d queries found; has the dashboard's layout changed?", dashboardPath, n, len(qs))
	}
}

// TestCheck_findsBrokenDashboards breaks the real dashboard in one way per
// case and expects check to name the fault.
func TestCheck_findsBrokenDashboards(t *testing.T) {
	const filters = `cluster=~"$cluster", namespace=~"$namespace", job=~"$job", instance=~"$instance"`
	metrics := loadMetrics(t)
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, d *dashboard)
		want   string
	}{
		{
			name:   "unknown metric",
			mutate: setExpr(`sum(rate(haagent_no_such_metric_total{` + filters + `}[$__rate_interval]))`),
			want:   `names metric haagent_no_such_metric_total, which ` + metricsPath + ` does not list`,
		},
		{
			name:   "bucket of a gauge",
			mutate: setExpr(`histogram_quantile(0.9, sum by (le) (rate(haagent_failover_active_bucket{` + filters + `}[5m])))`),
			want:   `names metric haagent_failover_active_bucket`,
		},
		{
			name:   "syntax error",
			mutate: setExpr(`sum(rate(haagent_failover_total{` + filters + `}[$__rate_interval])`),
			want:   `does not parse`,
		},
		{
			name:   "regex that does not compile",
			mutate: setExpr(`haagent_failover_total{outcome=~"(", ` + filters + `}`),
			want:   `does not parse`,
		},
		{
			name:   "hard-coded job",
			mutate: setExpr(`sum(haagent_failover_paused{job="haagent"})`),
			want:   `does not filter by cluster=~"$cluster"`,
		},
		{
			name:   "filter by the wrong variable",
			mutate: setExpr(`sum(haagent_failover_paused{cluster=~"$cluster", namespace=~"$cluster", job=~"$job", instance=~"$instance"})`),
			want:   `does not filter by namespace=~"$namespace"`,
		},
		{
			name:   "undefined variable",
			mutate: setExpr(`sum(haagent_failover_paused{node=~"$node", ` + filters + `})`),
			want:   `uses $node, which is neither a variable of the dashboard nor one of Grafana's`,
		},
		{
			name:   "selector without a metric name",
			mutate: setExpr(`sum({__name__=~"haagent_.+", ` + filters + `})`),
			want:   `names no metric`,
		},
		{
			name: "duplicate panel id",
			mutate: func(t *testing.T, d *dashboard) {
				ps := queryPanels(t, d, 2)
				ps[1].ID = ps[0].ID
			},
			want: `is used more than once`,
		},
		{
			name:   "panel without a title",
			mutate: func(t *testing.T, d *dashboard) { queryPanels(t, d, 1)[0].Title = " " },
			want:   `has no title`,
		},
		{
			name: "fixed data source",
			mutate: func(t *testing.T, d *dashboard) {
				queryPanels(t, d, 1)[0].Datasource = json.RawMessage(`{"type": "prometheus", "uid": "prometheus"}`)
			},
			want: `data source {"type": "prometheus", "uid": "prometheus"} is not the variable $datasource`,
		},
		{
			name: "panel without queries",
			mutate: func(t *testing.T, d *dashboard) {
				queryPanels(t, d, 1)[0].Targets = nil
			},
			want: `has no queries`,
		},
		{
			name: "overlapping panels",
			mutate: func(t *testing.T, d *dashboard) {
				ps := queryPanels(t, d, 2)
				ps[1].GridPos = ps[0].GridPos
			},
			want: `overlaps panel`,
		},
		{
			name: "annotation naming an unknown metric",
			mutate: func(t *testing.T, d *dashboard) {
				for i := range d.Annotations.List {
					if d.Annotations.List[i].BuiltIn == 0 {
						d.Annotations.List[i].Expr = `max(haagent_failover_gone{` + filters + `}) > 0`
						return
					}
				}
				t.Fatal("the dashboard has no annotation query")
			},
			want: `names metric haagent_failover_gone`,
		},
		{
			name: "variable query naming an unknown metric",
			mutate: func(t *testing.T, d *dashboard) {
				v := findVariable(t, d, "cluster")
				v.Query = json.RawMessage(`"label_values(haagent_buildinfo, cluster)"`)
			},
			want: `names metric haagent_buildinfo`,
		},
		{
			name: "cluster All value that needs the label",
			mutate: func(t *testing.T, d *dashboard) {
				v := findVariable(t, d, "cluster")
				all := ".+"
				v.AllValue = &all
			},
			want: `variable cluster: its All value ".+" does not match a series without the label`,
		},
		{
			name: "missing filter variable",
			mutate: func(t *testing.T, d *dashboard) {
				d.Templating.List = slices.DeleteFunc(d.Templating.List, func(v variable) bool { return v.Name == "instance" })
			},
			want: `has no template variable instance`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := loadDashboard(t)
			if problems := check(d, metrics); len(problems) != 0 {
				t.Fatalf("the dashboard has problems before it is broken: %q", problems)
			}
			tc.mutate(t, d)
			problems := check(d, metrics)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("problems = %q, want one containing %q", problems, tc.want)
			}
		})
	}
}

func TestMetricSet_knows(t *testing.T) {
	m := metricSet{"haagent_a_seconds": "histogram", "haagent_b": "gauge", "haagent_c_total": "counter"}
	for name, want := range map[string]bool{
		"up":                       true,
		"haagent_a_seconds":        true,
		"haagent_a_seconds_bucket": true,
		"haagent_a_seconds_sum":    true,
		"haagent_a_seconds_count":  true,
		"haagent_b":                true,
		"haagent_b_bucket":         false,
		"haagent_c_total":          true,
		"haagent_c_total_count":    false,
		"haagent_d":                false,
		"haagent_a":                false,
	} {
		if got := m.knows(name); got != want {
			t.Errorf("knows(%q) = %v, want %v", name, got, want)
		}
	}
}

// setExpr returns a change that puts expr in the first query of the first
// panel that has one.
func setExpr(expr string) func(*testing.T, *dashboard) {
	return func(t *testing.T, d *dashboard) {
		t.Helper()
		queryPanels(t, d, 1)[0].Targets[0].Expr = expr
	}
}

// queryPanels returns the first n panels with queries, to be changed in place.
func queryPanels(t *testing.T, d *dashboard, n int) []*panel {
	t.Helper()
	var out []*panel
	for i := range d.Panels {
		if p := &d.Panels[i]; len(p.Targets) > 0 && len(out) < n {
			out = append(out, p)
		}
	}
	if len(out) < n {
		t.Fatalf("the dashboard has %d top-level panels with queries, the test needs %d", len(out), n)
	}
	return out
}

func findVariable(t *testing.T, d *dashboard, name string) *variable {
	t.Helper()
	for i := range d.Templating.List {
		if d.Templating.List[i].Name == name {
			return &d.Templating.List[i]
		}
	}
	t.Fatalf("the dashboard has no variable %s", name)
	return nil
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, dashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return &d
}

// metricRow is a row of the metrics table: its first cell the metric name
// in backticks, its second the type.
var metricRow = regexp.MustCompile("^\\|\\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\\s*\\|([^|]*)\\|")

func loadMetrics(t *testing.T) metricSet {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, metricsPath))
	if err != nil {
		t.Fatal(err)
	}
	m := metricSet{}
	for line := range strings.Lines(string(data)) {
		if r := metricRow.FindStringSubmatch(strings.TrimSpace(line)); r != nil {
			m[r[1]] = strings.ToLower(strings.TrimSpace(r[2]))
		}
	}
	if len(m) == 0 {
		t.Fatalf("%s: no metric rows (| `name` | type | ...) found; has its layout changed?", metricsPath)
	}
	return m
}

// check returns the dashboard's problems, each a sentence naming where it
// is.
func check(d *dashboard, metrics metricSet) []string {
	var problems []string
	problems = append(problems, checkVariables(d)...)
	problems = append(problems, checkPanels(d)...)
	qs, qp := queries(d)
	problems = append(problems, qp...)
	defined := map[string]*variable{}
	for i, v := range d.Templating.List {
		defined[v.Name] = &d.Templating.List[i]
	}
	for _, q := range qs {
		problems = append(problems, checkQuery(q, defined, metrics)...)
	}
	return problems
}

func checkVariables(d *dashboard) []string {
	var problems []string
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars[dsVariable]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		problems = append(problems, fmt.Sprintf("has no template variable %s of type datasource for prometheus", dsVariable))
	}
	for _, name := range filterVariables {
		v, ok := vars[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("has no template variable %s", name))
			continue
		}
		if !v.IncludeAll {
			problems = append(problems, fmt.Sprintf("variable %s: has no All option", name))
		}
		if v.AllValue == nil {
			continue
		}
		// Prometheus anchors label regexes.
		re, err := regexp.Compile("^(?:" + *v.AllValue + ")$")
		if err != nil {
			problems = append(problems, fmt.Sprintf("variable %s: All value %q is not a regular expression: %v", name, *v.AllValue, err))
			continue
		}
		if slices.Contains(allMatchesAbsent, name) && !re.MatchString("") {
			problems = append(problems, fmt.Sprintf("variable %s: its All value %q does not match a series without the label", name, *v.AllValue))
		}
	}
	for _, name := range allMatchesAbsent {
		if v, ok := vars[name]; ok && v.AllValue == nil {
			problems = append(problems, fmt.Sprintf("variable %s: has no All value; it must match a series without the label (.*)", name))
		}
	}
	return problems
}

// allPanels returns the panels and the panels of rows, in order.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func checkPanels(d *dashboard) []string {
	var problems []string
	ids := map[int]int{}
	titles := map[string]int{}
	for _, p := range allPanels(d.Panels) {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			problems = append(problems, fmt.Sprintf("%s: id must be a positive number", name))
		}
		if ids[p.ID]++; ids[p.ID] == 2 {
			problems = append(problems, fmt.Sprintf("panel id %d is used more than once", p.ID))
		}
		if strings.TrimSpace(p.Title) == "" {
			problems = append(problems, fmt.Sprintf("%s has no title", name))
		} else if titles[p.Title]++; titles[p.Title] == 2 {
			problems = append(problems, fmt.Sprintf("panel title %q is used more than once", p.Title))
		}
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > gridWidth {
			problems = append(problems, fmt.Sprintf("%s: gridPos x=%d y=%d w=%d h=%d is not within the %d columns", name, g.X, g.Y, g.W, g.H, gridWidth))
		}
		if p.Type == "row" {
			continue
		}
		if !isDatasourceVariable(p.Datasource) {
			problems = append(problems, fmt.Sprintf("%s: data source %s is not the variable $%s", name, p.Datasource, dsVariable))
		}
		if len(p.Targets) == 0 {
			problems = append(problems, fmt.Sprintf("%s has no queries", name))
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				problems = append(problems, fmt.Sprintf("%s: query refId %q is empty or used twice", name, tg.RefID))
			}
			refs[tg.RefID] = true
			if len(tg.Datasource) > 0 && string(tg.Datasource) != "null" && !isDatasourceVariable(tg.Datasource) {
				problems = append(problems, fmt.Sprintf("%s query %s: data source %s is not the variable $%s", name, tg.RefID, tg.Datasource, dsVariable))
			}
		}
	}
	// The top-level panels (rows included) must not overlap: Grafana would
	// move one of them down, away from its row.
	top := d.Panels
	for i := range top {
		for j := range i {
			a, b := top[i].GridPos, top[j].GridPos
			if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
				problems = append(problems, fmt.Sprintf("panel %d %q overlaps panel %d %q", top[i].ID, top[i].Title, top[j].ID, top[j].Title))
			}
		}
	}
	return problems
}

// isDatasourceVariable reports whether a data source (an object with a uid,
// or a name) is the data source variable.
func isDatasourceVariable(raw json.RawMessage) bool {
	want := []string{"$" + dsVariable, "${" + dsVariable + "}"}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		return slices.Contains(want, name)
	}
	var ds struct {
		UID string `json:"uid"`
	}
	return json.Unmarshal(raw, &ds) == nil && slices.Contains(want, ds.UID)
}

// labelValues is a variable query label_values(selector, label) or
// label_values(label).
var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(?:(.*\S)\s*,\s*)?(\w+)\s*\)\s*$`)

// queries returns every PromQL expression of the dashboard, and the
// problems of queries that cannot be read.
func queries(d *dashboard) ([]query, []string) {
	var qs []query
	var problems []string
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			where := fmt.Sprintf("panel %d %q query %s", p.ID, p.Title, tg.RefID)
			if strings.TrimSpace(tg.Expr) == "" {
				problems = append(problems, where+" has no expression")
				continue
			}
			qs = append(qs, query{where: where, expr: tg.Expr, filtered: true})
		}
	}
	for _, a := range d.Annotations.List {
		if a.BuiltIn != 0 {
			continue
		}
		where := fmt.Sprintf("annotation %q", a.Name)
		if !isDatasourceVariable(a.Datasource) {
			problems = append(problems, fmt.Sprintf("%s: data source %s is not the variable $%s", where, a.Datasource, dsVariable))
		}
		expr := a.Expr
		if expr == "" && a.Target != nil {
			expr = a.Target.Expr
		}
		if strings.TrimSpace(expr) == "" {
			problems = append(problems, where+" has no expression")
			continue
		}
		qs = append(qs, query{where: where, expr: expr, filtered: true})
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		where := fmt.Sprintf("variable %s", v.Name)
		if !isDatasourceVariable(v.Datasource) {
			problems = append(problems, fmt.Sprintf("%s: data source %s is not the variable $%s", where, v.Datasource, dsVariable))
		}
		var text string
		if json.Unmarshal(v.Query, &text) != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				problems = append(problems, fmt.Sprintf("%s: query %s is neither a string nor an object with a query", where, v.Query))
				continue
			}
			text = obj.Query
		}
		if expr, ok := strings.CutPrefix(strings.TrimSpace(text), "query_result("); ok {
			qs = append(qs, query{where: where, expr: strings.TrimSuffix(expr, ")")})
			continue
		}
		m := labelValues.FindStringSubmatch(text)
		if m == nil {
			problems = append(problems, fmt.Sprintf("%s: query %q is not label_values(selector, label) or query_result(expr)", where, text))
			continue
		}
		if m[1] == "" {
			problems = append(problems, fmt.Sprintf("%s: query %q names no metric: it would list the label across all of Prometheus", where, text))
			continue
		}
		qs = append(qs, query{where: where, expr: m[1]})
	}
	return qs, problems
}

// variableRef matches a use of a Grafana variable: $name, ${name},
// ${name:format}, [[name]] or [[name:format]].
var variableRef = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)`)

// placeholder stands for a dashboard variable in a query, so that the
// parsed selectors tell which variable a matcher uses.
func placeholder(name string) string { return "__var_" + name + "__" }

// substitute replaces the variables of expr: Grafana's by a valid value,
// the dashboard's by value(variable). It returns the names that are
// neither.
func substitute(expr string, defined map[string]*variable, value func(*variable) string) (string, []string) {
	var unknown []string
	out := variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		if v, ok := builtins[name]; ok {
			return v
		}
		if v, ok := defined[name]; ok {
			return value(v)
		}
		unknown = append(unknown, name)
		return ref
	})
	return out, unknown
}

// allValue is what Grafana puts in a query for a variable set to All: its
// All value, or else the regex of its options, here two made-up ones.
func allValue(v *variable) string {
	if v.AllValue != nil {
		return *v.AllValue
	}
	return "(value_a|value_b)"
}

var promql = parser.NewParser(parser.Options{})

func checkQuery(q query, defined map[string]*variable, metrics metricSet) []string {
	// With the variables set to All: the query Grafana sends by default.
	// A regex that does not compile fails here.
	sent, unknown := substitute(q.expr, defined, allValue)
	if len(unknown) > 0 {
		var problems []string
		for _, name := range unknown {
			problems = append(problems, fmt.Sprintf("%s uses $%s, which is neither a variable of the dashboard nor one of Grafana's", q.where, name))
		}
		return problems
	}
	if _, err := promql.ParseExpr(sent); err != nil {
		return []string{fmt.Sprintf("%s does not parse: %v\n\t%s", q.where, err, sent)}
	}
	// With placeholders: the matchers then tell which variable they use.
	marked, _ := substitute(q.expr, defined, func(v *variable) string { return placeholder(v.Name) })
	expr, err := promql.ParseExpr(marked)
	if err != nil {
		return []string{fmt.Sprintf("%s does not parse with its variables as placeholders: %v\n\t%s", q.where, err, marked)}
	}
	var problems []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		switch {
		case name == "":
			problems = append(problems, fmt.Sprintf("%s: selector %s names no metric", q.where, vs))
		case !metrics.knows(name):
			problems = append(problems, fmt.Sprintf("%s names metric %s, which %s does not list", q.where, name, metricsPath))
		}
		if !q.filtered {
			return nil
		}
		for _, label := range filterVariables {
			if !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
				return m.Name == label && m.Type == labels.MatchRegexp && m.Value == placeholder(label)
			}) {
				problems = append(problems, fmt.Sprintf("%s: selector of %s does not filter by %s=~\"$%s\"", q.where, name, label, label))
			}
		}
		return nil
	})
	return problems
}
