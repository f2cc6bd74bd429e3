package gossip

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func TestConfigValidate(t *testing.T) {
	// The messages with numbers are those of the default profile; the
	// auto profile's have their own test.
	valid := func() Config {
		c := DefaultConfig()
		c.NodeName = "node-1"
		c.ProfileName = "default"
		return c
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"default is valid", func(*Config) {}, ""},
		{"auto is valid", func(c *Config) { c.ProfileName = "auto" }, ""},
		{"fast is valid", func(c *Config) { c.ProfileName = "fast" }, ""},
		{"node name required", func(c *Config) { c.NodeName = "" }, "gossip: --node-name is required (or set NODE_NAME)"},
		{"node name too long", func(c *Config) { c.NodeName = strings.Repeat("a", 254) }, "gossip: --node-name (254 bytes) must be at most 253 bytes"},
		{"zone too long", func(c *Config) { c.Zone = strings.Repeat("z", 64) }, "gossip: --zone (64 bytes) must be at most 63 bytes"},
		{"bind addr", func(c *Config) { c.BindAddr = "localhost" }, `gossip: --bind-addr ("localhost") must be an IP address`},
		{"port", func(c *Config) { c.BindPort = 70000 }, "gossip: --gossip-port (70000) must be between 0 and 65535"},
		{"advertise addr", func(c *Config) { c.AdvertiseAddr = "10.0.0" }, `gossip: --advertise-addr ("10.0.0") must be an IP address`},
		{"profile", func(c *Config) { c.ProfileName = "turbo" }, `gossip: --gossip-profile ("turbo") must be one of auto, default, fast`},
		{"probe interval too short", func(c *Config) { c.ProbeInterval = time.Millisecond }, "gossip: --probe-interval (1ms) must be between 10ms and 1m0s"},
		{"probe timeout not below interval", func(c *Config) { c.ProbeTimeout = 2 * time.Second }, "gossip: --probe-timeout (2s) must be less than --probe-interval (1s)"},
		{"probe timeout negative", func(c *Config) { c.ProbeTimeout = -time.Second }, "gossip: --probe-timeout (-1s) must be positive"},
		{"override interval below profile timeout", func(c *Config) { c.ProbeInterval = 300 * time.Millisecond }, "gossip: --probe-timeout (500ms) must be less than --probe-interval (300ms)"},
		{"suspicion mult", func(c *Config) { c.SuspicionMult = 21 }, "gossip: --suspicion-mult (21) must be between 1 and 20"},
		{"indirect checks", func(c *Config) { c.IndirectChecks = 17 }, "gossip: --indirect-checks (17) must be between 0 and 16"},
		{"gossip interval", func(c *Config) { c.GossipInterval = time.Minute }, "gossip: --gossip-interval (1m0s) must be between 10ms and 10s"},
		{"push/pull interval too short", func(c *Config) { c.PushPullInterval = 500 * time.Millisecond }, "gossip: --push-pull-interval (500ms) must be between 1s and 10m0s"},
		{"push/pull interval too long", func(c *Config) { c.PushPullInterval = time.Hour }, "gossip: --push-pull-interval (1h0m0s) must be between 1s and 10m0s"},
		{"push/pull interval negative", func(c *Config) { c.PushPullInterval = -time.Second }, "gossip: --push-pull-interval (-1s) must be between 1s and 10m0s"},
		{"isolation timeout below 4 probe intervals", func(c *Config) { c.IsolationTimeout = 3 * time.Second }, "gossip: --isolation-timeout (3s) must be between 4 x --probe-interval (4s) and 5m0s"},
		{"isolation timeout too long", func(c *Config) { c.IsolationTimeout = time.Hour }, "gossip: --isolation-timeout (1h0m0s) must be between 4 x --probe-interval (4s) and 5m0s"},
		{"rejoin interval", func(c *Config) { c.RejoinInterval = time.Millisecond }, "gossip: --rejoin-interval (1ms) must be 0 (off) or at least 1s"},
		{"leave timeout", func(c *Config) { c.LeaveTimeout = 0 }, "gossip: --leave-timeout (0s) must be between 100ms and 1m0s"},
		{"reclaim time", func(c *Config) { c.DeadNodeReclaimTime = -time.Second }, "gossip: --dead-node-reclaim-time (-1s) must not be negative"},
		{"cluster label", func(c *Config) { c.ClusterLabel = strings.Repeat("l", 256) }, "gossip: --cluster-label (256 bytes) must be at most 255 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mod(&c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfigEffective_overridesProfile(t *testing.T) {
	c := DefaultConfig()
	c.ProfileName = "fast"
	c.SuspicionMult = 6
	p := c.Effective()
	if p.ProbeInterval != 200*time.Millisecond || p.SuspicionMult != 6 {
		t.Fatalf("Effective() = %+v", p)
	}
}

func TestDetectionBound(t *testing.T) {
	c := DefaultConfig()
	c.ProfileName = "default"
	// 20 members, 1 s interval, ×4: 20 intervals for the round plus six
	// times the suspicion timeout of 4 × log10(20) s.
	got := c.DetectionBound(20)
	want := 20*time.Second + time.Duration(6*4*1.30103*float64(time.Second))
	if d := got - want; d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("DetectionBound(20) = %s, want %s", got, want)
	}
}

func TestConfig_isolationTimeoutFollowsTheProbeInterval(t *testing.T) {
	c := DefaultConfig()
	c.NodeName = "n1"
	c.ProfileName = "default"
	if got := c.Effective().IsolationTimeout; got != 5*time.Second {
		t.Errorf("default profile: isolation timeout %s, want 5s", got)
	}
	c.ProbeInterval = 2 * time.Second
	if got := c.Effective().IsolationTimeout; got != 8*time.Second {
		t.Errorf("--probe-interval 2s: isolation timeout %s, want 8s (4 probe intervals)", got)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("a longer probe interval alone is valid: %v", err)
	}
	c.IsolationTimeout = 20 * time.Second
	if got := c.Effective().IsolationTimeout; got != 20*time.Second {
		t.Errorf("explicit --isolation-timeout: %s, want 20s", got)
	}
}

// --push-pull-interval replaces the profile's base, whatever the profile
// or band, and reaches memberlist's configuration and the timing metric.
func TestConfig_pushPullOverride(t *testing.T) {
	for _, c := range []Config{
		{ProfileName: "fast"},
		{ProfileName: "default"},
		{ProfileName: ProfileAuto, ExpectedMembers: 20},
		{ProfileName: ProfileAuto, ExpectedMembers: 5000},
	} {
		c.PushPullInterval = 45 * time.Second
		if got := c.Effective().PushPullInterval; got != 45*time.Second {
			t.Errorf("%s/%d: push/pull interval in force %s, want 45s", c.ProfileName, c.ExpectedMembers, got)
		}
	}
	c := DefaultConfig()
	c.NodeName = "n1"
	c.PushPullInterval = 45 * time.Second
	reg := prometheus.NewRegistry()
	m, err := New(c, Deps{Logger: zap.NewNop(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.memberlistConfig(nil, 0).PushPullInterval; got != 45*time.Second {
		t.Errorf("memberlist's push/pull interval %s, want 45s", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "haagent_gossip_timing_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if l := mt.GetLabel(); len(l) == 1 && l[0].GetValue() == "push_pull_interval" {
				found = true
				if v := mt.GetGauge().GetValue(); v != 45 {
					t.Errorf("haagent_gossip_timing_seconds{setting=push_pull_interval} = %g, want 45", v)
				}
			}
		}
	}
	if !found {
		t.Error("haagent_gossip_timing_seconds{setting=push_pull_interval} not exported")
	}
}
