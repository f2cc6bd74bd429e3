// Package docs holds the operator documentation. Its tests keep the
// documents honest against the code and the manifests: every alert links to
// a runbook section that exists, every link between the documents lands on a
// heading, and every flag, metric and Helm value the documents name exists.
package docs

import (
	"bufio"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"sigs.k8s.io/yaml"
)

// root is the repository root, seen from this package's directory.
const root = ".."

// documents are the files these tests check, relative to root.
var documents = []string{"docs/operations.md", "docs/runbooks.md", "docs/metrics.md", "docs/design.md", "docs/chaos-testing.md", "docs/configuration.md", "README.md"}

// ruleFiles are the PrometheusRule sources whose alerts need runbooks: the
// manifest, and the Helm chart's copy when the chart is there. The chart's
// file holds only the rule's spec.
var ruleFiles = []struct {
	path     string
	specOnly bool
	optional bool
}{
	{path: "deploy/monitoring/prometheusrule.yaml"},
	{path: "charts/haagent/files/prometheus-rules.yaml", specOnly: true, optional: true},
}

const runbookPrefix = "https://github.com/haagent/haagent/blob/main/docs/runbooks.md#"

type ruleSpec struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

func TestRunbooks_everyAlertLinksToItsSection(t *testing.T) {
	book := readDoc(t, "docs/runbooks.md")
	sections := map[string]string{} // anchor -> heading text, for level-2 headings
	for _, h := range book.headings {
		if h.level == 2 {
			sections[h.anchor] = h.text
		}
	}
	alerts := map[string]bool{}
	for _, rf := range ruleFiles {
		data, err := os.ReadFile(filepath.Join(root, rf.path))
		if os.IsNotExist(err) && rf.optional {
			t.Logf("%s: not present, skipped", rf.path)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var spec ruleSpec
		if rf.specOnly {
			err = yaml.Unmarshal(data, &spec)
		} else {
			var doc struct {
				Spec ruleSpec `json:"spec"`
			}
			err = yaml.Unmarshal(data, &doc)
			spec = doc.Spec
		}
		if err != nil {
			t.Fatalf("%s: %v", rf.path, err)
		}
		n := 0
		for _, g := range spec.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue // a recording rule
				}
				n++
				alerts[r.Alert] = true
				url := r.Annotations["runbook_url"]
				frag, ok := strings.CutPrefix(url, runbookPrefix)
				switch {
				case url == "":
					t.Errorf("%s: alert %s has no runbook_url annotation", rf.path, r.Alert)
				case !ok:
					t.Errorf("%s: alert %s: runbook_url %q does not start with %q", rf.path, r.Alert, url, runbookPrefix)
				case sections[frag] == "":
					t.Errorf("%s: alert %s: runbook_url fragment #%s is not a section of docs/runbooks.md", rf.path, r.Alert, frag)
				case sections[frag] != r.Alert:
					t.Errorf("%s: alert %s: runbook_url #%s leads to the section of %q", rf.path, r.Alert, frag, sections[frag])
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no alerts found; has the file's layout changed?", rf.path)
		}
	}
	// No section for an alert that no longer exists, and every section
	// answers the same four questions.
	for _, h := range book.headings {
		if h.level != 2 {
			continue
		}
		if !alerts[h.text] {
			t.Errorf("docs/runbooks.md: section %q is not an alert of the PrometheusRule", h.text)
		}
		body := book.section(h)
		for _, part := range []string{"**Meaning.**", "**Impact.**", "**How to check.**", "**What to do.**"} {
			if !strings.Contains(body, part) {
				t.Errorf("docs/runbooks.md: section %s lacks %s", h.text, part)
			}
		}
	}
}

// promtoolTests are the promtool unit tests of the rules file, relative to
// root (make rules-check runs them).
const promtoolTests = "test/prometheus/*_test.yaml"

// TestRules_everyAlertIsTested: every alert of the chart's rules file has a
// for: (a blip pages nobody), a severity of the fixed set, and promtool
// unit tests that see it fire and then see it resolved; a new alert without
// them fails here. The tests themselves run with promtool (make
// rules-check).
func TestRules_everyAlertIsTested(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "charts/haagent/files/prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var spec ruleSpec
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatalf("charts/haagent/files/prometheus-rules.yaml: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(root, promtoolTests))
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool tests %s (%v)", promtoolTests, err)
	}
	// The alerts some test expects firing, those some test expects not
	// firing, and those a test expects firing and, later in the same test,
	// resolved.
	firing, quiet, resolved := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var suite struct {
			RuleFiles []string `json:"rule_files"`
			Tests     []struct {
				Name          string `json:"name"`
				AlertRuleTest []struct {
					EvalTime  string            `json:"eval_time"`
					Alertname string            `json:"alertname"`
					ExpAlerts []json.RawMessage `json:"exp_alerts"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		if err := yaml.Unmarshal(raw, &suite); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name, _ := filepath.Rel(root, f)
		if !slices.Contains(suite.RuleFiles, "../../charts/haagent/files/prometheus-rules.yaml") {
			t.Errorf("%s: rule_files %v does not load the chart's rules file", name, suite.RuleFiles)
		}
		for _, tc := range suite.Tests {
			firstFired := map[string]time.Duration{}
			lastQuiet := map[string]time.Duration{}
			for _, a := range tc.AlertRuleTest {
				// Prometheus durations, in the subset Go reads (no d, w, y).
				at, err := time.ParseDuration(a.EvalTime)
				if err != nil {
					t.Errorf("%s: test %q: eval_time %q: %v", name, tc.Name, a.EvalTime, err)
					continue
				}
				if len(a.ExpAlerts) > 0 {
					firing[a.Alertname] = true
					if t0, ok := firstFired[a.Alertname]; !ok || at < t0 {
						firstFired[a.Alertname] = at
					}
				} else {
					quiet[a.Alertname] = true
					lastQuiet[a.Alertname] = max(lastQuiet[a.Alertname], at)
				}
			}
			for a, t0 := range firstFired {
				if lastQuiet[a] > t0 {
					resolved[a] = true
				}
			}
		}
	}
	alerts := map[string]bool{}
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if d, err := time.ParseDuration(r.For); err != nil || d <= 0 {
				t.Errorf("alert %s: for: %q, want a duration above 0", r.Alert, r.For)
			}
			if sev := r.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, sev) {
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, sev)
			}
			switch {
			case !firing[r.Alert]:
				t.Errorf("alert %s: no test in %s expects it to fire", r.Alert, promtoolTests)
			case !resolved[r.Alert]:
				t.Errorf("alert %s: no test in %s expects it resolved after it fired", r.Alert, promtoolTests)
			}
		}
	}
	for a := range firing {
		if !alerts[a] {
			t.Errorf("%s: tests alert %s, which the rules file does not have", promtoolTests, a)
		}
	}
	for a := range quiet {
		if !alerts[a] {
			t.Errorf("%s: tests alert %s, which the rules file does not have", promtoolTests, a)
		}
	}
}

func TestDocs_linksLandOnHeadings(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, name := range documents {
		d := readDoc(t, name)
		for _, m := range link.FindAllStringSubmatch(d.prose(), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			path := name
			if file != "" {
				path = filepath.ToSlash(filepath.Join(filepath.Dir(name), file))
			}
			if _, err := os.Stat(filepath.Join(root, path)); err != nil {
				t.Errorf("%s: link %q: %v", name, target, err)
				continue
			}
			if frag == "" {
				continue
			}
			if !strings.HasSuffix(path, ".md") || !slices.Contains(readDoc(t, path).anchors(), frag) {
				t.Errorf("%s: link %q: no heading of %s has the anchor #%s", name, target, path, frag)
			}
		}
	}
}

func TestDocs_flagsExist(t *testing.T) {
	flags := registeredFlags(t)
	for _, want := range []string{"gossip-profile", "fence-action", "max-dead-fraction", "join", "fence-command", "since", "agent", "context"} {
		if !flags[want] {
			t.Fatalf("flag --%s not found in the sources: the flag scanner is broken (found %d flags)", want, len(flags))
		}
	}
	// `--flag` or `--flag=value` alone, and any --flag inside a `haagent ...`
	// command line.
	alone := regexp.MustCompile(`^--([a-z0-9][a-z0-9-]*)(=.*)?$`)
	inCommand := regexp.MustCompile(`(?:^|\s|\[)--([a-z0-9][a-z0-9-]*)`)
	for _, name := range documents {
		d := readDoc(t, name)
		seen := 0
		for _, span := range d.codeSpans() {
			var names []string
			if m := alone.FindStringSubmatch(span); m != nil {
				names = append(names, m[1])
			} else if strings.HasPrefix(span, "haagent ") {
				for _, m := range inCommand.FindAllStringSubmatch(span, -1) {
					names = append(names, m[1])
				}
			}
			for _, f := range names {
				seen++
				if !flags[f] {
					t.Errorf("%s: names flag --%s, which haagent does not have", name, f)
				}
			}
		}
		t.Logf("%s: %d flag mentions checked", name, seen)
	}
}

func TestDocs_metricsExist(t *testing.T) {
	metrics := definedMetrics(t)
	for _, want := range []string{"haagent_failover_paused", "haagent_gossip_members", "haagent_build_info"} {
		if !metrics[want] {
			t.Fatalf("metric %s not found in the sources: the metric scanner is broken (found %d)", want, len(metrics))
		}
	}
	mention := regexp.MustCompile(`haagent_[a-z0-9_]*\*|haagent_[a-z0-9_]*[a-z0-9]`)
	for _, name := range documents {
		d := readDoc(t, name)
		for _, m := range mention.FindAllString(d.text, -1) {
			if !metricKnown(metrics, m) {
				t.Errorf("%s: names metric %s, which the code does not define", name, m)
			}
		}
	}
}

// TestMetrics_everyMetricDocumented: docs/metrics.md has one table row per
// metric, its name in backticks in the first cell (a prefix written
// name_* for the raw memberlist metrics); every metric the sources define
// has its row, and every row names a metric they define.
func TestMetrics_everyMetricDocumented(t *testing.T) {
	defined := definedMetrics(t)
	d := readDoc(t, "docs/metrics.md")
	row := regexp.MustCompile("^\\| `(haagent_[a-z0-9_]*\\*?)` \\|")
	rows := map[string]bool{}
	for _, line := range strings.Split(d.text, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if rows[m[1]] {
			t.Errorf("docs/metrics.md: two rows for %s", m[1])
		}
		rows[m[1]] = true
		if cells := strings.Count(line, "|") - 1; cells != 5 {
			t.Errorf("docs/metrics.md: row %s has %d cells, want 5 (metric, type, labels, meaning, exported by)", m[1], cells)
		}
		if !metricKnown(defined, m[1]) {
			t.Errorf("docs/metrics.md: row %s names a metric the code does not define", m[1])
		}
	}
	if len(rows) == 0 {
		t.Fatal("docs/metrics.md: no metric rows found; has the table's layout changed?")
	}
	for name := range defined {
		// A sink prefix (a Name of its own, no Namespace) is documented as
		// name_*.
		if !rows[name] && !rows[name+"_*"] {
			t.Errorf("metric %s is not in the table of docs/metrics.md", name)
		}
	}
}

func TestDocs_helmValuesExist(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "charts/haagent/values.yaml"))
	if os.IsNotExist(err) {
		t.Skip("charts/haagent/values.yaml is not there")
	}
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatalf("charts/haagent/values.yaml: %v", err)
	}
	key := regexp.MustCompile(`^[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)*$`)
	for _, name := range documents {
		d := readDoc(t, name)
		for _, span := range d.codeSpans() {
			if !key.MatchString(span) || hasFileExtension(span) {
				continue
			}
			// Only spans that start with a top-level key are values.
			path := strings.Split(span, ".")
			if _, top := values[path[0]]; top && !hasKeyPath(values, path) {
				t.Errorf("%s: names Helm value %s, which charts/haagent/values.yaml does not have", name, span)
			}
		}
	}
}

func TestAnchor(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"HAAgentMemberDead", "haagentmemberdead"},
		{"Choosing a gossip profile", "choosing-a-gossip-profile"},
		{"Opting a node out: maintenance", "opting-a-node-out-maintenance"},
		{"Remove what haagent left on nodes", "remove-what-haagent-left-on-nodes"},
		{"kubectl and kustomize", "kubectl-and-kustomize"},
		{"The `fast` profile, in 2.0", "the-fast-profile-in-20"},
		{"snake_case and dash-case", "snake_case-and-dash-case"},
	} {
		t.Run(tc.heading, func(t *testing.T) {
			if got := anchor(tc.heading); got != tc.want {
				t.Errorf("anchor(%q) = %q, want %q", tc.heading, got, tc.want)
			}
		})
	}
}

// anchor is the fragment GitHub gives a heading: lower case, spaces to
// hyphens, and every character that is not a letter, digit, hyphen,
// underscore or space dropped.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

type heading struct {
	level  int
	text   string
	anchor string
	line   int
}

type doc struct {
	name     string
	text     string
	lines    []string
	fenced   []bool // lines inside ``` blocks, fences included
	headings []heading
}

func readDoc(t *testing.T, name string) *doc {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	d := &doc{name: name, text: string(data)}
	sc := bufio.NewScanner(strings.NewReader(d.text))
	inFence := false
	used := map[string]int{}
	for i := 0; sc.Scan(); i++ {
		line := sc.Text()
		d.lines = append(d.lines, line)
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			d.fenced = append(d.fenced, true)
			continue
		}
		d.fenced = append(d.fenced, inFence)
		if inFence {
			continue
		}
		level := len(line) - len(strings.TrimLeft(line, "#"))
		if level == 0 || level > 6 || !strings.HasPrefix(line[level:], " ") {
			continue
		}
		text := strings.TrimSpace(line[level:])
		a := anchor(text)
		if n := used[a]; n > 0 {
			used[a] = n + 1
			a += "-" + strconv.Itoa(n)
		} else {
			used[a] = 1
		}
		d.headings = append(d.headings, heading{level: level, text: text, anchor: a, line: i})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if inFence {
		t.Fatalf("%s: a ``` block is not closed", name)
	}
	return d
}

func (d *doc) anchors() []string {
	out := make([]string, len(d.headings))
	for i, h := range d.headings {
		out[i] = h.anchor
	}
	return out
}

// section returns the lines after h up to the next heading of the same or a
// higher level.
func (d *doc) section(h heading) string {
	end := len(d.lines)
	for _, o := range d.headings {
		if o.line > h.line && o.level <= h.level {
			end = o.line
			break
		}
	}
	return strings.Join(d.lines[h.line+1:end], "\n")
}

// prose is the text outside ``` blocks.
func (d *doc) prose() string {
	var b strings.Builder
	for i, l := range d.lines {
		if !d.fenced[i] {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// codeSpans returns the contents of the `inline code` spans of the prose.
// Paragraphs are joined first, since a span may wrap.
func (d *doc) codeSpans() []string {
	var out []string
	for _, para := range strings.Split(d.prose(), "\n\n") {
		parts := strings.Split(strings.ReplaceAll(para, "\n", " "), "`")
		for i := 1; i < len(parts); i += 2 {
			out = append(out, strings.TrimSpace(parts[i]))
		}
	}
	return out
}

func hasFileExtension(s string) bool {
	for _, ext := range []string{".yaml", ".yml", ".json", ".md", ".go", ".txt", ".sh"} {
		if strings.HasSuffix(s, ext) {
			return true
		}
	}
	return false
}

func hasKeyPath(values map[string]any, path []string) bool {
	var cur any = values
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[p]; !ok {
			return false
		}
	}
	return true
}

// goSources parses the non-test Go files of the main module's binary and
// packages.
func goSources(t *testing.T) map[string][]*ast.File {
	t.Helper()
	fset := token.NewFileSet()
	pkgs := map[string][]*ast.File{} // by directory
	for _, dir := range []string{"cmd", "agent", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			pkgs[filepath.Dir(path)] = append(pkgs[filepath.Dir(path)], f)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return pkgs
}

// registeredFlags finds the names of the flags registered on a
// *flag.FlagSet or *pflag.FlagSet (a parameter or a NewFlagSet result) or
// on either package itself.
func registeredFlags(t *testing.T) map[string]bool {
	t.Helper()
	nameArg := map[string]int{
		"Bool": 0, "Int": 0, "Int64": 0, "Uint": 0, "Uint64": 0, "String": 0, "Float64": 0, "Duration": 0, "Func": 0, "BoolFunc": 0,
		"BoolVar": 1, "IntVar": 1, "Int64Var": 1, "UintVar": 1, "Uint64Var": 1, "StringVar": 1, "Float64Var": 1, "DurationVar": 1, "TextVar": 1, "Var": 1,
		// pflag's forms with a shorthand.
		"BoolP": 0, "IntP": 0, "StringP": 0, "DurationP": 0, "StringSliceP": 0,
		"BoolVarP": 1, "IntVarP": 1, "StringVarP": 1, "DurationVarP": 1, "StringSliceVarP": 1, "VarP": 1, "StringSlice": 0, "StringSliceVar": 1,
	}
	flags := map[string]bool{}
	for _, files := range goSources(t) {
		for _, f := range files {
			flagPkgs := map[string]bool{}
			for _, path := range []string{"flag", "github.com/spf13/pflag"} {
				if name := importName(f, path); name != "" {
					flagPkgs[name] = true
				}
			}
			if len(flagPkgs) == 0 {
				continue
			}
			isPkg := func(e ast.Expr) bool {
				id, ok := e.(*ast.Ident)
				return ok && flagPkgs[id.Name]
			}
			isFlagSet := func(e ast.Expr) bool {
				star, ok := e.(*ast.StarExpr)
				if !ok {
					return false
				}
				sel, ok := star.X.(*ast.SelectorExpr)
				return ok && sel.Sel.Name == "FlagSet" && isPkg(sel.X)
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				sets := map[string]bool{}
				for _, p := range fn.Type.Params.List {
					if isFlagSet(p.Type) {
						for _, n := range p.Names {
							sets[n.Name] = true
						}
					}
				}
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					as, ok := n.(*ast.AssignStmt)
					if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
						return true
					}
					if call, ok := as.Rhs[0].(*ast.CallExpr); ok {
						if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewFlagSet" && isPkg(sel.X) {
							if id, ok := as.Lhs[0].(*ast.Ident); ok {
								sets[id.Name] = true
							}
						}
					}
					return true
				})
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					i, known := nameArg[sel.Sel.Name]
					recv, isID := sel.X.(*ast.Ident)
					if !known || !isID || !(sets[recv.Name] || flagPkgs[recv.Name]) || len(call.Args) <= i {
						return true
					}
					if s, ok := stringLit(call.Args[i]); ok {
						flags[s] = true
					}
					return true
				})
			}
		}
	}
	return flags
}

// definedMetrics finds the metric names of the Prometheus option structs
// (prometheus.GaugeOpts{Namespace: ..., Subsystem: ..., Name: ...} and the
// like), resolving string constants of the same file or package. A struct
// with a Name of its own starting with haagent_ and no Namespace (the
// memberlist metrics sink) names a prefix: its metrics are Name_*.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	metrics := map[string]bool{}
	for _, files := range goSources(t) {
		pkgConsts := map[string]string{}
		fileConsts := make([]map[string]string, len(files))
		for i, f := range files {
			fileConsts[i] = stringConsts(f)
			for k, v := range fileConsts[i] {
				pkgConsts[k] = v
			}
		}
		for i, f := range files {
			resolve := func(e ast.Expr) (string, bool) {
				if s, ok := stringLit(e); ok {
					return s, true
				}
				if id, ok := e.(*ast.Ident); ok {
					if v, ok := fileConsts[i][id.Name]; ok {
						return v, true
					}
					v, ok := pkgConsts[id.Name]
					return v, ok
				}
				return "", false
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.CompositeLit)
				if !ok || !strings.HasSuffix(typeName(lit.Type), "Opts") {
					return true
				}
				parts := map[string]string{}
				for _, el := range lit.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					k, ok := kv.Key.(*ast.Ident)
					if !ok {
						continue
					}
					if v, ok := resolve(kv.Value); ok {
						parts[k.Name] = v
					}
				}
				name := parts["Name"]
				if name == "" {
					return true
				}
				var fq []string
				for _, p := range []string{parts["Namespace"], parts["Subsystem"], name} {
					if p != "" {
						fq = append(fq, p)
					}
				}
				if full := strings.Join(fq, "_"); strings.HasPrefix(full, "haagent_") {
					metrics[full] = true
				}
				return true
			})
		}
	}
	return metrics
}

// metricKnown accepts a defined metric, one of a histogram's series, or a
// prefix written name_* that some defined metric (or sink prefix) has.
func metricKnown(metrics map[string]bool, m string) bool {
	if prefix, ok := strings.CutSuffix(m, "*"); ok {
		for k := range metrics {
			if strings.HasPrefix(k, prefix) || k+"_" == prefix {
				return true
			}
		}
		return false
	}
	if metrics[m] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(m, suffix); ok && metrics[base] {
			return true
		}
	}
	return false
}

func stringConsts(f *ast.File) map[string]string {
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		gd, ok := n.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			return true
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for j, id := range vs.Names {
				if j < len(vs.Values) {
					if s, ok := stringLit(vs.Values[j]); ok {
						out[id.Name] = s
					}
				}
			}
		}
		return true
	})
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func typeName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return x.Sel.Name
	}
	return ""
}

// importName is the name under which f imports path, or "".
func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == path {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return filepath.Base(path)
		}
	}
	return ""
}
