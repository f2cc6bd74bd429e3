package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/gossip"
)

// serviceAccountTokenFile is where the kubelet puts a pod's service
// account token.
const serviceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

type membersOptions struct {
	agent     string
	timeout   time.Duration
	tokenFile string
	// defaultTokenFile is read when tokenFile is empty and the agent is on
	// this host: serviceAccountTokenFile, but for tests.
	defaultTokenFile string
	out              *outputFlags
}

// registerFlags registers the command's own flags; -o and --no-headers
// are kubectl's (see outputFlags).
func (o *membersOptions) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.agent, "agent", o.agent, "base URL of the agent's HTTP API")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "how long to wait for the agent")
	fs.StringVar(&o.tokenFile, "token-file", o.tokenFile, "file with the bearer token to send, for an agent run with --http-auth=kubernetes; empty: the pod's service account token, when there is one and --agent is on this host")
}

const membersLong = `Print the membership table of a running agent, as that agent sees it.

The table has one row per member: NAME, its gossip ADDRESS, its STATE
(alive, suspect, dead or left), ZONE, READY (the node's own verdict about
its checks; - for a member that is not alive, whose verdict is stale), SINCE
(time in that state) and SELF (yes for the agent that answered). -o wide adds
VERSION, STARTED and REASON (the failing check).

-o json and -o yaml print the agent's /members document; -o name prints
member/NAME lines; -o jsonpath=... and the templates query the document.

An agent run with --http-auth=kubernetes answers only a bearer token whose
user RBAC allows to get the non-resource URL /members. The command sends
the token in --token-file; without it, the pod's service account token
(` + serviceAccountTokenFile + `), but only to an agent on this host (a
loopback --agent): the agent's HTTP is not encrypted, and that token must
not cross the network.`

func newMembersCommand() *cobra.Command {
	o := &membersOptions{agent: "http://127.0.0.1:9750", timeout: 5 * time.Second, defaultTokenFile: serviceAccountTokenFile, out: newOutputFlags()}
	cmd := &cobra.Command{
		Use:   "members [flags]",
		Short: "Print the membership table of a running agent",
		Long:  membersLong,
		Example: `  kubectl -n haagent exec daemonset/haagent -- haagent members -o wide
  haagent members --agent=http://10.0.0.7:9750 -o yaml
  haagent members --agent=http://10.0.0.7:9750 --token-file=./metrics-reader.token
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
	token, err := o.token()
	if err != nil {
		return failure(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	body, err := fetchMembers(ctx, strings.TrimSuffix(o.agent, "/")+"/members", token)
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

// token is the bearer token to send: that of --token-file, else the
// pod's own to an agent on this host, else none.
func (o *membersOptions) token() (string, error) {
	path := o.tokenFile
	if path == "" {
		if !loopbackURL(o.agent) {
			return "", nil
		}
		path = o.defaultTokenFile
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("--token-file: %s is empty", path)
	}
	return token, nil
}

// loopbackURL reports whether the host of rawURL is this host's loopback.
func loopbackURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func fetchMembers(ctx context.Context, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
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
	switch {
	case res.StatusCode == http.StatusUnauthorized && token == "":
		return nil, fmt.Errorf("agent answered %s: %s (it runs with --http-auth=kubernetes: pass --token-file)", res.Status, strings.TrimSpace(string(body)))
	case res.StatusCode != http.StatusOK:
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
