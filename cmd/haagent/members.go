package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/gossip"
)

type membersOptions struct {
	agent   string
	timeout time.Duration
	out     *outputFlags
}

// registerFlags registers the command's own flags; -o and --no-headers
// are kubectl's (see outputFlags).
func (o *membersOptions) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.agent, "agent", o.agent, "base URL of the agent's HTTP API")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "how long to wait for the agent")
}

const membersLong = `Print the membership table of a running agent, as that agent sees it.

The table has one row per member: NAME, its gossip ADDRESS, its STATE
(alive, suspect, dead or left), ZONE, READY (the node's own verdict about
its checks; - for a member that is not alive, whose verdict is stale), SINCE
(time in that state) and SELF (yes for the agent that answered). -o wide adds
VERSION, STARTED and REASON (the failing check).

-o json and -o yaml print the agent's /members document; -o name prints
member/NAME lines; -o jsonpath=... and the templates query the document.`

func newMembersCommand() *cobra.Command {
	o := &membersOptions{agent: "http://127.0.0.1:9750", timeout: 5 * time.Second, out: newOutputFlags()}
	cmd := &cobra.Command{
		Use:   "members [flags]",
		Short: "Print the membership table of a running agent",
		Long:  membersLong,
		Example: `  kubectl -n haagent exec daemonset/haagent -- haagent members -o wide
  haagent members --agent=http://10.0.0.7:9750 -o yaml
  haagent members --no-headers | awk '$3 == "dead" {print $1}'
  haagent members -o jsonpath='{range .members[?(@.state=="dead")]}{.name}{"\n"}{end}'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.OutOrStdout())
		},
	}
	gfs := flag.NewFlagSet("haagent members", flag.ContinueOnError)
	o.registerFlags(gfs)
	o.out.registerFlags(gfs)
	addGoFlags(cmd.Flags(), gfs)
	o.out.addFlags(cmd)
	return cmd
}

func (o *membersOptions) run(w io.Writer) error {
	printer, wide, err := o.out.printer()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	body, err := fetchMembers(ctx, strings.TrimSuffix(o.agent, "/")+"/members")
	if err != nil {
		return failure(err)
	}
	var resp api.MembersResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return failure(fmt.Errorf("agent answered with unreadable JSON: %v", err))
	}
	if err := o.print(w, resp, body, printer, wide); err != nil {
		return failure(err)
	}
	return nil
}

// print writes the members as -o asks: the table when printer is nil, else
// the agent's document (body), or member/NAME lines for -o name.
func (o *membersOptions) print(w io.Writer, resp api.MembersResponse, body []byte, printer printers.ResourcePrinter, wide bool) error {
	if printer == nil {
		return printMembers(w, resp, wide, o.out.noHeaders)
	}
	if o.out.isName() {
		names := make([]string, len(resp.Members))
		for i, m := range resp.Members {
			names[i] = m.Name
		}
		return printer.PrintObj(nameList("Member", "", names), w)
	}
	doc, err := document(json.RawMessage(body))
	if err != nil {
		return err
	}
	return printer.PrintObj(doc, w)
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
// headers, one word per cell, ages relative to the agent's clock.
func printMembers(w io.Writer, resp api.MembersResponse, wide, noHeaders bool) error {
	tw := printers.GetNewTabWriter(w)
	if !noHeaders {
		header := "NAME\tADDRESS\tSTATE\tZONE\tREADY\tSINCE\tSELF"
		if wide {
			header += "\tVERSION\tSTARTED\tREASON"
		}
		fmt.Fprintln(tw, header)
	}
	for _, m := range resp.Members {
		self := "no"
		if m.Local {
			self = "yes"
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", m.Name, dash(m.Addr), m.State, dash(m.Meta.Zone), memberReady(m),
			duration.HumanDuration(resp.Time.Sub(m.Since)), self)
		if wide {
			started := "-"
			if m.Meta.StartEpoch != 0 {
				started = time.Unix(0, m.Meta.StartEpoch).UTC().Format(time.RFC3339)
			}
			reason := m.Meta.Reason
			if m.MetaError != "" {
				reason = "metadata: " + m.MetaError
			}
			row += fmt.Sprintf("\t%s\t%s\t%s", dash(m.Meta.AgentVersion), started, dash(oneLine(reason)))
		}
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
}

// memberReady is the READY cell: the member's own verdict while it is
// alive; "-" otherwise, since the last verdict it gossiped is stale; "?"
// while its metadata does not decode.
func memberReady(m gossip.Member) string {
	switch {
	case m.State != gossip.StateAlive:
		return "-"
	case m.MetaError != "":
		return "?"
	case m.Meta.Ready:
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a message from breaking the table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
