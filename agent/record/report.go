package record

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/internal/availability"
)

// none marks a figure that is not measured (yet).
const none = "-"

// WriteTable prints the records as a table for `haagent report`, oldest
// first. Durations are from LastHeard, the start of the outage, to each
// phase: DETECT to Confirmed, CORDON to Cordoned, EVICT to
// EvictionsAccepted, RECOVER to WorkloadsRecovered; REPAIR is the recorded
// time to repair (the same span, as the MTTR figures use it). wide adds the
// record name, the remaining phases, pod counts and the message.
func WriteTable(w io.Writer, records []NodeFailover, wide bool) error {
	rows := slices.Clone(records)
	slices.SortStableFunc(rows, func(a, b NodeFailover) int {
		return cmp.Or(timeOf(a.Status.LastHeard).Compare(timeOf(b.Status.LastHeard)), strings.Compare(a.Name, b.Name))
	})

	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	header := []string{"NODE", "STARTED", "PHASE", "OUTCOME", "DETECT", "CORDON", "EVICT", "RECOVER", "REPAIR", "VOTES"}
	if wide {
		header = append(header, "NAME", "SUSPECT", "TAINT", "NOTREADY", "FENCE", "RETURN", "UNCORDON", "PODS", "MESSAGE")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for i := range rows {
		f := &rows[i]
		st := &f.Status
		since := func(t *metav1.MicroTime) string { return sinceLastHeard(st.LastHeard, t) }
		repair := st.TimeToRepair
		if repair == "" {
			repair = since(st.WorkloadsRecovered)
		}
		cols := []string{
			orNone(f.Spec.Node),
			started(f),
			orNone(string(st.Phase)),
			orNone(string(st.Outcome)),
			since(st.Confirmed),
			since(st.Cordoned),
			since(st.EvictionsAccepted),
			since(st.WorkloadsRecovered),
			repair,
			strconv.Itoa(len(st.Votes)),
		}
		if wide {
			cols = append(cols,
				orNone(f.Name),
				since(st.Suspected),
				since(st.Tainted),
				since(st.PodsNotReady),
				since(st.Fenced),
				since(st.NodeReturned),
				since(st.Uncordoned),
				fmt.Sprintf("%d/%d", st.Pods.Evicted, st.Pods.Total),
				orNone(oneLine(st.Message)),
			)
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

// WriteJSON prints the records as an indented NodeFailoverList.
func WriteJSON(w io.Writer, records []NodeFailover) error {
	list := NodeFailoverList{
		TypeMeta: metav1.TypeMeta{APIVersion: Group + "/" + Version, Kind: ListKind},
		Items:    records,
	}
	if list.Items == nil {
		list.Items = []NodeFailover{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(list); err != nil {
		return fmt.Errorf("record: write JSON: %w", err)
	}
	return nil
}

// Report computes the availability figures of the records over window, for
// the nodes listed and every node named in a record. Pass the full node
// list: a node without failovers counts as up for the whole window. It
// fails only for an invalid window.
func Report(records []NodeFailover, window availability.Window, nodes []string) (availability.Summary, error) {
	failovers := make([]availability.Failover, len(records))
	for i := range records {
		failovers[i] = records[i].ToAvailability()
	}
	sum, err := availability.Summarize(failovers, window, nodes)
	if err != nil {
		return availability.Summary{}, fmt.Errorf("record: report: %w", err)
	}
	return sum, nil
}

// WriteSummary prints a Summary as `haagent report` shows it after the
// table: one line per node by name, then the cluster.
func WriteSummary(w io.Writer, sum availability.Summary) error {
	fmt.Fprintf(w, "Window %s to %s (%s)\n",
		sum.Window.Start.UTC().Format(time.RFC3339), sum.Window.End.UTC().Format(time.RFC3339),
		availability.FormatDowntime(sum.Window.Length()))
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NODE\tFAILURES\tMTTD\tMTTR\tMTBF\tAVAILABILITY\tNINES\tMEASURED\tDOWNTIME")
	names := make([]string, 0, len(sum.Nodes))
	for name := range sum.Nodes {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintln(tw, summaryRow(name, sum.Nodes[name]))
	}
	fmt.Fprintln(tw, summaryRow("(cluster)", sum.Cluster))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "All nodes up %s of the window.\n", percent(sum.AllUp))
	if sum.Skipped > 0 {
		fmt.Fprintf(w, "%d records skipped (no last-heard time, or recovered before it).\n", sum.Skipped)
	}
	return nil
}

func summaryRow(name string, s availability.Stats) string {
	mttd, mttr, mtbf, avail, nines := none, none, none, none, none
	if s.HasMTTD() {
		mttd = availability.FormatDowntime(s.MTTD)
	}
	if s.HasMTTR() {
		mttr = availability.FormatDowntime(s.MTTR)
	}
	if s.HasMTBF() {
		mtbf = availability.FormatDowntime(s.MTBF)
	}
	if s.HasAvailability() {
		avail = percent(s.Availability)
		if n, err := availability.Nines(s.Availability); err == nil {
			nines = formatNines(n)
		}
	}
	return strings.Join([]string{
		name, strconv.Itoa(s.Failures), mttd, mttr, mtbf, avail, nines,
		percent(s.Measured), availability.FormatDowntime(s.Downtime),
	}, "\t")
}

// percent prints a fraction with enough digits to tell four or five nines
// apart: 0.9999963 is "99.99963%".
func percent(a float64) string {
	return strconv.FormatFloat(a*100, 'f', 5, 64) + "%"
}

func formatNines(n float64) string {
	if math.IsInf(n, 1) {
		return "inf"
	}
	return strconv.FormatFloat(n, 'f', 2, 64)
}

// sinceLastHeard is t − lastHeard, or none when either is missing or t is
// earlier.
func sinceLastHeard(lastHeard, t *metav1.MicroTime) string {
	if lastHeard == nil || t == nil || t.Time.Before(lastHeard.Time) {
		return none
	}
	return FormatDuration(t.Time.Sub(lastHeard.Time))
}

// started is when the outage began, or when the record was created if that
// is not known.
func started(f *NodeFailover) string {
	switch {
	case f.Status.LastHeard != nil:
		return f.Status.LastHeard.UTC().Format(time.RFC3339)
	case !f.CreationTimestamp.IsZero():
		return f.CreationTimestamp.UTC().Format(time.RFC3339)
	}
	return none
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

// oneLine keeps a message from breaking the table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
