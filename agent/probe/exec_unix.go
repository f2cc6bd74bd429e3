//go:build unix

package probe

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"time"

	"github.com/haagent/haagent/internal/command"
)

// execWaitDelay bounds how long a finished or killed command may keep its output open through
// a process that left its group; after it the pipe is closed and the result stands.
const execWaitDelay = time.Second

// maxOutputBytes is how much of a command's output is kept for the failure reason.
const maxOutputBytes = 512

// execCheck runs argv in a process group of its own. When ctx ends first, the whole group
// is killed, so a shell's children die with it instead of piling up on every timeout.
func execCheck(ctx context.Context, argv []string) Result {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out := &command.CappedBuffer{Max: maxOutputBytes}
	cmd.Stdout = out
	cmd.Stderr = out
	command.OwnProcessGroup(cmd)
	cmd.WaitDelay = execWaitDelay
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return failure("%s", describeErr(ctx, ctx.Err()))
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay with a clean exit: a leftover child held the output open.
		return success()
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		// Could not start: missing binary, permissions. A failing check, not a crash.
		return failure("%v", err)
	}
	reason := exitErr.ProcessState.String() // "exit status 1" or "signal: killed"
	if line := firstLine(out.String()); line != "" {
		reason += ": " + line
	}
	return failure("%s", reason)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}
