package cluster

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// auditLine is one event of a test log.
func auditLine(id, stage, verb, uri, ua, cred string, received, at time.Time, res, ns, name string, code int) string {
	ev := map[string]any{
		"auditID": id, "stage": stage, "verb": verb, "requestURI": uri, "userAgent": ua,
		"user":                     map[string]any{"username": "system:serviceaccount:haagent:haagent", "extra": map[string][]string{CredentialIDKey: {cred}}},
		"requestReceivedTimestamp": received.Format(time.RFC3339Nano),
		"stageTimestamp":           at.Format(time.RFC3339Nano),
		"responseStatus":           map[string]any{"code": code},
	}
	if res != "" {
		ev["objectRef"] = map[string]any{"resource": res, "namespace": ns, "name": name}
	}
	b, _ := json.Marshal(ev)
	return string(b) + "\n"
}

func TestAnalyzeAudit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	var log strings.Builder
	// node-1 by User-Agent; its Node watch opened before the window and
	// renewed at 30 s; its Lease GET every 10 s.
	ua1 := "haagent/1.2.0 node=node-1"
	log.WriteString(auditLine("w1", "ResponseStarted", "watch", "/api/v1/nodes?watch=true", ua1, "JTI=x", at(-5), at(-5), "nodes", "", "", 200))
	log.WriteString(auditLine("w1", "ResponseComplete", "watch", "/api/v1/nodes?watch=true", ua1, "JTI=x", at(-5), at(30), "nodes", "", "", 200))
	// Renewed: the new watch starts a moment before the old one's end is logged.
	log.WriteString(auditLine("w2", "ResponseStarted", "watch", "/api/v1/nodes?watch=true", ua1, "JTI=x", at(29.9), at(29.9), "nodes", "", "", 200))
	for i := range 6 {
		s := float64(i * 10)
		log.WriteString(auditLine(fmt.Sprint("g", i), "ResponseComplete", "get", "/apis/coordination.k8s.io/v1/namespaces/haagent/leases/haagent-coordinator",
			ua1, "JTI=x", at(s), at(s+0.01), "leases", "haagent", "haagent-coordinator", 200))
	}
	// node-2 by its credential (client-go's default User-Agent): a watch
	// of its own Node, all the window.
	ua2 := "haagent/v0.0.0 (linux/amd64) kubernetes/$Format"
	uri := "/api/v1/nodes?fieldSelector=metadata.name%3Dnode-2&watch=true"
	log.WriteString(auditLine("w3", "ResponseStarted", "watch", uri, ua2, "JTI=n2", at(-1), at(-1), "nodes", "", "", 200))
	// node-1's apiserver check, by token, under another User-Agent.
	log.WriteString(auditLine("h1", "ResponseComplete", "get", "/readyz", "haagent-probe", "JTI=x", at(7), at(7), "", "", "", 200))
	// A kubelet: not an agent.
	log.WriteString(auditLine("k1", "ResponseComplete", "update", "/api/v1/nodes/node-1/status", "haagent-fake-kubelet/node-1", "", at(5), at(5), "nodes", "", "node-1", 200))
	// Outside the window.
	log.WriteString(auditLine("late", "ResponseComplete", "get", "/api/v1/nodes/node-1", ua1, "JTI=x", at(61), at(61), "nodes", "", "node-1", 404))

	u, err := analyzeAudit(strings.NewReader(log.String()), at(0), at(60), Attribution{ByCredential: map[string]string{"JTI=n2": "node-2", "JTI=x": "node-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if u.AllRequests != 9 {
		t.Errorf("AllRequests = %d, want 9 (6 gets, 1 watch, 1 check, 1 kubelet update)", u.AllRequests)
	}
	n1 := u.Agents["node-1"]
	if n1 == nil {
		t.Fatalf("no node-1 in %v", u.Agents)
	}
	if n1.Total != 7+1 || n1.Health != 1 {
		t.Errorf("node-1 Total = %d, Health = %d; want 8 and 1", n1.Total, n1.Health)
	}
	if len(n1.Watches) != 1 || n1.Watches[0].Requests != 1 || n1.MaxOpenWatches != 1 || math.Abs(n1.MeanOpenWatches-1) > 1e-9 {
		t.Errorf("node-1 watches = %+v, max %d, mean %v; want one target, 1 request, 1 open", n1.Watches, n1.MaxOpenWatches, n1.MeanOpenWatches)
	}
	if cw := n1.ClusterWideWatches(); len(cw) != 1 || cw[0].String() != "nodes, cluster-wide" {
		t.Errorf("node-1 cluster-wide watches = %v", cw)
	}
	if n1.Requests[0].Verb != "get" || n1.Requests[0].Count != 6 || n1.Requests[0].Resource != "leases" {
		t.Errorf("node-1 first request group = %+v", n1.Requests[0])
	}
	n2 := u.Agents["node-2"]
	if n2 == nil || len(n2.Watches) != 1 || n2.Watches[0].Name() != "node-2" || len(n2.ClusterWideWatches()) != 0 || n2.Total != 0 {
		t.Fatalf("node-2 = %+v", n2)
	}
	if got := n2.Watches[0].String(); got != "nodes, single object node-2" {
		t.Errorf("node-2 watch = %q", got)
	}
	if u.AllWatchesEnd != 2 {
		t.Errorf("AllWatchesEnd = %d, want 2", u.AllWatchesEnd)
	}
}

func TestAttribution(t *testing.T) {
	a := Attribution{ByCredential: map[string]string{"JTI=a": "node-7"}}
	for _, tc := range []struct {
		ua, cred, want string
		ok             bool
	}{
		{"haagent/1.0 node=node-3", "", "node-3", true},
		{"haagent/1.0 (linux/amd64) kubernetes/abc", "JTI=a", "node-7", true},
		{"haagent/1.0 (linux/amd64) kubernetes/abc", "JTI=b", Unattributed, true},
		{"kube-controller-manager/v1.37.2", "JTI=b", "", false},
		{"haagent-fake-kubelet/node-1", "", "", false},
	} {
		ev := &AuditEvent{UserAgent: tc.ua}
		ev.User.Extra = map[string][]string{CredentialIDKey: {tc.cred}}
		got, ok := a.Agent(ev)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Agent(%q, %q) = %q, %v; want %q, %v", tc.ua, tc.cred, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTokenJTI(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"x","jti":"5b1c-77"}`))
	if got := tokenJTI("eyJhbGciOiJSUzI1NiJ9." + payload + ".sig"); got != "5b1c-77" {
		t.Errorf("tokenJTI = %q", got)
	}
	if got := tokenJTI("not a jwt"); got != "" {
		t.Errorf("tokenJTI of garbage = %q", got)
	}
}

// A Node of the default fake kubelet is as large as a busy production
// node's: 10 to 15 KB as JSON.
func TestFakeKubelet_nodeSize(t *testing.T) {
	k := newTestKubelet(t, "198.18.3.0/24")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	k.fillStatus(&node.Status, metav1.Now())
	b, err := json.Marshal(node)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10_000 || len(b) > 15_000 {
		t.Errorf("Node JSON is %d bytes, want 10-15 KB", len(b))
	}
	if n := len(node.Status.Images); n < 40 || n > 50 {
		t.Errorf("%d images, want 40-50", n)
	}
}
