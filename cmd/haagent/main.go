// Command haagent is the haagent node agent and its command-line tools.
//
//	haagent run         the agent (one per node, as a DaemonSet)
//	haagent members     the membership table of a running agent
//	haagent report      the failover history and availability figures
//	haagent version     the build stamp
//	haagent completion  shell completion scripts
//
// The commands follow kubectl's conventions: flags are spelled --name
// (pflag, with cobra for the commands), help goes to standard output, and
// members and report print with kubectl's printers (-o json, yaml, name,
// jsonpath=..., --no-headers).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime failure
	exitUsage   = 2 // bad usage or configuration
)

// dispatch runs a subcommand and returns the process exit code: 0 on
// success, 1 on a runtime failure, 2 on bad usage or configuration.
func dispatch(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if args == nil {
		args = []string{} // cobra reads os.Args when given nil
	}
	if len(args) > 0 && args[0] == "-version" {
		args = append([]string{"--version"}, args[1:]...) // the old spelling
	}
	root := newRootCommand(getenv, stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// What cobra returns itself is bad usage: an unknown command, or
		// arguments refused by a command's Args.
		ee = &exitError{code: exitUsage, err: err, hint: true}
	}
	if ee.err != nil {
		msg := strings.TrimSpace(ee.err.Error())
		if ee.hint {
			msg += fmt.Sprintf(" (see '%s -h')", cmd.CommandPath())
		}
		fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), msg)
	}
	return ee.code
}

// exitError carries a command's exit code. A nil err has been reported
// already. hint adds "(see 'haagent X -h')" to the message.
type exitError struct {
	code int
	err  error
	hint bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError is bad usage of the command line: exit code 2, with the hint
// to read the command's help.
func usageError(err error) error { return &exitError{code: exitUsage, err: err, hint: true} }

// configError is a setting that is not valid: exit code 2. The message
// names the flag already.
func configError(err error) error { return &exitError{code: exitUsage, err: err} }

// failure is a runtime failure: exit code 1.
func failure(err error) error { return &exitError{code: exitFailure, err: err} }

const rootLong = `haagent: fast, safe Kubernetes node failover.

One agent runs on every node (haagent run, as a DaemonSet); the agents
gossip, agree which nodes are dead and fail them over. The other commands
are for people: the membership table of a running agent, and the failover
history with its availability figures.`

func newRootCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "haagent",
		Short: "fast, safe Kubernetes node failover",
		Long:  rootLong,
		// A bare "haagent" is bad usage, as it was: help on stderr, exit 2.
		RunE: func(cmd *cobra.Command, args []string) error {
			if v, _ := cmd.Flags().GetBool("version"); v {
				fmt.Fprintln(cmd.OutOrStdout(), versionString())
				return nil
			}
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Help()
			return &exitError{code: exitUsage}
		},
		SilenceErrors:      true,
		SilenceUsage:       true,
		DisableSuggestions: true, // dispatch words them on one line
	}
	root.SuggestionsMinimumDistance = 2
	// --version is a flag of our own rather than cobra's Version: cobra
	// prints that with a text/template, and a text/template in the binary
	// makes the linker keep every exported method of every type (about
	// 8 MB of code, mapped into every agent's memory).
	root.Flags().Bool("version", false, "print the version and exit")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.AddCommand(
		newRunCommand(getenv),
		newMembersCommand(),
		newReportCommand(),
		newVersionCommand(),
	)
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q", args[0])
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf("; did you mean %q?", s[0])
		}
		return usageError(errors.New(msg))
	}
	return root
}

// noArgs refuses positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError(fmt.Errorf("accepts no arguments, got %q", args))
	}
	return nil
}
