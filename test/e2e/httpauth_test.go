package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/test/cluster"
)

// TestHTTPAuth runs an agent with --http-auth=kubernetes against the real
// API server. Until the agent may review tokens, a request with a token
// answers 503 and the agent keeps running. Then the chart's RBAC for
// metrics.auth.enabled (the agent's ClusterRole, haagent-metrics-reader,
// the reader's ServiceAccount and token Secret) is applied, rendered by
// helm, and: no token and a made-up token answer 401; the token of a
// ServiceAccount without the RBAC 403; the reader's token, the one the
// PodMonitor sends, 200 with the metrics, and ten more scrapes cost the API
// server no review; /healthz and /readyz stay open; `haagent members` works
// with the agent's own token and says what is missing without one.
func TestHTTPAuth(t *testing.T) {
	helm := helmBinary(t)
	tc := startCluster(t, clusterOptions{nodes: 1, agent: func(_ int, c *cluster.AgentConfig) {
		// A short refusal TTL: a request made before the RBAC below is
		// visible must not be refused for the default minute.
		c.ExtraArgs = append(c.ExtraArgs, "--http-auth=kubernetes", "--http-auth-deny-ttl=1s")
	}})
	agent := tc.nodes[0].Agent()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp := tc.cp

	nobody := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody", Namespace: "haagent"}}
	if _, err := cp.Client().CoreV1().ServiceAccounts("haagent").Create(ctx, nobody, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nobodyToken, err := cp.ServiceAccountToken(ctx, "haagent", "nobody", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// deploy/ is the chart with metrics.auth off: the agent may not
	// review tokens yet.
	for _, path := range []string{"/metrics", "/members"} {
		if code, body := httpGet(t, ctx, agent.URL()+path, nobodyToken); code != http.StatusServiceUnavailable {
			t.Errorf("GET %s before the agent may review tokens: %d %s, want 503", path, code, body)
		}
	}
	if err := agent.Err(); err != nil {
		t.Fatalf("agent after failed reviews: %v", err)
	}

	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := runHelm(ctx, helm, "template", "haagent", filepath.Join(root, "charts", "haagent"),
		"--namespace", "haagent", "--kube-version", serverVersion(t, cp), "--set", "metrics.auth.enabled=true",
		"--show-only", "templates/rbac.yaml", "--show-only", "templates/metrics-auth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cp.Kubectl(ctx, rendered, "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var readerToken string
	eventually(t, time.Minute, "the token controller fills in haagent-metrics-reader-token", func(ctx context.Context) (bool, error) {
		s, err := cp.Client().CoreV1().Secrets("haagent").Get(ctx, "haagent-metrics-reader-token", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		readerToken = string(s.Data["token"])
		return readerToken != "", nil
	})

	for _, path := range []string{"/metrics", "/members"} {
		eventually(t, time.Minute, "403 for "+path+" with a token without the RBAC", func(ctx context.Context) (bool, error) {
			code, body := httpGet(t, ctx, agent.URL()+path, nobodyToken)
			if code != http.StatusForbidden {
				return false, fmt.Errorf("%d %s", code, body)
			}
			if want := `Forbidden: user "system:serviceaccount:haagent:nobody" may not get ` + path; !strings.HasPrefix(body, want) {
				return false, fmt.Errorf("body %q, want %q...", body, want)
			}
			return true, nil
		})
		for _, token := range []string{"", "made-up"} {
			if code, body := httpGet(t, ctx, agent.URL()+path, token); code != http.StatusUnauthorized {
				t.Errorf("GET %s with token %q: %d %s, want 401", path, token, code, body)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, ctx, agent.URL()+path, ""); code != http.StatusOK {
			t.Errorf("GET %s without a token: %d %s, want 200", path, code, body)
		}
	}

	var metrics string
	eventually(t, time.Minute, "200 for /metrics with the reader's token", func(ctx context.Context) (bool, error) {
		code, body := httpGet(t, ctx, agent.URL()+"/metrics", readerToken)
		if code != http.StatusOK {
			return false, fmt.Errorf("%d %s", code, body)
		}
		metrics = body
		return true, nil
	})
	if !strings.Contains(metrics, "haagent_build_info{") {
		t.Errorf("/metrics with the reader's token has no haagent_build_info:\n%s", metrics)
	}
	// Scrapes within --http-auth-allow-ttl cost no review.
	before := sampleValues(t, metrics)
	for range 10 {
		if code, body := httpGet(t, ctx, agent.URL()+"/metrics", readerToken); code != http.StatusOK {
			t.Fatalf("scrape: %d %s", code, body)
		}
	}
	_, body := httpGet(t, ctx, agent.URL()+"/metrics", readerToken)
	after := sampleValues(t, body)
	for _, s := range []string{`haagent_http_auth_reviews_total{review="token"}`, `haagent_http_auth_reviews_total{review="access"}`} {
		if before[s] < 1 || after[s] != before[s] {
			t.Errorf("%s: %g before ten scrapes, %g after; want at least 1 and no change", s, before[s], after[s])
		}
	}
	if got := after[`haagent_http_auth_total{result="allowed"}`] - before[`haagent_http_auth_total{result="allowed"}`]; got != 11 {
		t.Errorf("allowed requests counted over eleven scrapes: %g", got)
	}
	for _, r := range []string{"denied", "unauthenticated", "error"} {
		if s := `haagent_http_auth_total{result="` + r + `"}`; after[s] < 1 {
			t.Errorf("%s = %g, want at least 1", s, after[s])
		}
	}
	t.Logf("reviews sent by the agent: token %g, access %g; answers: %s",
		after[`haagent_http_auth_reviews_total{review="token"}`], after[`haagent_http_auth_reviews_total{review="access"}`],
		strings.Join(grepLines(body, "haagent_http_auth_total{"), ", "))

	// A real Prometheus, as the chart's PodMonitor sets it up: the reader
	// Secret's token on every scrape. One without a token sees the target
	// down with the agent's 401.
	readerFile := filepath.Join(t.TempDir(), "reader-token")
	if err := os.WriteFile(readerFile, []byte(readerToken), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tokenFile := range []string{readerFile, ""} {
		cfg := cluster.DefaultPrometheusConfig(prometheusBinDir(t))
		cfg.BearerTokenFile = tokenFile
		dir := filepath.Join(t.TempDir(), "prometheus")
		prom, err := cluster.StartPrometheus(ctx, dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if tokenFile != "" {
			if err := prom.ScrapeNodes(ctx, tc.nodes[:1]); err != nil {
				t.Errorf("prometheus with the reader's token: %v\n%s", err, prom.LogTail(20))
			}
			v, err := prom.Query(ctx, `haagent_build_info{job="haagent"}`)
			if err != nil || len(v) != 1 {
				t.Errorf("prometheus with the reader's token: haagent_build_info: %v %v", v, err)
			}
		} else {
			target := cluster.ScrapeTarget{Address: strings.TrimPrefix(agent.URL(), "http://"), Node: tc.nodes[0].Name()}
			if err := prom.SetTargets([]cluster.ScrapeTarget{target}); err != nil {
				t.Fatal(err)
			}
			health, lastErr := scrapeError(ctx, prom)
			if health != "down" || !strings.Contains(lastErr, "401") {
				t.Errorf("prometheus without a token: target %q (%s), want down with a 401", health, lastErr)
			}
		}
		if err := prom.Stop(); err != nil {
			t.Error(err)
		}
	}

	// haagent members, as run in the agent's pod: the agent's own token.
	agentToken, err := cp.ServiceAccountToken(ctx, "haagent", "haagent", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(agentToken), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := haagentBinary(t)
	eventually(t, time.Minute, "haagent members --token-file with the agent's token", func(ctx context.Context) (bool, error) {
		out, err := exec.CommandContext(ctx, bin, "members", "--agent="+agent.URL(), "--token-file="+tokenFile, "-o", "name").CombinedOutput()
		if err != nil {
			return false, fmt.Errorf("%v: %s", err, out)
		}
		if got, want := string(out), "member/"+tc.nodes[0].Name()+"\n"; got != want {
			return false, fmt.Errorf("printed %q, want %q", got, want)
		}
		return true, nil
	})
	out, err := exec.CommandContext(ctx, bin, "members", "--agent="+agent.URL()).CombinedOutput()
	if want := "pass --token-file"; err == nil || !strings.Contains(string(out), "401 Unauthorized") || !strings.Contains(string(out), want) {
		t.Errorf("haagent members without a token: %v, %q; want a failure naming 401 and %q", err, out, want)
	}
}

// scrapeError waits for the first scrape of the only target and returns
// its health and last error.
func scrapeError(ctx context.Context, prom *cluster.Prometheus) (health, lastErr string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		targets, err := prom.Targets(ctx)
		if err == nil && len(targets) == 1 && targets[0].Health != "unknown" {
			return targets[0].Health, targets[0].LastError
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", "no scrape within 30s"
}

// httpGet gets url with the bearer token (none if empty) and returns the
// status code and the body.
func httpGet(t *testing.T, ctx context.Context, url, token string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err.Error()
	}
	if res.StatusCode == http.StatusUnauthorized && res.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("GET %s: 401 without WWW-Authenticate", url)
	}
	return res.StatusCode, string(body)
}

// sampleValues maps each sample line of a text exposition, name{labels},
// to its value.
func sampleValues(t *testing.T, exposition string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(exposition))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

func grepLines(text, prefix string) []string {
	var out []string
	for line := range bytes.Lines([]byte(text)) {
		if s := strings.TrimSpace(string(line)); strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
