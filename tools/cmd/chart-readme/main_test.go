package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testChart = "version: 1.2.3\nappVersion: \"1.2.3\"\nkubeVersion: \">=1.29.0-0\"\n"

const testValues = `# File header, not a value.

# The image.
image:
  # Where from.
  repository: example.com/x
  # Empty: appVersion.
  tag: ""
# Passed through whole.
resources:
  requests:
    cpu: 20m
# A key, made with
#   head -c 32 /dev/urandom | base64
#
# Second paragraph.
keys: ""
`

const testReadme = `# Chart

<!-- chart-readme:chart:begin -->
stale
<!-- chart-readme:chart:end -->

Prose.

<!-- chart-readme:values:begin -->
stale
<!-- chart-readme:values:end -->
`

func TestGenerate(t *testing.T) {
	got, err := Generate([]byte(testReadme), []byte(testChart), []byte(testValues))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Chart\n\n<!-- chart-readme:chart:begin -->\n" +
		"Chart version `1.2.3` · haagent `1.2.3` · Kubernetes `>=1.29.0-0`\n" +
		"<!-- chart-readme:chart:end -->\n\nProse.\n\n<!-- chart-readme:values:begin -->\n" +
		"| Value | Default | Description |\n|---|---|---|\n" +
		"| `image` |  | The image. |\n" +
		"| `image.repository` | `\"example.com/x\"` | Where from. |\n" +
		"| `image.tag` | `\"\"` | Empty: appVersion. |\n" +
		"| `resources` | `{\"requests\":{\"cpu\":\"20m\"}}` | Passed through whole. |\n" +
		"| `keys` | `\"\"` | A key, made with `head -c 32 /dev/urandom \\| base64`<br><br>Second paragraph. |\n" +
		"<!-- chart-readme:values:end -->\n"
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// Generating again changes nothing.
	again, err := Generate(got, []byte(testChart), []byte(testValues))
	if err != nil || string(again) != want {
		t.Errorf("not idempotent (%v):\n%s", err, again)
	}
}

func TestGenerate_refusesAnUndocumentedValue(t *testing.T) {
	_, err := Generate([]byte(testReadme), []byte(testChart), []byte("# Doc.\na: 1\nb: 2\n"))
	if err == nil || !strings.Contains(err.Error(), "value b has no comment") {
		t.Errorf("err = %v, want one naming value b", err)
	}
}

func TestGenerate_needsTheMarkers(t *testing.T) {
	_, err := Generate([]byte("# Chart\n"), []byte(testChart), []byte(testValues))
	if err == nil || !strings.Contains(err.Error(), "chart-readme:chart:begin") {
		t.Errorf("err = %v, want one naming the missing marker", err)
	}
}

// The chart of this repository is in step with its README.
func TestRepositoryChart(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "charts", "haagent")
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Skip(err)
	}
	var out strings.Builder
	if err := run([]string{"-check", dir}, &out); err != nil {
		t.Fatal(err)
	}
}
