// Command haagent is the haagent node agent and its command-line tools.
//
//	haagent run       the agent (one per node, as a DaemonSet)
//	haagent members   the membership table of a running agent
//	haagent report    the failover history and availability figures
//	haagent version   the build stamp
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/haagent/haagent/internal/version"
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `haagent: fast, safe Kubernetes node failover.

Usage:
  haagent run [flags]        run the agent (see haagent run -h)
  haagent members [flags]    print the membership table of a running agent
  haagent report [flags]     print the failover history and availability figures
  haagent version            print the version
`

// dispatch runs a subcommand and returns the process exit code: 0 on
// success, 1 on a runtime failure, 2 on bad usage or configuration.
func dispatch(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runCommand(args[1:], getenv, stderr)
	case "members":
		return membersCommand(args[1:], stdout, stderr)
	case "report":
		return reportCommand(args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version.String())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "haagent: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
