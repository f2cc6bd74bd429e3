//go:build !unix

package command

import "os/exec"

// OwnProcessGroup does nothing without process groups: a timeout kills the
// command only, not its children. haagent runs on Linux nodes.
func OwnProcessGroup(*exec.Cmd) {}
