package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/haagent/haagent/agent/api"
)

func membersCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("haagent members", flag.ContinueOnError)
	fs.SetOutput(stderr)
	agent := fs.String("agent", "http://127.0.0.1:9750", "base URL of the agent's HTTP API")
	output := fs.String("o", "", "output format: (table), wide or json")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the agent")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *output != "" && *output != "wide" && *output != "json" {
		fmt.Fprintf(stderr, "haagent members: -o (%q) must be wide or json\n", *output)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	body, err := fetchMembers(ctx, strings.TrimSuffix(*agent, "/")+"/members")
	if err != nil {
		fmt.Fprintf(stderr, "haagent members: %v\n", err)
		return 1
	}
	if *output == "json" {
		_, _ = stdout.Write(body)
		return 0
	}
	var resp api.MembersResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		fmt.Fprintf(stderr, "haagent members: agent answered with unreadable JSON: %v\n", err)
		return 1
	}
	printMembers(stdout, resp, *output == "wide")
	return 0
}

func fetchMembers(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask agent: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read agent answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent answered %s: %s", res.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// printMembers writes the table the way kubectl get does: upper-case
// headers, ages relative to the agent's clock.
func printMembers(w io.Writer, resp api.MembersResponse, wide bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	header := "NAME\tADDRESS\tSTATE\tZONE\tREADY\tSINCE"
	if wide {
		header += "\tVERSION\tSTARTED\tREASON"
	}
	fmt.Fprintln(tw, header)
	for _, m := range resp.Members {
		name := m.Name
		if m.Local {
			name += " (self)"
		}
		ready := "no"
		if m.Meta.Ready {
			ready = "yes"
		}
		if m.MetaError != "" {
			ready = "?"
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", name, m.Addr, m.State, dash(m.Meta.Zone), ready,
			duration.HumanDuration(resp.Time.Sub(m.Since)))
		if wide {
			started := "-"
			if m.Meta.StartEpoch != 0 {
				started = time.Unix(0, m.Meta.StartEpoch).UTC().Format(time.RFC3339)
			}
			reason := m.Meta.Reason
			if m.MetaError != "" {
				reason = "metadata: " + m.MetaError
			}
			row += fmt.Sprintf("\t%s\t%s\t%s", dash(m.Meta.AgentVersion), started, dash(reason))
		}
		fmt.Fprintln(tw, row)
	}
	_ = tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
