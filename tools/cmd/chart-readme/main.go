// Command chart-readme keeps the generated parts of a Helm chart's README.md
// in step with the chart: the chart's facts (version, appVersion,
// kubeVersion) from Chart.yaml and the table of values from the comments of
// values.yaml. hack/manifests.sh runs it (make manifests), and with -check
// (make manifests-check) fails when the README is stale.
//
//	chart-readme [-check] CHART_DIR
//
// The README is written by hand except between marker lines:
//
//	<!-- chart-readme:chart:begin -->  ...  <!-- chart-readme:chart:end -->
//	<!-- chart-readme:values:begin --> ...  <!-- chart-readme:values:end -->
//
// whose content is replaced. Each value's documentation is the comment just
// above its key in values.yaml. A mapping whose keys have comments of their
// own is documented key by key (and its own comment, if any, is a row of
// its own); any other value (a scalar, a list, a mapping passed through
// whole like resources) is one row with its default. A value without a
// comment is an error: values.yaml is the chart's documentation.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chart-readme:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("chart-readme", flag.ContinueOnError)
	check := fs.Bool("check", false, "change nothing; fail when README.md is not what it would be written as")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: chart-readme [-check] CHART_DIR")
	}
	dir := fs.Arg(0)
	readme := filepath.Join(dir, "README.md")
	cur, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	chart, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return err
	}
	want, err := Generate(cur, chart, values)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if bytes.Equal(cur, want) {
		if *check {
			fmt.Fprintf(stdout, "chart-readme: %s is up to date\n", readme)
		}
		return nil
	}
	if *check {
		return fmt.Errorf("%s differs from what Chart.yaml and values.yaml make of it: run make manifests", readme)
	}
	if err := os.WriteFile(readme, want, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "chart-readme: wrote %s\n", readme)
	return nil
}

// Generate returns readme with its generated blocks made anew from the
// chart's Chart.yaml and values.yaml.
func Generate(readme, chartYAML, valuesYAML []byte) ([]byte, error) {
	facts, err := chartFacts(chartYAML)
	if err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	rows, err := valueRows(valuesYAML)
	if err != nil {
		return nil, fmt.Errorf("values.yaml: %w", err)
	}
	out, err := replaceBlock(readme, "chart", facts)
	if err != nil {
		return nil, err
	}
	return replaceBlock(out, "values", table(rows))
}

// replaceBlock replaces the lines between the begin and end markers of
// block name with content.
func replaceBlock(readme []byte, name, content string) ([]byte, error) {
	begin := "<!-- chart-readme:" + name + ":begin -->\n"
	end := "<!-- chart-readme:" + name + ":end -->"
	s := string(readme)
	i := strings.Index(s, begin)
	j := strings.Index(s, end)
	if i < 0 || j < i {
		return nil, fmt.Errorf("README.md has no %q line followed by a %q line", strings.TrimSpace(begin), end)
	}
	if strings.Count(s, begin) > 1 || strings.Count(s, end) > 1 {
		return nil, fmt.Errorf("README.md has the markers of block %s more than once", name)
	}
	return []byte(s[:i+len(begin)] + content + s[j:]), nil
}

func chartFacts(data []byte) (string, error) {
	var c struct {
		Version     string `yaml:"version"`
		AppVersion  string `yaml:"appVersion"`
		KubeVersion string `yaml:"kubeVersion"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return "", err
	}
	if c.Version == "" || c.AppVersion == "" || c.KubeVersion == "" {
		return "", errors.New("version, appVersion and kubeVersion are all required")
	}
	return fmt.Sprintf("Chart version `%s` · haagent `%s` · Kubernetes `%s`\n", c.Version, c.AppVersion, c.KubeVersion), nil
}

// row is one line of the values table; def is empty for a group.
type row struct {
	key, def, doc string
}

func valueRows(data []byte) ([]row, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a mapping")
	}
	var rows []row
	var errs []error
	walk(doc.Content[0], "", &rows, &errs)
	if len(rows) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no values"))
	}
	return rows, errors.Join(errs...)
}

func walk(m *yaml.Node, prefix string, rows *[]row, errs *[]error) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := prefix + k.Value
		doc := commentText(k.HeadComment)
		if v.Kind == yaml.MappingNode && anyCommented(v) {
			if doc != "" {
				*rows = append(*rows, row{key: key, doc: doc})
			}
			walk(v, key+".", rows, errs)
			continue
		}
		if doc == "" {
			*errs = append(*errs, fmt.Errorf("line %d: value %s has no comment: say what it is for", k.Line, key))
			continue
		}
		def, err := defaultOf(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("line %d: value %s: %w", k.Line, key, err))
			continue
		}
		*rows = append(*rows, row{key: key, def: def, doc: doc})
	}
}

func anyCommented(m *yaml.Node) bool {
	for i := 0; i < len(m.Content); i += 2 {
		if strings.TrimSpace(m.Content[i].HeadComment) != "" {
			return true
		}
	}
	return false
}

// defaultOf is the value as compact JSON: one line, and the same whether
// the YAML spelled it in flow or block style.
func defaultOf(v *yaml.Node) (string, error) {
	var x any
	if err := v.Decode(&x); err != nil {
		return "", err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// commentText turns the comment lines above a key into one line of
// Markdown: prose lines are joined, blank comment lines start a new
// paragraph (<br>), and lines indented further than "# " (commands, as in
// "#   head -c 32 /dev/urandom | base64") become code spans.
func commentText(c string) string {
	// A comment separated from its key by a blank line belongs to what is
	// above it: yaml.v3 keeps it in the head comment after an empty line;
	// only the block next to the key documents it.
	c = strings.TrimRight(c, "\n")
	if i := strings.LastIndex(c, "\n\n"); i >= 0 {
		c = c[i+2:]
	}
	var parts []string
	var para []string
	flush := func() {
		if len(para) > 0 {
			parts = append(parts, strings.Join(para, " "))
			para = nil
		}
	}
	for _, line := range strings.Split(c, "\n") {
		line = strings.TrimSpace(line)
		text, ok := strings.CutPrefix(line, "#")
		if !ok {
			continue
		}
		switch {
		case strings.TrimSpace(text) == "":
			flush()
		case strings.HasPrefix(text, "   "):
			para = append(para, "`"+strings.TrimSpace(text)+"`")
		default:
			para = append(para, strings.TrimSpace(text))
		}
	}
	flush()
	return strings.Join(parts, "<br><br>")
}

func table(rows []row) string {
	var b strings.Builder
	b.WriteString("| Value | Default | Description |\n|---|---|---|\n")
	for _, r := range rows {
		def := ""
		if r.def != "" {
			def = "`" + cell(r.def) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", r.key, def, cell(r.doc))
	}
	return b.String()
}

// cell escapes what would end a table cell; GitHub honours \| inside code
// spans of a table too.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}
