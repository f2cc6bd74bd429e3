package main

import (
	"io"
	"strings"
	"testing"

	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

func TestParseFlagsGround(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want scenario.Ground
		err  string
	}{
		{"default", nil, nil, scenario.Fake, ""},
		{"flag", []string{"-ground", "hollow"}, nil, scenario.Hollow, ""},
		{"environment", nil, map[string]string{"HAAGENT_DEMO_GROUND": "hollow"}, scenario.Hollow, ""},
		{"flag over environment", []string{"-ground=fake"}, map[string]string{"HAAGENT_DEMO_GROUND": "hollow"}, scenario.Fake, ""},
		{"invalid", []string{"-ground", "kind"}, nil, "", `--ground ("kind") must be one of fake, hollow`},
		{"invalid environment", nil, map[string]string{"HAAGENT_DEMO_GROUND": "real"}, "", `--ground ("real") must be one of fake, hollow`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := map[string]string{"HAAGENT_CONTROL_PLANE_BIN": "/cp"}
			for k, v := range tc.env {
				e[k] = v
			}
			o, err := parseFlags(tc.args, env(e), io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseFlags(%v) = %v, want an error with %q", tc.args, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.ground != tc.want {
				t.Errorf("ground = %q, want %q", o.ground, tc.want)
			}
		})
	}
}
