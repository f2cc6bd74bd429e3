package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseRunOptions_errors(t *testing.T) {
	badYAML := writeFile(t, "probe-interval: [\n")
	unknown := writeFile(t, "probe-intervall: 1s\n")
	badValue := writeFile(t, "probe-interval: soon\n")
	badCheck := writeFile(t, "checks:\n- name: kubelet\n  tcpSocket: {port: 0}\n")
	nested := writeFile(t, "zone: {a: b}\n")
	help := writeFile(t, "help: true\n")
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no node name", nil, nil, "gossip: --node-name is required (or set NODE_NAME)"},
		{"timeout above interval", []string{"--node-name=n", "--probe-timeout=2s"}, nil,
			"gossip: --probe-timeout (2s) must be less than --probe-interval (200ms) (auto profile, band up_to_1000)"},
		{"bad profile", []string{"--node-name=n", "--gossip-profile=turbo"}, nil,
			`gossip: --gossip-profile ("turbo") must be one of auto, default, fast`},
		{"bad log format", []string{"--node-name=n", "--log-format=xml"}, nil,
			`logging: --log-format ("xml") must be json or console`},
		{"bad http addr", []string{"--node-name=n", "--http-addr=9750"}, nil,
			`api: --http-addr ("9750") must be host:port: address 9750: missing port in address`},
		{"bad http auth", []string{"--node-name=n", "--http-auth=basic"}, nil,
			`httpauth: --http-auth ("basic") must be none or kubernetes`},
		{"http auth without the API", []string{"--node-name=n", "--http-auth=kubernetes"}, nil,
			"httpauth: --http-auth=kubernetes needs the Kubernetes API: set --kubeconfig or run in a pod"},
		{"not a duration", []string{"--node-name=n", "--probe-interval=soon"}, nil,
			`invalid argument "soon" for "--probe-interval" flag: time: invalid duration "soon"`},
		{"bad env advertise addr", []string{"--node-name=n"}, map[string]string{"HOST_IP": "nowhere"},
			`gossip: --advertise-addr ("nowhere") must be an IP address`},
		{"stray argument", []string{"--node-name=n", "extra"}, nil, `haagent run takes no arguments, got ["extra"]`},
		{"missing config file", []string{"--node-name=n", "--config=/nonexistent/haagent.yaml"}, nil,
			"--config: open /nonexistent/haagent.yaml: no such file or directory"},
		{"config not yaml", []string{"--node-name=n", "--config=" + badYAML}, nil,
			"config file " + badYAML + ": yaml: line 1: did not find expected node content"},
		{"config unknown key", []string{"--node-name=n", "--config=" + unknown}, nil,
			"config file " + unknown + `: unknown setting "probe-intervall" (settings are the flag names of ` + "`haagent run -h`)"},
		{"config bad value", []string{"--node-name=n", "--config=" + badValue}, nil,
			"config file " + badValue + `: probe-interval: time: invalid duration "soon"`},
		{"config help", []string{"--node-name=n", "--config=" + help}, nil,
			"config file " + help + `: unknown setting "help" (settings are the flag names of ` + "`haagent run -h`)"},
		{"config nested value", []string{"--node-name=n", "--config=" + nested}, nil,
			"config file " + nested + ": zone: value must be a string, number, boolean or list of those"},
		{"config bad check", []string{"--node-name=n", "--config=" + badCheck}, nil,
			`probe: checks[0] "kubelet": tcpSocket.port (0) must be between 1 and 65535`},
		{"api qps zero", []string{"--node-name=n", "--kube-api-qps=0"}, nil,
			"--kube-api-qps (0) must be between 1 and 1000"},
		{"api burst under qps", []string{"--node-name=n", "--kube-api-qps=50", "--kube-api-burst=10"}, nil,
			"--kube-api-burst (10) must be between --kube-api-qps (50) and 2000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRunOptions(tc.args, env(tc.env), io.Discard)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v\nwant    %s", err, tc.want)
			}
		})
	}
}

func TestParseRunOptions_precedence(t *testing.T) {
	cfg := writeFile(t, `
node-name: from-file
zone: zone-file
probe-interval: 2s
gossip-port: 7000
join: [10.0.0.1, "10.0.0.2:7001"]
checks: []
`)
	o, err := parseRunOptions([]string{"--config", cfg, "--zone", "zone-flag"},
		env(map[string]string{"NODE_NAME": "from-env", "POD_IP": "10.1.1.1", "POD_NAMESPACE": "haagent"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{o.gossip.NodeName, o.gossip.Zone, o.gossip.ProbeInterval, o.gossip.BindPort, o.gossip.AdvertiseAddr, o.namespace, []string(o.join), len(o.probe.Checks)}
	want := []any{"from-env", "zone-flag", 2 * time.Second, 7000, "10.1.1.1", "haagent", []string{"10.0.0.1", "10.0.0.2:7001"}, 0}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("options = %v\nwant      %v", got, want)
	}
}

func TestParseRunOptions_defaultChecksWithoutConfig(t *testing.T) {
	o, err := parseRunOptions([]string{"--node-name=n"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.probe.Checks) != 3 {
		t.Fatalf("default checks = %d, want the 3 node checks", len(o.probe.Checks))
	}
	if withoutAPIServerChecks(o.probe.Checks)[1].Name != "container-runtime" || len(withoutAPIServerChecks(o.probe.Checks)) != 2 {
		t.Fatalf("withoutAPIServerChecks kept the API server check")
	}
}

// The fence bound is checked against the terms of this agent's own
// settings: the default apiserver check (10 s period, 5 s timeout) finds an
// outage later than the isolation timeout (5 s) notices the cut.
func TestParseRunOptions_fenceBoundTerms(t *testing.T) {
	_, err := parseRunOptions([]string{"--node-name=n", "--fence-bound=20s"}, env(nil), io.Discard)
	want := "coordinator: --fence-bound (20s) must be 0 (never) or at least 29.7s: max(--isolation-timeout (5s), apiserver check period + timeout (15s)) + --fence-after (10s) + 2 x fence check interval (1s) + fence action (0s) + margin (2.7s)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	_, err = parseRunOptions([]string{"--node-name=n", "--gossip-profile=fast", "--fence-after=2s", "--fence-action=command",
		"--fence-command=/bin/true", "--fence-command-timeout=2s", "--fence-bound=10s"}, env(nil), io.Discard)
	if err == nil {
		t.Fatalf("a 10s bound with the default 15s apiserver check was accepted")
	}
	o, err := parseRunOptions([]string{"--node-name=n", "--gossip-profile=fast", "--fence-after=2s", "--fence-action=command",
		"--fence-command=/bin/true", "--fence-command-timeout=2s", "--fence-bound=24s"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// 15 + 2 + 2 + 2 = 21 s, margin 2.1 s.
	if got := o.fenceTerms().MinBound(); got != 23100*time.Millisecond {
		t.Errorf("MinBound() = %s, want 23.1s", got)
	}
}

// TestParseRunOptions_httpAuth: --http-auth=kubernetes is accepted where
// there is an API to ask: a kubeconfig, or in a pod.
func TestParseRunOptions_httpAuth(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"kubeconfig", []string{"--node-name=n", "--http-auth=kubernetes", "--kubeconfig=/etc/kubeconfig"}, nil},
		{"in a pod", []string{"--node-name=n", "--http-auth=kubernetes"}, map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseRunOptions(tc.args, env(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if o.httpAuth.Mode != "kubernetes" || o.httpAuth.AllowTTL != 5*time.Minute || o.httpAuth.DenyTTL != time.Minute {
				t.Errorf("httpAuth = %+v", o.httpAuth)
			}
		})
	}
}
