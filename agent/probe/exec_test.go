//go:build unix

package probe

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExec(t *testing.T) {
	tests := []struct {
		name       string
		command    []string
		timeout    time.Duration
		wantOK     bool
		wantReason string
	}{
		{name: "exit 0", command: []string{"sh", "-c", "exit 0"}, wantOK: true},
		{name: "exit 1", command: []string{"sh", "-c", "exit 1"}, wantReason: "exit status 1"},
		{
			name:       "exit 3 with output",
			command:    []string{"sh", "-c", "echo 'disk full'; echo second line; exit 3"},
			wantReason: "exit status 3: disk full",
		},
		{
			name:       "stderr in reason",
			command:    []string{"sh", "-c", "echo oops >&2; exit 1"},
			wantReason: "exit status 1: oops",
		},
		{
			name:       "long output is cut",
			command:    []string{"sh", "-c", "printf '%0300d' 0; exit 1"},
			wantReason: "exit status 1: 000",
		},
		{
			name:       "sleep 10 times out",
			command:    []string{"sh", "-c", "sleep 10"},
			timeout:    shortTimeout,
			wantReason: reasonTimedOut,
		},
		{
			name:       "missing binary",
			command:    []string{"/nonexistent/haagent-check"},
			wantReason: `fork/exec /nonexistent/haagent-check: no such file or directory`,
		},
		{
			name:       "not in PATH",
			command:    []string{"haagent-no-such-command"},
			wantReason: `exec: "haagent-no-such-command": executable file not found`,
		},
		{
			// The leftover child keeps the output pipe open; the result stands anyway.
			name:    "background child left behind",
			command: []string{"sh", "-c", "sleep 3 & exit 0"},
			wantOK:  true,
		},
	}
	p := newProber(nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = generousTimeout
			}
			start := time.Now()
			got := runCheck(t, p, Check{Name: "exec", Exec: &ExecAction{Command: tc.command}}, timeout)
			checkResult(t, got, tc.wantOK, tc.wantReason)
			// A timeout must end the run promptly, not when the command would have.
			if elapsed := time.Since(start); tc.timeout != 0 && elapsed > 5*time.Second {
				t.Fatalf("run took %s after a %s timeout", elapsed, tc.timeout)
			}
		})
	}
}

// TestExec_killsProcessGroup shows that a timeout kills the shell's child too, not only the
// shell: the child is in the check's process group.
func TestExec_killsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	script := "sleep 30 & echo $! > " + pidFile + "; wait"
	p := newProber(nil)

	// The timeout leaves the shell ample time to start its child and write the pid file;
	// without them the test proves nothing and fails below.
	got := runCheck(t, p, Check{Name: "exec", Exec: &ExecAction{Command: []string{"sh", "-c", script}}}, 3*time.Second)
	checkResult(t, got, false, reasonTimedOut)

	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the shell never started its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file %q: %v", data, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	deadline := time.Now().Add(generousTimeout)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child process %d of the shell is still running after the check timed out", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processGone reports whether pid has exited: no such process, or a zombie nobody reaped
// yet (in a container, PID 1 may not reap orphans).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}
