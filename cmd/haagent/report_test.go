package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/internal/availability"
)

var reportNow = time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)

// testRecords: one completed failover of n2, 6 s to detect and 2 min to
// repair, 10 days before reportNow.
func testRecords() []record.NodeFailover {
	heard := reportNow.Add(-10 * 24 * time.Hour)
	return []record.NodeFailover{{
		TypeMeta:   metav1.TypeMeta{APIVersion: record.Group + "/" + record.Version, Kind: record.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: "n2-20250321-000000"},
		Spec:       record.NodeFailoverSpec{Node: "n2", Reason: "dead"},
		Status: record.NodeFailoverStatus{
			Phase: record.PhaseCompleted, Outcome: record.OutcomeCompleted,
			LastHeard: record.At(heard), Confirmed: record.At(heard.Add(6 * time.Second)),
			WorkloadsRecovered: record.At(heard.Add(2 * time.Minute)), TimeToRepair: "2m0s",
		},
	}}
}

func testReport(t *testing.T, o *reportOptions) failoverReport {
	t.Helper()
	recs := testRecords()
	sum, err := record.Report(recs, availability.Window{Start: reportNow.Add(-o.since), End: reportNow}, []string{"n1", "n2", "n3"})
	if err != nil {
		t.Fatal(err)
	}
	return failoverReport{records: recs, nodes: 3, summary: sum}
}

// printReport prints the test report with the flags given.
func printReport(t *testing.T, args ...string) string {
	t.Helper()
	o := reportOptionsOf(t, args...)
	p, wide, err := o.out.printer()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := o.print(&buf, testReport(t, o), p, wide); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// reportOptionsOf parses args into fresh report options.
func reportOptionsOf(t *testing.T, args ...string) *reportOptions {
	t.Helper()
	o, cmd := newReportOptionsCommand()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestReport_table(t *testing.T) {
	out := printReport(t)
	for _, want := range []string{
		"NODE   STARTED                PHASE       OUTCOME     DETECT   CORDON   EVICT   RECOVER   REPAIR   VOTES\n",
		"n2     2025-03-21T00:00:00Z   Completed   completed   6s",
		"Availability over the last 720h0m0s (3 nodes):",
		"(cluster)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "replicas") {
		t.Errorf("report without --replicas shows replicas:\n%s", out)
	}
	rows := printReport(t, "--no-headers")
	if !strings.HasPrefix(rows, "n2 ") || strings.Count(rows, "\n") != 1 {
		t.Errorf("--no-headers:\n%s", rows)
	}
	if wide := printReport(t, "-o", "wide", "--no-headers"); !strings.Contains(wide, "n2-20250321-000000") || strings.Contains(wide, "NODE") {
		t.Errorf("-o wide --no-headers:\n%s", wide)
	}
}

func TestReport_replicas(t *testing.T) {
	o := reportOptionsOf(t, "--replicas=3")
	rep := testReport(t, o)
	from := rep.summary.Cluster.Measured
	want, _ := availability.Replicated(from, 3)
	r := o.replicated(rep.summary)
	if r == nil || r.Replicas != 3 || r.MinAvailable != 1 || r.From != from || r.Availability != want {
		t.Fatalf("replicated = %+v, want availability %v from %v", r, want, from)
	}
	out := printReport(t, "--replicas=3")
	if line := fmt.Sprintf("3 replicas on different nodes, at least 1 up: %s", percent(want)); !strings.Contains(out, line) {
		t.Errorf("report --replicas=3 lacks %q:\n%s", line, out)
	}
	quorum := reportOptionsOf(t, "--replicas=3", "--min-available=2").replicated(rep.summary)
	if k, _ := availability.KOfN(from, 2, 3); quorum == nil || quorum.Availability != k || quorum.MinAvailable != 2 {
		t.Errorf("2 of 3 = %+v, want %v", quorum, k)
	}
}

func TestReport_printers(t *testing.T) {
	for _, format := range []string{"json", "yaml"} {
		out := printReport(t, "-o", format, "--replicas=2")
		var doc reportDocument
		var err error
		if format == "json" {
			err = json.Unmarshal([]byte(out), &doc)
		} else {
			err = yaml.Unmarshal([]byte(out), &doc)
		}
		if err != nil {
			t.Fatalf("-o %s: %v\n%s", format, err, out)
		}
		a := doc.Availability
		n2 := a.PerNode["n2"]
		if doc.Since.Duration != 720*time.Hour || !doc.Window.End.Time.Equal(reportNow) || len(doc.Items) != 1 ||
			doc.Items[0].Spec.Node != "n2" || doc.Items[0].Kind != record.Kind || a.Nodes != 3 || len(a.PerNode) != 3 ||
			n2.Failures != 1 || n2.MTTD == nil || n2.MTTD.Duration != 6*time.Second || n2.MTTR.Duration != 2*time.Minute ||
			n2.Availability == nil || n2.Nines == nil || a.PerNode["n1"].Nines != nil || a.PerNode["n1"].MTTD != nil ||
			a.Cluster.Failures != 1 || a.AllUp <= 0.99 || a.Replicated == nil || a.Replicated.Replicas != 2 {
			t.Errorf("-o %s:\n%s", format, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "name"}, "nodefailover.haagent.io/n2-20250321-000000\n"},
		{[]string{"-o", "jsonpath={.items[*].spec.node} {.availability.perNode.n2.mttd} {.since}"}, "n2 6s 720h0m0s"},
		{[]string{"-o", "jsonpath={.availability.replicated.replicas}", "--replicas=5"}, "5"},
	} {
		if got := printReport(t, tc.args...); got != tc.want {
			t.Errorf("%v printed %q, want %q", tc.args, got, tc.want)
		}
	}
	if out := printReport(t, "-o", "json"); strings.Contains(out, "replicated") || !strings.Contains(out, `"allUp"`) {
		t.Errorf("-o json without --replicas:\n%s", out)
	}
}

// fakeAPI serves the NodeFailover records and three Nodes.
func fakeAPI(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v any
		switch r.URL.Path {
		case "/apis/haagent.io/v1alpha1/nodefailovers":
			v = record.NodeFailoverList{TypeMeta: metav1.TypeMeta{APIVersion: "haagent.io/v1alpha1", Kind: record.ListKind}, Items: testRecords()}
		case "/api/v1/nodes":
			list := corev1.NodeList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "NodeList"}}
			for _, n := range []string{"n1", "n2", "n3"} {
				list.Items = append(list.Items, corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
			}
			v = list
		default:
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// writeKubeconfig writes a kubeconfig whose current context, "down",
// points nowhere, and whose context "up" points at server.
func writeKubeconfig(t *testing.T, path, server string) {
	t.Helper()
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: down
clusters:
- name: up
  cluster: {server: %q}
- name: down
  cluster: {server: "http://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: up
  context: {cluster: up, user: u}
- name: down
  context: {cluster: down, user: u}
`, server)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// noKubeEnvironment leaves the test with no kubeconfig and outside a pod.
func noKubeEnvironment(t *testing.T) string {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	return home
}

// The API is found as kubectl finds it: --kubeconfig, $KUBECONFIG,
// ~/.kube/config, each with --context.
func TestReport_kubeconfig(t *testing.T) {
	server := fakeAPI(t)
	bin := haagentBinary(t) // before $HOME changes: go build reads it
	check := func(t *testing.T, args ...string) {
		t.Helper()
		code, stdout, stderr := haagent(t, nil, append([]string{"report", "--context=up", "-o", "yaml", "--timeout=10s"}, args...)...)
		var doc reportDocument
		if err := yaml.Unmarshal([]byte(stdout), &doc); code != 0 || err != nil || len(doc.Items) != 1 || doc.Availability.Nodes != 3 {
			t.Fatalf("exit %d, %v, stderr %q, stdout:\n%s", code, err, stderr, stdout)
		}
	}
	t.Run("--kubeconfig", func(t *testing.T) {
		noKubeEnvironment(t)
		path := filepath.Join(t.TempDir(), "config")
		writeKubeconfig(t, path, server)
		check(t, "--kubeconfig="+path)
	})
	t.Run("KUBECONFIG", func(t *testing.T) {
		noKubeEnvironment(t)
		path := filepath.Join(t.TempDir(), "config")
		writeKubeconfig(t, path, server)
		t.Setenv("KUBECONFIG", path)
		check(t)
	})
	// client-go reads $HOME once, at start: these run the binary.
	t.Run("~/.kube/config", func(t *testing.T) {
		home := noKubeEnvironment(t)
		writeKubeconfig(t, filepath.Join(home, ".kube", "config"), server)
		cmd := exec.Command(bin, "report", "--context=up", "-o", "jsonpath={.items[0].spec.node} {.availability.nodes}")
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "n2 3" {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("current context", func(t *testing.T) {
		home := noKubeEnvironment(t)
		writeKubeconfig(t, filepath.Join(home, ".kube", "config"), server)
		cmd := exec.Command(bin, "report", "--timeout=5s")
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "127.0.0.1:1") {
			t.Fatalf("the current context (down) was not used: %v, %s", err, out)
		}
	})
	t.Run("none", func(t *testing.T) {
		noKubeEnvironment(t)
		code, stdout, stderr := haagent(t, nil, "report")
		if want := "haagent report: " + errNoAPI.Error() + "\n"; code != 1 || stdout != "" || stderr != want {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 1, %q", code, stdout, stderr, want)
		}
	})
}
