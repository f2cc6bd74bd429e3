package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/gossip"
)

// These tests run real haagent processes that gossip over UDP and TCP on
// loopback addresses 127.x.y.z (all of 127/8 is loopback on Linux), with no
// Kubernetes API: discovery by --join.

var buildOnce struct {
	sync.Once
	path string
	err  error
}

// TestMain removes the binary that haagentBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildOnce.path != "" {
		_ = os.RemoveAll(filepath.Dir(buildOnce.path))
	}
	os.Exit(code)
}

func haagentBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "haagent-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "haagent")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

type agentProc struct {
	name string
	ip   string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan error
}

func (a *agentProc) url() string { return "http://" + a.ip + ":9750" }

func startProc(t *testing.T, bin, name, ip, cfg string, join string) *agentProc {
	t.Helper()
	args := []string{"run", "--config", cfg, "--node-name", name, "--bind-addr", ip, "--advertise-addr", ip,
		"--http-addr", ip + ":9750", "--gossip-profile", "fast", "--log-format", "console", "--leave-timeout", "3s"}
	if join != "" {
		args = append(args, "--join", join)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{name: name, ip: ip, cmd: cmd, log: &log, done: make(chan error, 1)}
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-a.done
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", name, log.String())
		}
	})
	return a
}

func members(a *agentProc) (map[string]gossip.Member, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	body, err := fetchMembers(ctx, a.url()+"/members", "")
	if err != nil {
		return nil, err
	}
	var resp api.MembersResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, err
	}
	out := map[string]gossip.Member{}
	for _, m := range resp.Members {
		out[m.Name] = m
	}
	return out, nil
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stateEverywhere waits until every observer reports name in state.
func stateEverywhere(t *testing.T, observers []*agentProc, name string, state gossip.State, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%s to be %s everywhere", name, state), func() error {
		for _, o := range observers {
			ms, err := members(o)
			if err != nil {
				return err
			}
			if m, ok := ms[name]; !ok || m.State != state {
				return fmt.Errorf("%s sees %s as %v", o.name, name, m.State)
			}
		}
		return nil
	})
}

func TestProcesses_killedIsDeadStoppedIsLeft(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real agent processes")
	}
	bin := haagentBinary(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	// No node checks: these nodes have no kubelet; they are always ready.
	if err := os.WriteFile(cfg, []byte("checks: []\nrejoin-interval: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A random 127.x.y.0/24 keeps concurrent runs apart.
	base := fmt.Sprintf("127.%d.%d.", 1+rand.N(250), 1+rand.N(250))
	var procs []*agentProc
	for i := 1; i <= 4; i++ {
		join := ""
		if i > 1 {
			join = base + "1:7946"
		}
		procs = append(procs, startProc(t, bin, fmt.Sprintf("node-%d", i), fmt.Sprintf("%s%d", base, i), cfg, join))
	}
	eventually(t, 30*time.Second, "4 alive members everywhere", func() error {
		for _, p := range procs {
			ms, err := members(p)
			if err != nil {
				return err
			}
			alive := 0
			for _, m := range ms {
				if m.State == gossip.StateAlive && m.Meta.Ready {
					alive++
				}
			}
			if alive != 4 {
				return fmt.Errorf("%s sees %d alive and ready", p.name, alive)
			}
		}
		return nil
	})

	// SIGKILL: no leave, so the group must find out by probing.
	if err := procs[3].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	stateEverywhere(t, procs[:3], "node-4", gossip.StateDead, 30*time.Second)

	out, err := exec.Command(bin, "members", "--agent", procs[0].url()).CombinedOutput()
	if err != nil {
		t.Fatalf("haagent members: %v\n%s", err, out)
	}
	if !tableHas(string(out), "node-4", "dead") || !tableHas(string(out), "node-1", "alive") {
		t.Fatalf("haagent members output does not show node-4 dead:\n%s", out)
	}

	// SIGTERM: a graceful leave, reported as left, and a clean exit.
	if err := procs[2].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-procs[2].done:
		procs[2].done <- err
		if err != nil {
			t.Fatalf("node-3 exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("node-3 did not exit within 15s of SIGTERM")
	}
	stateEverywhere(t, procs[:2], "node-3", gossip.StateLeft, 15*time.Second)

	out, err = exec.Command(bin, "members", "--agent", procs[1].url(), "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("haagent members -o json: %v\n%s", err, out)
	}
	var resp api.MembersResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.Self != "node-2" || len(resp.Members) != 4 {
		t.Fatalf("haagent members -o json = %s (%v)", out, err)
	}
}

// tableHas reports whether a row of the table starts with name and has
// state in its STATE column.
func tableHas(table, name, state string) bool {
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, name+" ") {
			f := strings.Fields(strings.TrimPrefix(line, name))
			return len(f) >= 2 && f[1] == state
		}
	}
	return false
}

func TestProcesses_badConfigStopsAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real agent processes")
	}
	bin := haagentBinary(t)
	ring := filepath.Join(t.TempDir(), "keyring")
	if err := os.WriteFile(ring, []byte("bm90IGEga2V5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--node-name", "n", "--keyring-file", ring, "--http-addr", "127.0.0.1:0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() == 0 {
		t.Fatalf("agent with a bad keyring did not fail: %v\n%s", err, out)
	}
	if want := "gossip: --keyring-file " + ring + " line 1: key is 9 bytes, must be 16, 24 or 32"; !strings.Contains(string(out), want) {
		t.Fatalf("output does not name the key problem %q:\n%s", want, out)
	}
}
