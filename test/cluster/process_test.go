package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcess_killTakesTheGroup(t *testing.T) {
	sp := newSpawner()
	defer sp.close()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	// The shell forks a sleep of its own: killing only the shell would leave
	// the grandchild running.
	p, err := startProcess(sp, "shell", "/bin/sh",
		[]string{"-c", "sleep 600 & echo $! > " + pidFile + "; echo started; wait"},
		filepath.Join(dir, "shell.log"))
	if err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		if data, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(data), "\n") {
			if _, err := fmt.Sscan(string(data), &child); err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if child == 0 {
		t.Fatal("child never started")
	}
	if done, _ := p.exited(); done {
		t.Fatal("shell exited early")
	}

	if err := p.kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{p.pid(), child} {
		if !waitGone(pid, 5*time.Second) {
			t.Errorf("pid %d still exists after kill", pid)
		}
	}
	tail, err := tailFile(p.logPath, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tail, "# /bin/sh -c") || !strings.HasSuffix(tail, "started") {
		t.Errorf("log tail = %q, want the command line and the output", tail)
	}
}

// waitGone waits for a PID to vanish. A grandchild is reparented to init,
// which reaps it a moment after it dies.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func TestTailFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("a\nb\nc\nd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		n    int
		want string
	}{
		{"fewer than the file", 2, "c\nd"},
		{"more than the file", 10, "a\nb\nc\nd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tailFile(path, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("tailFile(%d) = %q, want %q", tc.n, got, tc.want)
			}
		})
	}
}

func TestFreePorts_distinct(t *testing.T) {
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: want 5 distinct positive ports", ports)
		}
		seen[p] = true
	}
}
