package main

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/haagent/haagent/agent/probe"
)

// FuzzConfigFile feeds arbitrary bytes to the config-file reader and the
// checks parser: they must return an error or settings, never panic.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte("gossip-profile: fast\njoin: [10.0.0.1, 10.0.0.2:7000]\nchecks: []\n"))
	f.Add([]byte("checks:\n- name: kubelet\n  httpGet: {port: 10248, path: /healthz}\n  periodSeconds: 2\n"))
	f.Add([]byte("probe-interval: [\n"))
	f.Add([]byte("zone: {a: b}\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o := defaultRunOptions()
		fs := pflag.NewFlagSet("fuzz", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o.addFlags(fs)
		sections, err := applyConfigFile(fs, "fuzz.yaml", data, map[string]bool{})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config file fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if raw, ok := sections["checks"]; ok {
			checks, err := probe.ParseChecks(append(append([]byte(`{"checks":`), raw...), '}'))
			if err == nil {
				o.probe.Checks = checks
				_ = o.probe.Validate()
			}
		}
		_ = o.gossip.Validate()
	})
}
