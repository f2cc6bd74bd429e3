package evict

import (
	"testing"
	"time"
)

func TestConfig_validate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"parallelism zero", func(c *Config) { c.Parallelism = 0 }, "evict: --evict-parallelism (0) must be between 1 and 64"},
		{"parallelism high", func(c *Config) { c.Parallelism = 65 }, "evict: --evict-parallelism (65) must be between 1 and 64"},
		{"cap zero", func(c *Config) { c.MaxPodsPerNode = 0 }, "evict: --evict-max-pods-per-node (0) must be between 1 and 10000"},
		{"grace negative", func(c *Config) { c.EvictionGracePeriod = -time.Second }, "evict: --eviction-grace-period (-1s) must be between 0s and 1h0m0s"},
		{"grace fraction", func(c *Config) { c.EvictionGracePeriod = 1500 * time.Millisecond }, "evict: --eviction-grace-period (1.5s) must be a whole number of seconds"},
		{"grace zero means pod's own", func(c *Config) { c.EvictionGracePeriod = 0 }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
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

func TestNew_rejectsInvalidConfigAndMissingDeps(t *testing.T) {
	c := DefaultConfig()
	c.Parallelism = 0
	if _, err := New(c, Deps{}); err == nil {
		t.Error("New accepted an invalid config")
	}
	if _, err := New(DefaultConfig(), Deps{}); err == nil {
		t.Error("New accepted missing dependencies")
	}
}
