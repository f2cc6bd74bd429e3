package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/haagent/haagent/internal/version"
)

// haagent runs the command line in-process and returns the exit code and
// what it wrote.
func haagent(t *testing.T, getenv func(string) string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if getenv == nil {
		getenv = env(nil)
	}
	var out, errOut bytes.Buffer
	code = dispatch(args, getenv, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelp_onStdout(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"}, {"help", "run"},
		{"run", "-h"}, {"run", "--help"}, {"members", "-h"}, {"report", "-h"}, {"version", "-h"}, {"completion", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := haagent(t, nil, args...)
			if code != 0 || stderr != "" || !strings.Contains(stdout, "Usage:") {
				t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
			}
		})
	}
}

func TestHelp_flagsSpelledWithTwoDashes(t *testing.T) {
	_, stdout, _ := haagent(t, nil, "run", "-h")
	for _, want := range []string{
		"--fence-after duration", "--join strings", "--admission ", "--kube-api-qps float", "--gossip-port int",
		"--fence-command string", "--config string", "(default 10s)", "(env NODE_NAME)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("haagent run -h lacks %q", want)
		}
	}
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "-") && !strings.HasPrefix(f[0], "--") && f[0] != "-h," {
			t.Errorf("single-dash flag in the help: %q", line)
		}
	}
	// A zero default is not shown.
	if strings.Contains(stdout, "(default 0s)") || strings.Contains(stdout, "(default 0)") {
		t.Errorf("the help shows zero defaults:\n%s", stdout)
	}
	_, stdout, _ = haagent(t, nil, "report", "-h")
	for _, want := range []string{"--kubeconfig string", "--context string", "-o, --output string", "--no-headers", "--since duration", "--replicas int"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("haagent report -h lacks %q", want)
		}
	}
}

// Bad usage is one short line on stderr that names the problem and ends
// with the way to the help, and exit code 2; nothing on stdout.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--bogus"}, "haagent run: unknown flag: --bogus (see 'haagent run -h')"},
		{[]string{"run", "-node-name=n"}, "haagent run: unknown shorthand flag: 'n' in -node-name=n (see 'haagent run -h')"},
		{[]string{"run", "--node-name=n", "--fence-after=x"},
			`haagent run: invalid argument "x" for "--fence-after" flag: time: invalid duration "x" (see 'haagent run -h')`},
		{[]string{"run", "--node-name=n", "--gossip-port=many"},
			`haagent run: invalid argument "many" for "--gossip-port" flag: strconv.ParseInt: parsing "many": invalid syntax (see 'haagent run -h')`},
		{[]string{"run", "--node-name=n", "--admission=maybe"},
			`haagent run: invalid argument "maybe" for "--admission" flag: strconv.ParseBool: parsing "maybe": invalid syntax (see 'haagent run -h')`},
		{[]string{"run", "--node-name=n", "extra"}, `haagent run: accepts no arguments, got ["extra"] (see 'haagent run -h')`},
		{[]string{"members", "extra-arg"}, `haagent members: accepts no arguments, got ["extra-arg"] (see 'haagent members -h')`},
		{[]string{"members", "--timeout=soon"},
			`haagent members: invalid argument "soon" for "--timeout" flag: time: invalid duration "soon" (see 'haagent members -h')`},
		{[]string{"members", "-o", "xml"}, `haagent members: --output ("xml") must be one of wide, json, yaml, kyaml, name, jsonpath, jsonpath-as-json, jsonpath-file (see 'haagent members -h')`},
		{[]string{"report", "a", "b"}, `haagent report: accepts no arguments, got ["a" "b"] (see 'haagent report -h')`},
		{[]string{"report", "--since=0s"}, `haagent report: --since (0s) must be positive (see 'haagent report -h')`},
		{[]string{"report", "--replicas=3", "--min-available=4"}, `haagent report: --min-available (4) must be between 1 and --replicas (3) (see 'haagent report -h')`},
		{[]string{"report", "--min-available=2"}, `haagent report: --min-available needs --replicas (see 'haagent report -h')`},
		{[]string{"version", "--bogus"}, "haagent version: unknown flag: --bogus (see 'haagent version -h')"},
		{[]string{"version", "extra"}, `haagent version: accepts no arguments, got ["extra"] (see 'haagent version -h')`},
		{[]string{"version", "-o", "xml"}, `haagent version: --output ("xml") must be json or yaml (see 'haagent version -h')`},
		{[]string{"bogus"}, `haagent: unknown command "bogus" (see 'haagent -h')`},
		{[]string{"membrs"}, `haagent: unknown command "membrs"; did you mean "members"? (see 'haagent -h')`},
		{[]string{"--bogus"}, "haagent: unknown flag: --bogus (see 'haagent -h')"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := haagent(t, nil, tc.args...)
			if code != 2 || stdout != "" || stderr != tc.want+"\n" {
				t.Fatalf("exit %d, stdout %q\nstderr %q\nwant   %q", code, stdout, stderr, tc.want+"\n")
			}
		})
	}
}

func TestConfigErrors_exit2WithoutHint(t *testing.T) {
	code, stdout, stderr := haagent(t, nil, "run", "--node-name=n", "--probe-timeout=2s")
	want := "haagent run: gossip: --probe-timeout (2s) must be less than --probe-interval (200ms) (auto profile, band up_to_1000)\n"
	if code != 2 || stdout != "" || stderr != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 2, %q", code, stdout, stderr, want)
	}
}

// The config file's keys are the flags of haagent run, not cobra's --help.
func TestConfigErrors_helpIsNoSetting(t *testing.T) {
	cfg := writeFile(t, "help: true\n")
	code, stdout, stderr := haagent(t, nil, "run", "--node-name=n", "--config="+cfg)
	want := "haagent run: config file " + cfg + `: unknown setting "help" (settings are the flag names of ` + "`haagent run -h`)\n"
	if code != 2 || stdout != "" || stderr != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 2, %q", code, stdout, stderr, want)
	}
}

func TestNoCommand_usageOnStderr(t *testing.T) {
	code, stdout, stderr := haagent(t, nil)
	if code != 2 || stdout != "" || !strings.Contains(stderr, "Available Commands:") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, stdout, stderr := haagent(t, nil, args...)
		if code != 0 || stderr != "" || stdout != version.String()+"\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	for _, format := range []string{"json", "yaml"} {
		code, stdout, stderr := haagent(t, nil, "version", "-o", format)
		if code != 0 || stderr != "" {
			t.Fatalf("-o %s: exit %d, stderr %q", format, code, stderr)
		}
		var got versionInfo
		var err error
		if format == "json" {
			err = json.Unmarshal([]byte(stdout), &got)
		} else {
			err = yaml.UnmarshalStrict([]byte(stdout), &got)
		}
		if err != nil || got != currentVersion() || got.Version == "" || got.GoVersion == "" || got.Platform == "" {
			t.Errorf("-o %s printed %q: %+v, %v; want %+v", format, stdout, got, err, currentVersion())
		}
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, stdout, stderr := haagent(t, nil, "completion", shell)
		if code != 0 || stderr != "" || !strings.Contains(stdout, "haagent") || len(stdout) < 1000 {
			t.Errorf("completion %s: exit %d, stderr %q, %d bytes", shell, code, stderr, len(stdout))
		}
	}
	// The values of -o complete.
	code, stdout, _ := haagent(t, nil, "__complete", "members", "-o", "")
	if code != 0 || !strings.Contains(stdout, "\nyaml\n") || !strings.Contains(stdout, "wide\n") {
		t.Errorf("completion of -o: exit %d:\n%s", code, stdout)
	}
}

// Every spelling that the manifests, the Helm chart and the test harness
// use still parses: --flag=value, --flag value, repeated lists and a
// boolean alone.
func TestParseRunOptions_spellings(t *testing.T) {
	o, err := parseRunOptions([]string{
		"--node-name=n", "--bind-addr", "127.0.0.1", "--gossip-port=7000", "--join=a,b", "--join", "c",
		"--evict-dry-run", "--admission=false", "--fence-command=/bin/echo fence", "--probe-interval=2s",
	}, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.gossip.BindAddr != "127.0.0.1" || o.gossip.BindPort != 7000 || strings.Join(o.join, " ") != "a b c" ||
		!o.evict.DryRun || o.admission || strings.Join(o.fence.Command, " ") != "/bin/echo fence" || o.gossip.ProbeInterval.String() != "2s" {
		t.Fatalf("options: %+v", o)
	}
}
