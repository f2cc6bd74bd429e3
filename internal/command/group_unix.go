//go:build unix

package command

import (
	"os/exec"
	"syscall"
)

// OwnProcessGroup makes cmd the leader of a new process group, killed as a
// whole when its context ends.
func OwnProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// A negative pid names the process group, whose id is the leader's pid.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
