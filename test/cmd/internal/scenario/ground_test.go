package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseGround(t *testing.T) {
	for _, s := range []string{"fake", "hollow"} {
		g, err := ParseGround("--ground", s)
		if err != nil || string(g) != s {
			t.Errorf("ParseGround(%q) = %q, %v", s, g, err)
		}
	}
	for _, s := range []string{"", "Hollow", "kind", "fake "} {
		_, err := ParseGround("--ground", s)
		if err == nil {
			t.Errorf("ParseGround(%q) accepted", s)
			continue
		}
		for _, want := range []string{"--ground", "fake", "hollow"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("ParseGround(%q) error %q does not name %q", s, err, want)
			}
		}
	}
}

func TestConfigValidateGround(t *testing.T) {
	base := Config{BinDir: "/bin", Nodes: 5, Haagent: "haagent", Deploy: "deploy"}
	for _, tc := range []struct {
		name   string
		adjust func(*Config)
		want   string // "" accepted, else a piece of the error
	}{
		{"zero ground is fake", func(*Config) {}, ""},
		{"fake tuned", func(c *Config) { c.Ground, c.Timings = Fake, Tuned }, ""},
		{"fake audit log", func(c *Config) { c.AuditLog = true }, ""},
		{"hollow stock", func(c *Config) { c.Ground = Hollow }, ""},
		{"hollow without agents", func(c *Config) { c.Ground, c.Haagent, c.Deploy = Hollow, "", "" }, ""},
		{"unknown ground", func(c *Config) { c.Ground = "kind" }, `unknown ground "kind"`},
		{"hollow tuned", func(c *Config) { c.Ground, c.Timings = Hollow, Tuned }, "Lease every 10 s"},
		{"hollow prometheus", func(c *Config) {
			c.Ground, c.PrometheusBin, c.RuleFile, c.RuleDivisor = Hollow, "/prom", "rules.yaml", 10
		}, "no Prometheus on the hollow ground"},
		{"hollow audit log", func(c *Config) { c.Ground, c.AuditLog = Hollow, true }, "no API-cost audit log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.adjust(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestCheckHollowHost(t *testing.T) {
	dir := t.TempDir()
	c := Config{BinDir: dir, Nodes: 3, Ground: Hollow}
	defer func(f func() int) { geteuid = f }(geteuid)

	geteuid = func() int { return 1000 }
	if err := c.checkHollowHost(); err == nil || !strings.Contains(err.Error(), "needs root") {
		t.Errorf("not root: checkHollowHost() = %v, want a root error", err)
	}
	geteuid = func() int { return 0 }
	if err := c.checkHollowHost(); err == nil || !strings.Contains(err.Error(), "kubemark") {
		t.Errorf("no kubemark: checkHollowHost() = %v, want a kubemark error", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kubemark"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.checkHollowHost(); err != nil {
		t.Errorf("root and kubemark: checkHollowHost() = %v", err)
	}
}

func TestGroundDescriptions(t *testing.T) {
	if Ground("").Describe() != Fake.Describe() || Ground("").CrashDescription() != Fake.CrashDescription() {
		t.Error("the zero ground is not described as fake")
	}
	if !strings.Contains(Hollow.CrashDescription(), "link goes down") {
		t.Errorf("hollow crash: %q", Hollow.CrashDescription())
	}
}
