package gossip

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/haagent/haagent/internal/metricstest"
)

func TestAutoProfile_bands(t *testing.T) {
	fast := profiles["fast"]
	cases := []struct {
		n        int
		band     string
		interval time.Duration
	}{
		{-1, "above_2500", 500 * time.Millisecond},
		{0, "above_2500", 500 * time.Millisecond}, // unknown: the slowest
		{1, "up_to_1000", 200 * time.Millisecond},
		{20, "up_to_1000", 200 * time.Millisecond},
		{100, "up_to_1000", 200 * time.Millisecond},
		{1000, "up_to_1000", 200 * time.Millisecond},
		{1001, "up_to_2500", 300 * time.Millisecond},
		{2500, "up_to_2500", 300 * time.Millisecond},
		{2501, "above_2500", 500 * time.Millisecond},
		{5000, "above_2500", 500 * time.Millisecond},
		{100000, "above_2500", 500 * time.Millisecond},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		c.ExpectedMembers = tc.n
		if got := c.Band(); got != tc.band {
			t.Errorf("n=%d: Band() = %q, want %q", tc.n, got, tc.band)
		}
		p := c.Effective()
		if p.ProbeInterval != tc.interval {
			t.Errorf("n=%d: probe interval %s, want %s", tc.n, p.ProbeInterval, tc.interval)
		}
		if tc.band == "up_to_1000" && p != fast {
			t.Errorf("n=%d: auto = %+v, want exactly fast %+v", tc.n, p, fast)
		}
	}
}

// TestAutoBands_table checks the one table the rule is tuned in: bands in
// increasing order, the last without a limit, every band valid on its
// own, fast up to at least 100 members, and every timing at least the
// previous band's, so that the last band, taken when the size is unknown,
// is the slowest to suspect anyone.
func TestAutoBands_table(t *testing.T) {
	if autoBands[0].Profile != profiles["fast"] || autoBands[0].MaxMembers < 100 {
		t.Errorf("first band %+v: want the fast profile up to at least 100 members", autoBands[0])
	}
	if last := autoBands[len(autoBands)-1]; last.MaxMembers != 0 {
		t.Errorf("last band %s has a limit (%d); want none", last.Name, last.MaxMembers)
	}
	for i, b := range autoBands {
		if err := validateProfile(b.Profile); err != nil {
			t.Errorf("band %s: %v", b.Name, err)
		}
		if b.Profile.IsolationTimeout != 10*b.ProbeInterval || 2*b.ProbeTimeout != b.ProbeInterval {
			t.Errorf("band %s: isolation timeout %s and probe timeout %s, want 10 and 1/2 probe intervals (%s)", b.Name, b.Profile.IsolationTimeout, b.ProbeTimeout, b.ProbeInterval)
		}
		if i == 0 {
			continue
		}
		prev := autoBands[i-1]
		if b.MaxMembers != 0 && b.MaxMembers <= prev.MaxMembers {
			t.Errorf("band %s: MaxMembers %d not above band %s's %d", b.Name, b.MaxMembers, prev.Name, prev.MaxMembers)
		}
		if b.ProbeInterval < prev.ProbeInterval || b.ProbeTimeout < prev.ProbeTimeout || b.SuspicionMult < prev.SuspicionMult ||
			b.GossipInterval < prev.GossipInterval || b.PushPullInterval < prev.PushPullInterval ||
			b.TCPTimeout < prev.TCPTimeout || b.Profile.IsolationTimeout < prev.Profile.IsolationTimeout {
			t.Errorf("band %s %+v is faster somewhere than band %s %+v", b.Name, b.Profile, prev.Name, prev.Profile)
		}
	}
}

func TestAutoProfile_overridesWin(t *testing.T) {
	c := DefaultConfig()
	c.NodeName = "n1"
	c.ExpectedMembers = 5000
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 5
	c.GossipInterval = 50 * time.Millisecond
	c.IsolationTimeout = 3 * time.Second
	p := c.Effective()
	want := AutoProfile(5000)
	want.ProbeInterval, want.ProbeTimeout, want.SuspicionMult = 200*time.Millisecond, 100*time.Millisecond, 5
	want.GossipInterval, want.IsolationTimeout = 50*time.Millisecond, 3*time.Second
	if p != want {
		t.Errorf("Effective() = %+v, want %+v", p, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

func TestAutoProfile_validate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"unknown size", func(*Config) {}, ""},
		{"small group", func(c *Config) { c.ExpectedMembers = 20 }, ""},
		{"largest size", func(c *Config) { c.ExpectedMembers = 100000 }, ""},
		{"negative size", func(c *Config) { c.ExpectedMembers = -1 }, "gossip: --expected-members (-1) must be between 0 (count at start) and 100000"},
		{"size too large", func(c *Config) { c.ExpectedMembers = 100001 }, "gossip: --expected-members (100001) must be between 0 (count at start) and 100000"},
		// Before the group is counted, an override that only some bands
		// break fails at once, naming the band.
		{"interval below a band's timeout, size unknown", func(c *Config) { c.ProbeInterval = 200 * time.Millisecond },
			"gossip: --probe-timeout (250ms) must be less than --probe-interval (200ms) (auto profile, band above_2500)"},
		{"interval below a band's timeout, small group", func(c *Config) {
			c.ProbeInterval = 200 * time.Millisecond
			c.ExpectedMembers = 20
		}, ""},
		{"isolation below a band's 4 intervals", func(c *Config) { c.IsolationTimeout = time.Second },
			"gossip: --isolation-timeout (1s) must be between 4 x --probe-interval (1.2s) and 5m0s (auto profile, band up_to_2500)"},
		{"push/pull override too long for every band", func(c *Config) { c.PushPullInterval = 11 * time.Minute },
			"gossip: --push-pull-interval (11m0s) must be between 1s and 10m0s (auto profile, band up_to_1000)"},
		{"timeout above every band's interval", func(c *Config) { c.ProbeTimeout = time.Second },
			"gossip: --probe-timeout (1s) must be less than --probe-interval (200ms) (auto profile, band up_to_1000)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.NodeName = "n1"
			tc.mod(&c)
			got := ""
			if err := c.Validate(); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestConfig_isolationBound: the fence bound is built on the longest
// isolation timeout an agent of the group may use. With auto, agents that
// counted the group at different times may be in different bands, so it
// is the largest band's whatever this agent's size.
func TestConfig_isolationBound(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		want time.Duration
	}{
		{"auto, unknown size", func(*Config) {}, 5 * time.Second},
		{"auto, small group", func(c *Config) { c.ExpectedMembers = 20 }, 5 * time.Second},
		{"auto, explicit isolation timeout", func(c *Config) { c.ExpectedMembers = 20; c.IsolationTimeout = 2 * time.Second }, 2 * time.Second},
		{"auto, long probe interval", func(c *Config) { c.ProbeInterval = 2 * time.Second }, 8 * time.Second},
		{"fast", func(c *Config) { c.ProfileName = "fast" }, 2 * time.Second},
		{"default", func(c *Config) { c.ProfileName = "default" }, 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			if got := c.IsolationBound(); got != tc.want {
				t.Errorf("IsolationBound() = %s, want %s", got, tc.want)
			}
			if eff := c.Effective().IsolationTimeout; eff > c.IsolationBound() {
				t.Errorf("isolation timeout in force %s exceeds the bound %s", eff, c.IsolationBound())
			}
		})
	}
}

func TestProfileNames_listsAuto(t *testing.T) {
	if got := strings.Join(ProfileNames(), ","); got != "auto,default,fast" {
		t.Errorf("ProfileNames() = %s", got)
	}
	if _, ok := LookupProfile(ProfileAuto); ok {
		t.Errorf("LookupProfile(auto) found fixed timings; auto has none without a size")
	}
	if DefaultConfig().ProfileName != ProfileAuto {
		t.Errorf("default profile %q, want auto", DefaultConfig().ProfileName)
	}
}

func TestTimingMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := DefaultConfig()
	c.ExpectedMembers = 1500
	if err := registerTimingMetrics(reg, c, c.Effective()); err != nil {
		t.Fatal(err)
	}
	metricstest.Check(t, reg)
	want := `
# HELP haagent_gossip_profile_info Always 1: the gossip profile and, with the auto profile, the band of group sizes this agent chose its timings from at start.
# TYPE haagent_gossip_profile_info gauge
haagent_gossip_profile_info{band="up_to_2500",profile="auto"} 1
# HELP haagent_gossip_suspicion_multiplier Suspicion multiplier in force: the suspicion timeout is this × max(1, log10(members)) × the probe interval.
# TYPE haagent_gossip_suspicion_multiplier gauge
haagent_gossip_suspicion_multiplier 4
# HELP haagent_gossip_timing_seconds Gossip timings in force, fixed at start, by setting.
# TYPE haagent_gossip_timing_seconds gauge
haagent_gossip_timing_seconds{setting="gossip_interval"} 0.15
haagent_gossip_timing_seconds{setting="isolation_timeout"} 3
haagent_gossip_timing_seconds{setting="probe_interval"} 0.3
haagent_gossip_timing_seconds{setting="probe_timeout"} 0.15
haagent_gossip_timing_seconds{setting="push_pull_interval"} 30
haagent_gossip_timing_seconds{setting="tcp_timeout"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
