package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/haagent/haagent/internal/version"
)

// versionInfo is the document of `haagent version -o json|yaml`.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func currentVersion() versionInfo {
	return versionInfo{
		Version:   version.Version,
		Commit:    version.Commit,
		BuildDate: version.BuildDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
}

// versionString is the text of `haagent version`.
func versionString() string { return version.String() }

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version [flags]",
		Short: "Print the version, commit, build date and Go version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return printVersion(cmd.OutOrStdout(), output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: the text by default, or json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func printVersion(w io.Writer, output string) error {
	var data []byte
	var err error
	switch output {
	case "":
		_, err = fmt.Fprintln(w, versionString())
		return err
	case "json":
		data, err = json.MarshalIndent(currentVersion(), "", "  ")
		data = append(data, '\n')
	case "yaml":
		data, err = yaml.Marshal(currentVersion())
	default:
		return usageError(fmt.Errorf("--output (%q) must be json or yaml", output))
	}
	if err != nil {
		return failure(err)
	}
	_, err = w.Write(data)
	return err
}
