package command

import (
	"context"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCappedBuffer(t *testing.T) {
	b := &CappedBuffer{Max: 5}
	for _, s := range []string{"abc", "defg", "h"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v: it must take all, or exec stops writing", s, n, err)
		}
	}
	if got := b.String(); got != "abcde" {
		t.Errorf("String() = %q, want the first 5 bytes", got)
	}
}

// A shell killed at its timeout takes its children with it: the pipe its
// child holds open closes at once, not when the child's sleep ends.
func TestOwnProcessGroup_killsTheChildren(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no process groups")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "sleep 30 & echo started; wait")
	out := &CappedBuffer{Max: 64}
	cmd.Stdout, cmd.Stderr = out, out
	OwnProcessGroup(cmd)
	start := time.Now()
	err := cmd.Run()
	if err == nil {
		t.Fatal("the command outlived its context")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run returned after %s: the child kept the output open", d)
	}
	if !strings.Contains(out.String(), "started") {
		t.Errorf("output %q, want the shell's line", out.String())
	}
}
