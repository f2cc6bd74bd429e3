package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/gossip"
)

var membersAt = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testMembers: n1 answers; n2 died while ready (its last verdict is
// stale); n3 is alive and not ready; n4 is suspect.
func testMembers() api.MembersResponse {
	start := membersAt.Add(-time.Hour).UnixNano()
	return api.MembersResponse{
		Self: "n1", Time: membersAt,
		Quorum: gossip.QuorumView{Joined: true, Expected: 4, Live: 3, InTouch: 3},
		Members: []gossip.Member{
			{Name: "n1", Addr: "10.0.0.1:7946", State: gossip.StateAlive, Since: membersAt.Add(-time.Hour), Local: true,
				Meta: gossip.Meta{NodeName: "n1", Zone: "eu-1a", AgentVersion: "0.2.0", Ready: true, StartEpoch: start}},
			{Name: "n2", Addr: "10.0.0.2:7946", State: gossip.StateDead, Since: membersAt.Add(-90 * time.Second),
				Meta: gossip.Meta{NodeName: "n2", Zone: "eu-1b", AgentVersion: "0.2.0", Ready: true, StartEpoch: start}},
			{Name: "n3", Addr: "10.0.0.3:7946", State: gossip.StateAlive, Since: membersAt.Add(-5 * time.Minute),
				Meta: gossip.Meta{NodeName: "n3", AgentVersion: "0.2.0", Reason: "kubelet: connection refused", StartEpoch: start}},
			{Name: "n4", Addr: "10.0.0.4:7946", State: gossip.StateSuspect, Since: membersAt.Add(-2 * time.Second),
				Meta: gossip.Meta{NodeName: "n4", Ready: true}},
		},
	}
}

// fakeAgent serves /members.
func fakeAgent(t *testing.T, resp api.MembersResponse) string {
	t.Helper()
	body, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/members" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func runMembers(t *testing.T, url string, args ...string) string {
	t.Helper()
	code, stdout, stderr := haagent(t, nil, append([]string{"members", "--agent=" + url}, args...)...)
	if code != 0 || stderr != "" {
		t.Fatalf("haagent members %v: exit %d, stderr %q", args, code, stderr)
	}
	return stdout
}

func TestMembers_table(t *testing.T) {
	url := fakeAgent(t, testMembers())
	want := `NAME   ADDRESS         STATE     ZONE    READY   SINCE   SELF
n1     10.0.0.1:7946   alive     eu-1a   yes     60m     yes
n2     10.0.0.2:7946   dead      eu-1b   -       90s     no
n3     10.0.0.3:7946   alive     -       no      5m      no
n4     10.0.0.4:7946   suspect   -       -       2s      no
`
	if got := runMembers(t, url); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	// NAME is the bare name: the first column is usable as it is.
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(runMembers(t, url, "--no-headers")), "\n") {
		names = append(names, strings.Fields(line)[0])
	}
	if strings.Join(names, " ") != "n1 n2 n3 n4" {
		t.Errorf("--no-headers first column = %v", names)
	}
	wide := runMembers(t, url, "-o", "wide")
	lines := strings.Split(wide, "\n")
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NAME ADDRESS STATE ZONE READY SINCE SELF VERSION STARTED REASON" {
		t.Errorf("wide header = %q", lines[0])
	}
	if f := strings.Fields(lines[3]); len(f) != 12 || f[6] != "no" || f[7] != "0.2.0" || f[8] != "2025-03-01T11:00:00Z" ||
		strings.Join(f[9:], " ") != "kubelet: connection refused" {
		t.Errorf("wide row of n3 = %q", lines[3])
	}
	if got := runMembers(t, url, "-o", "wide", "--no-headers"); !strings.HasPrefix(got, "n1 ") {
		t.Errorf("-o wide --no-headers:\n%s", got)
	}
}

func TestMembers_printers(t *testing.T) {
	resp := testMembers()
	url := fakeAgent(t, resp)
	for _, format := range []string{"json", "yaml", "kyaml"} {
		out := runMembers(t, url, "-o", format)
		var got api.MembersResponse
		var err error
		if format == "json" {
			err = json.Unmarshal([]byte(out), &got)
		} else {
			err = yaml.Unmarshal([]byte(out), &got)
		}
		if err != nil || !reflect.DeepEqual(got, resp) {
			t.Errorf("-o %s: %v\n%s", format, err, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "name"}, "member/n1\nmember/n2\nmember/n3\nmember/n4\n"},
		{[]string{"-o", "jsonpath={.members[*].name}"}, "n1 n2 n3 n4"},
		{[]string{"-o", `jsonpath={range .members[?(@.state=="dead")]}{.name}{"\n"}{end}`}, "n2\n"},
		{[]string{"-o", "jsonpath={.self} {.quorum.live}/{.quorum.expected}"}, "n1 3/4"},
		{[]string{"-o", "jsonpath={range .members[*]}{.name}={.state} {end}"}, "n1=alive n2=dead n3=alive n4=suspect "},
		{[]string{"--template={.self}"}, "n1"},
	} {
		if got := runMembers(t, url, tc.args...); got != tc.want {
			t.Errorf("%v printed %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestMembers_agentUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	code, stdout, stderr := haagent(t, nil, "members", "--agent="+srv.URL, "--timeout=2s")
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "haagent members: ask agent: ") || strings.Contains(stderr, "see '") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// tokenAgent serves /members only to the bearer token want, as an agent
// with --http-auth=kubernetes does to a token RBAC allows.
func tokenAgent(t *testing.T, want string) string {
	t.Helper()
	open := fakeAgent(t, testMembers())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+want {
			http.Error(w, "Unauthorized: no bearer token", http.StatusUnauthorized)
			return
		}
		res, err := http.Get(open + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		_, _ = io.Copy(w, res.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestMembers_tokenFile(t *testing.T) {
	url := tokenAgent(t, "s3cret")
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := runMembers(t, url, "--token-file="+file, "-o", "name"); got != "member/n1\nmember/n2\nmember/n3\nmember/n4\n" {
		t.Errorf("with --token-file: %q", got)
	}

	code, stdout, stderr := haagent(t, nil, "members", "--agent="+url, "--token-file="+filepath.Join(t.TempDir(), "absent"))
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "haagent members: --token-file: open ") {
		t.Errorf("missing --token-file: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = haagent(t, nil, "members", "--agent="+url, "--token-file="+empty)
	if code != 1 || stderr != "haagent members: --token-file: "+empty+" is empty\n" {
		t.Errorf("empty --token-file: exit %d, stderr %q", code, stderr)
	}
}

func TestMembers_noTokenHint(t *testing.T) {
	url := tokenAgent(t, "s3cret")
	o := &membersOptions{agent: url, timeout: 2 * time.Second, defaultTokenFile: filepath.Join(t.TempDir(), "absent"), out: newOutputFlags()}
	err := o.run(io.Discard)
	want := "agent answered 401 Unauthorized: Unauthorized: no bearer token (it runs with --http-auth=kubernetes: pass --token-file)"
	if err == nil || err.Error() != want {
		t.Errorf("run = %v, want %q", err, want)
	}
}

// TestMembersOptions_token: the pod's own token goes only to an agent on
// this host; --token-file goes wherever --agent points.
func TestMembersOptions_token(t *testing.T) {
	dir := t.TempDir()
	pod := filepath.Join(dir, "pod-token")
	own := filepath.Join(dir, "own-token")
	for file, token := range map[string]string{pod: "pod", own: "own"} {
		if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		agent, tokenFile, defaultFile string
		want                          string
	}{
		{"http://127.0.0.1:9750", "", pod, "pod"},
		{"http://localhost:9750", "", pod, "pod"},
		{"http://[::1]:9750", "", pod, "pod"},
		{"http://10.0.0.7:9750", "", pod, ""},
		{"http://node-7.example:9750", "", pod, ""},
		{"http://127.0.0.1:9750", "", filepath.Join(dir, "absent"), ""},
		{"http://10.0.0.7:9750", own, pod, "own"},
		{"http://127.0.0.1:9750", own, pod, "own"},
	} {
		o := &membersOptions{agent: tc.agent, tokenFile: tc.tokenFile, defaultTokenFile: tc.defaultFile}
		got, err := o.token()
		if err != nil || got != tc.want {
			t.Errorf("agent %s, --token-file %q, pod token %s: %q, %v; want %q", tc.agent, tc.tokenFile, tc.defaultFile, got, err, tc.want)
		}
	}
}
