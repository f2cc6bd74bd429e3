package cluster

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// fakeBinDir makes a directory with executable stand-ins for the components.
func fakeBinDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range components {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestControlPlaneConfig_Validate(t *testing.T) {
	bin := fakeBinDir(t)
	noExec := fakeBinDir(t)
	if err := os.Chmod(filepath.Join(noExec, APIServer), 0o644); err != nil {
		t.Fatal(err)
	}
	valid := func() ControlPlaneConfig {
		c := DefaultControlPlaneConfig()
		c.BinDir = bin
		return c
	}
	tests := []struct {
		name   string
		modify func(*ControlPlaneConfig)
		want   string
	}{
		{"default with bin dir", func(*ControlPlaneConfig) {}, ""},
		{"tuned flags", func(c *ControlPlaneConfig) {
			c.APIServerFlags = TunedAPIServerFlags()
			c.ControllerManagerFlags = TunedControllerManagerFlags()
		}, ""},
		{"no bin dir", func(c *ControlPlaneConfig) { c.BinDir = "" },
			"cluster: BinDir is empty; it must name the directory of the control-plane binaries (hack/build-control-plane.sh --print-dir)"},
		{"not executable", func(c *ControlPlaneConfig) { c.BinDir = noExec },
			"cluster: " + filepath.Join(noExec, APIServer) + " is not an executable file"},
		{"service range too small", func(c *ControlPlaneConfig) { c.ServiceCIDR = netip.MustParsePrefix("10.0.0.0/30") },
			"cluster: ServiceCIDR (10.0.0.0/30) must be an IPv4 prefix of /28 or larger"},
		{"no service range", func(c *ControlPlaneConfig) { c.ServiceCIDR = netip.Prefix{} },
			"cluster: ServiceCIDR (invalid Prefix) must be an IPv4 prefix of /28 or larger"},
		{"zero timeout", func(c *ControlPlaneConfig) { c.StartTimeout = 0 },
			"cluster: StartTimeout (0s) must be positive"},
		{"flag without dashes", func(c *ControlPlaneConfig) { c.ControllerManagerFlags = []string{"node-monitor-period=1s"} },
			`cluster: ControllerManagerFlags entry "node-monitor-period=1s" must start with --`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.modify(&c)
			assertErr(t, c.Validate(), tc.want)
		})
	}

	t.Run("missing binary", func(t *testing.T) {
		dir := t.TempDir()
		c := valid()
		c.BinDir = dir
		err := c.Validate()
		if err == nil {
			t.Fatal("want an error")
		}
		want := "cluster: BinDir (" + dir + ") has no etcd: "
		if got := err.Error(); len(got) < len(want) || got[:len(want)] != want {
			t.Errorf("error = %q, want prefix %q", got, want)
		}
	})
}

func TestFakeKubeletConfig_Validate(t *testing.T) {
	addr := NodeAddress{IP: netip.MustParseAddr("127.9.9.2"), PodCIDR: netip.MustParsePrefix("198.18.0.0/24")}
	tests := []struct {
		name   string
		modify func(*FakeKubeletConfig)
		want   string
	}{
		{"default", func(*FakeKubeletConfig) {}, ""},
		{"tuned", func(c *FakeKubeletConfig) {
			c.LeaseRenewInterval, c.StatusUpdateInterval = 2*time.Second, 2*time.Second
		}, ""},
		{"bad name", func(c *FakeKubeletConfig) { c.NodeName = "Node_1" },
			`cluster: NodeName ("Node_1") is not a valid node name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"no address", func(c *FakeKubeletConfig) { c.Address.IP = netip.Addr{} },
			"cluster: node node-1: Address.IP (invalid IP) must be an IPv4 address"},
		{"loopback pod range", func(c *FakeKubeletConfig) { c.Address.PodCIDR = netip.MustParsePrefix("127.1.0.0/24") },
			"cluster: node node-1: Address.PodCIDR (127.1.0.0/24) must not be loopback: EndpointSlices reject loopback pod IPs"},
		{"tiny pod range", func(c *FakeKubeletConfig) { c.Address.PodCIDR = netip.MustParsePrefix("198.18.0.0/31") },
			"cluster: node node-1: Address.PodCIDR (198.18.0.0/31) must be an IPv4 prefix of /30 or larger"},
		{"port zero", func(c *FakeKubeletConfig) { c.KubeletPort = 0 },
			"cluster: node node-1: KubeletPort (0) must be between 1 and 65535"},
		{"renew zero", func(c *FakeKubeletConfig) { c.LeaseRenewInterval = 0 },
			"cluster: node node-1: LeaseRenewInterval (0s) must be positive"},
		{"lease shorter than renewal", func(c *FakeKubeletConfig) { c.LeaseDuration = 5 * time.Second },
			"cluster: node node-1: LeaseDuration (5s) must be at least 1s and more than LeaseRenewInterval (10s)"},
		{"status zero", func(c *FakeKubeletConfig) { c.StatusUpdateInterval = 0 },
			"cluster: node node-1: StatusUpdateInterval (0s) must be positive"},
		{"no pods", func(c *FakeKubeletConfig) { c.MaxPods = 0 },
			"cluster: node node-1: MaxPods (0) must be at least 1"},
		{"no cpu", func(c *FakeKubeletConfig) { c.CPU = resource.Quantity{} },
			"cluster: node node-1: CPU (0) and Memory (8Gi) must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultFakeKubeletConfig("node-1", addr)
			tc.modify(&c)
			assertErr(t, c.Validate(), tc.want)
		})
	}
}

func assertErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want %q", want)
	case want != "" && err.Error() != want:
		t.Errorf("error = %q\n want %q", err.Error(), want)
	}
}
