package apiusage

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		method, url, verb, resource string
	}{
		{"GET", "/api/v1/nodes", "list", "nodes"},
		{"GET", "/api/v1/nodes?watch=true&resourceVersion=5", "watch", "nodes"},
		{"GET", "/api/v1/nodes/n1", "get", "nodes"},
		{"PATCH", "/api/v1/nodes/n1/status", "patch", "nodes/status"},
		{"GET", "/api/v1/namespaces/haagent/configmaps?fieldSelector=metadata.name%3Dr&watch=true", "watch", "configmaps"},
		{"GET", "/apis/coordination.k8s.io/v1/namespaces/haagent/leases/c", "get", "leases"},
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/haagent/leases/c", "update", "leases"},
		{"POST", "/api/v1/namespaces/default/pods/p/eviction", "create", "pods/eviction"},
		{"DELETE", "/api/v1/namespaces/default/pods/p", "delete", "pods"},
		{"DELETE", "/api/v1/namespaces/default/pods", "deletecollection", "pods"},
		{"GET", "/api/v1/namespaces/kube-system", "get", "namespaces"},
		{"GET", "/api/v1/watch/nodes", "watch", "nodes"},
		{"GET", "/readyz", "get", "/readyz"},
		{"GET", "/apis/haagent.io/v1alpha1/nodefailovers", "list", "nodefailovers"},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, c.url, nil)
		verb, resource := Classify(req)
		if verb != c.verb || resource != c.resource {
			t.Errorf("%s %s: got %s %s, want %s %s", c.method, c.url, verb, resource, c.verb, c.resource)
		}
	}
}

func TestMeterCountsRequestsWatchesAndBytes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 100))
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	m := New(reg)
	client := &http.Client{Transport: m.Wrap(http.DefaultTransport)}

	get := func(path string) *http.Response {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get("/api/v1/nodes/n1")
	_, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()

	watch := get("/api/v1/namespaces/ns/configmaps?watch=true")
	if got := testutil.ToFloat64(m.watches.WithLabelValues("configmaps")); got != 1 {
		t.Errorf("open watches while the watch runs: %v, want 1", got)
	}
	_, _ = io.ReadAll(watch.Body)
	_ = watch.Body.Close()
	_ = watch.Body.Close() // a second close must not count twice
	if got := testutil.ToFloat64(m.watches.WithLabelValues("configmaps")); got != 0 {
		t.Errorf("open watches after close: %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("get", "nodes")); got != 1 {
		t.Errorf("get nodes: %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("watch", "configmaps")); got != 1 {
		t.Errorf("watch configmaps: %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.bytes); got != 200 {
		t.Errorf("bytes received: %v, want 200", got)
	}
}
