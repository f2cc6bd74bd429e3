//go:build !unix

package probe

import "context"

// execCheck fails on systems without process groups: haagent runs on Linux nodes, and a
// command that could outlive its timeout is worse than no exec check.
func execCheck(_ context.Context, _ []string) Result {
	return failure("exec checks need a unix system")
}
