package cluster

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

func TestNetworkConfig_Validate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*NetworkConfig)
		want   string
	}{
		{"default", func(*NetworkConfig) {}, ""},
		{"with apiserver", func(c *NetworkConfig) { c.APIServer = "127.0.0.1:6443" }, ""},
		{"no run ID", func(c *NetworkConfig) { c.RunID = "" },
			`cluster: network: RunID "" must be non-empty and made of letters, digits, '-' and '_'`},
		{"run ID with a slash", func(c *NetworkConfig) { c.RunID = "a/b" },
			`cluster: network: RunID "a/b" must be non-empty and made of letters, digits, '-' and '_'`},
		{"run ID too long", func(c *NetworkConfig) { c.RunID = strings.Repeat("a", 65) },
			`cluster: network: RunID "` + strings.Repeat("a", 65) + `" is 65 characters, at most 64`},
		{"IPv6 prefix", func(c *NetworkConfig) { c.Prefix = netip.MustParsePrefix("fd00::/64") },
			"cluster: network: Prefix (fd00::/64) must be an IPv4 prefix"},
		{"no prefix", func(c *NetworkConfig) { c.Prefix = netip.Prefix{} },
			"cluster: network: Prefix (invalid Prefix) must be an IPv4 prefix"},
		{"prefix too small", func(c *NetworkConfig) { c.Prefix = netip.MustParsePrefix("10.1.2.0/31") },
			"cluster: network: Prefix (10.1.2.0/31) must be /30 or shorter, to hold the hub and a node"},
		{"host bits", func(c *NetworkConfig) { c.Prefix = netip.MustParsePrefix("10.1.2.3/24") },
			"cluster: network: Prefix (10.1.2.3/24) has host bits set; use 10.1.2.0/24"},
		{"apiserver without port", func(c *NetworkConfig) { c.APIServer = "127.0.0.1" },
			`cluster: network: APIServer ("127.0.0.1") must be host:port: address 127.0.0.1: missing port in address`},
		{"port zero", func(c *NetworkConfig) { c.APIProxyBasePort = 0 },
			"cluster: network: APIProxyBasePort (0) must be between 1 and 65535"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultNetworkConfig("run-1")
			tc.modify(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNetwork_AddNode_badName(t *testing.T) {
	// The name is checked before anything is created.
	n := &Network{cfg: DefaultNetworkConfig("run-1")}
	for name, want := range map[string]string{
		"Node-1":                `cluster: network: node name "Node-1" must be a DNS label (lower-case letters, digits, '-'; at most 63)`,
		"node_1":                `cluster: network: node name "node_1" must be a DNS label (lower-case letters, digits, '-'; at most 63)`,
		"-a":                    `cluster: network: node name "-a" must be a DNS label (lower-case letters, digits, '-'; at most 63)`,
		strings.Repeat("a", 64): `cluster: network: node name "` + strings.Repeat("a", 64) + `" must be a DNS label (lower-case letters, digits, '-'; at most 63)`,
		"hub":                   `cluster: network: node name "hub" is the hub's`,
	} {
		if _, err := n.AddNode(name); err == nil || err.Error() != want {
			t.Errorf("AddNode(%q) = %v, want %q", name, err, want)
		}
	}
}

func TestAgentConfig_Validate_netns(t *testing.T) {
	c := DefaultAgentConfig("/bin/true")
	c.NodeName, c.IP, c.Dir = "node-1", netip.MustParseAddr("10.213.0.2"), t.TempDir()
	c.NetNS = "/run/netns/x"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	c.GID = 1234
	want := "cluster: agent node-1: GID (1234) must be 0 with NetNS: an agent in a namespace needs no source NAT"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Fatalf("Validate() = %v, want %q", err, want)
	}
}

func TestNewAgent_missingNetns(t *testing.T) {
	c := DefaultAgentConfig("/bin/true")
	c.NodeName, c.IP, c.Dir = "node-1", netip.MustParseAddr("10.213.0.2"), t.TempDir()
	c.NetNS = filepath.Join(t.TempDir(), "no-such-namespace")
	_, err := NewAgent(c)
	if err == nil || !strings.Contains(err.Error(), "cluster: agent node-1: network namespace: open "+c.NetNS) {
		t.Fatalf("NewAgent() = %v, want an error naming %s", err, c.NetNS)
	}
	ran := false
	err = doInNetns(c.NetNS, func() error { ran = true; return nil })
	if err == nil || ran {
		t.Fatalf("doInNetns with a missing namespace = %v, ran fn: %v; want an error, fn not run", err, ran)
	}
}

func TestNamespaceAgentChecks(t *testing.T) {
	checks := NamespaceAgentChecks()
	// kubemark serves /healthz on the kubelet port only: no 10248.
	if len(checks) != 2 || checks[0].Name != "kubelet" || checks[0].HTTPGet == nil ||
		checks[0].HTTPGet.Host != "127.0.0.1" || checks[0].HTTPGet.Port != hollowKubeletPort || checks[0].HTTPGet.Path != "/healthz" {
		t.Fatalf("NamespaceAgentChecks() = %+v, want the kubelet's /healthz at 127.0.0.1:%d first", checks, hollowKubeletPort)
	}
	if checks[1].Name != "apiserver" || checks[1].APIServer == nil {
		t.Fatalf("NamespaceAgentChecks()[1] = %+v, want the apiserver check", checks[1])
	}
}
