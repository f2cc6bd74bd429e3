package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/internal/availability"
	"github.com/haagent/haagent/internal/version"
)

type reportOptions struct {
	since        time.Duration
	timeout      time.Duration
	replicas     int
	minAvailable int
	kube         *kubeFlags
	out          *outputFlags
}

// registerFlags registers the command's own flags; the kubeconfig flags
// and -o are kubectl's (genericclioptions).
func (o *reportOptions) registerFlags(fs *flag.FlagSet) {
	fs.DurationVar(&o.since, "since", o.since, "window of the availability figures, ending now")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "how long to wait for the API")
	fs.IntVar(&o.replicas, "replicas", o.replicas, "also show the availability of a workload with this many replicas on different nodes, from the measured node availability (0: not shown)")
	fs.IntVar(&o.minAvailable, "min-available", o.minAvailable, "with --replicas: how many of the replicas must be up for the workload to be (1: any one; 2 of 3: a quorum)")
}

const reportLong = `Print the failover history from the NodeFailover records, oldest first,
and the availability figures they give over --since: per node and for the
cluster, MTTD, MTTR, MTBF, availability (MTBF / (MTBF + MTTR)), nines, the
measured availability (the fraction of the window the node was up) and
downtime.

--replicas N answers "what do N replicas on different nodes give?": the
chance that at least --min-available of them are up, from the measured
node availability, assuming nodes fail independently (correlated failures,
such as a shared rack or a bad rollout, make it worse).

The API is found as kubectl finds it: --kubeconfig, else $KUBECONFIG, else
~/.kube/config, with --context, --cluster and --user; in a pod without any
of those, the pod's service account.

-o json and -o yaml print the records (items) with the availability figures
and the window; -o name prints nodefailover.haagent.io/NAME lines; -o
jsonpath=... and the templates query the same document. --no-headers prints
the history rows alone.`

func newReportCommand() *cobra.Command {
	_, cmd := newReportOptionsCommand()
	return cmd
}

func newReportOptionsCommand() (*reportOptions, *cobra.Command) {
	o := &reportOptions{since: 30 * 24 * time.Hour, timeout: 30 * time.Second, minAvailable: 1, out: newOutputFlags()}
	o.kube = newKubeFlags()
	cmd := &cobra.Command{
		Use:   "report [flags]",
		Short: "Print the failover history and the availability figures",
		Long:  reportLong,
		Example: `  haagent report
  haagent report --context=prod --since=8760h -o yaml
  haagent report --replicas=3 --min-available=2
  haagent report -o jsonpath='{.availability.cluster.measured}'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.OutOrStdout(), time.Now())
		},
	}
	gfs := flag.NewFlagSet("haagent report", flag.ContinueOnError)
	o.registerFlags(gfs)
	o.out.registerFlags(gfs)
	addGoFlags(cmd.Flags(), gfs)
	o.kube.AddFlags(cmd.Flags())
	o.out.addFlags(cmd)
	return o, cmd
}

// kubeFlags are kubectl's flags for finding the API, those that a
// read-only report needs, loaded as kubectl loads them: --kubeconfig, else
// $KUBECONFIG, else ~/.kube/config, with --context, --cluster and --user
// applied, else the in-cluster config. (genericclioptions.ConfigFlags does
// the same and brings REST mappers and discovery caching into the binary
// of every node's agent; see outputFlags.)
type kubeFlags struct {
	kubeconfig, context, cluster, user string
}

func newKubeFlags() *kubeFlags { return &kubeFlags{} }

// AddFlags registers the flags.
func (f *kubeFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "Path to the kubeconfig file to use for CLI requests.")
	fs.StringVar(&f.context, "context", "", "The name of the kubeconfig context to use")
	fs.StringVar(&f.cluster, "cluster", "", "The name of the kubeconfig cluster to use")
	fs.StringVar(&f.user, "user", "", "The name of the kubeconfig user to use")
}

// ToRawKubeConfigLoader is the kubeconfig loader of the flags.
func (f *kubeFlags) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: f.context}
	overrides.Context.Cluster, overrides.Context.AuthInfo = f.cluster, f.user
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// ToRESTConfig is the client config of the flags.
func (f *kubeFlags) ToRESTConfig() (*rest.Config, error) {
	return f.ToRawKubeConfigLoader().ClientConfig()
}

func (o *reportOptions) validate() error {
	switch {
	case o.since <= 0:
		return fmt.Errorf("--since (%s) must be positive", o.since)
	case o.replicas < 0 || o.replicas > availability.MaxReplicas:
		return fmt.Errorf("--replicas (%d) must be between 0 (not shown) and %d", o.replicas, availability.MaxReplicas)
	case o.replicas > 0 && (o.minAvailable < 1 || o.minAvailable > o.replicas):
		return fmt.Errorf("--min-available (%d) must be between 1 and --replicas (%d)", o.minAvailable, o.replicas)
	case o.replicas == 0 && o.minAvailable != 1:
		return fmt.Errorf("--min-available needs --replicas")
	}
	return nil
}

func (o *reportOptions) run(w io.Writer, now time.Time) error {
	if err := o.validate(); err != nil {
		return usageError(err)
	}
	printer, wide, err := o.out.printer()
	if err != nil {
		return err
	}
	cfg, err := o.restConfig()
	if err != nil {
		return failure(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	rep, err := o.load(ctx, cfg, now)
	if err != nil {
		return failure(err)
	}
	if err := o.print(w, rep, printer, wide); err != nil {
		return failure(err)
	}
	return nil
}

// restConfig finds the API the way kubectl does, except that a missing
// kubeconfig outside a pod is said to be missing, where kubectl tries
// localhost:8080.
func (o *reportOptions) restConfig() (*rest.Config, error) {
	raw, err := o.kube.ToRawKubeConfigLoader().RawConfig()
	if err != nil {
		return nil, err
	}
	inPod := os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBERNETES_SERVICE_PORT") != ""
	if len(raw.Clusters) == 0 && !inPod {
		return nil, errNoAPI
	}
	cfg, err := o.kube.ToRESTConfig()
	if clientcmd.IsEmptyConfig(err) {
		return nil, errNoAPI
	}
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "haagent/" + version.Version
	return cfg, nil
}

// failoverReport is what `haagent report` prints.
type failoverReport struct {
	records []record.NodeFailover
	nodes   int
	summary availability.Summary
}

func (o *reportOptions) load(ctx context.Context, cfg *rest.Config, now time.Time) (failoverReport, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return failoverReport{}, err
	}
	store, err := record.NewStore(record.DefaultConfig(), record.Deps{Client: dyn})
	if err != nil {
		return failoverReport{}, err
	}
	records, err := store.ListAll(ctx)
	if err != nil {
		return failoverReport{}, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return failoverReport{}, err
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return failoverReport{}, fmt.Errorf("list nodes: %w", err)
	}
	names := make([]string, 0, len(nodes.Items))
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	sum, err := record.Report(records, availability.Window{Start: now.Add(-o.since), End: now}, names)
	if err != nil {
		return failoverReport{}, err
	}
	return failoverReport{records: records, nodes: len(names), summary: sum}, nil
}

func (o *reportOptions) print(w io.Writer, rep failoverReport, printer printers.ResourcePrinter, wide bool) error {
	if printer != nil {
		if o.out.isName() {
			names := make([]string, len(rep.records))
			for i := range rep.records {
				names[i] = rep.records[i].Name
			}
			return printer.PrintObj(nameList(record.Kind, record.Group+"/"+record.Version, names), w)
		}
		doc, err := document(o.document(rep))
		if err != nil {
			return err
		}
		return printer.PrintObj(doc, w)
	}
	if o.out.noHeaders {
		return record.WriteTable(&skipLine{w: w}, rep.records, wide)
	}
	if err := record.WriteTable(w, rep.records, wide); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nAvailability over the last %s (%d nodes):\n", o.since, rep.nodes)
	if err := record.WriteSummary(w, rep.summary); err != nil {
		return err
	}
	if r := o.replicated(rep.summary); r != nil {
		nines, downtime := "-", "-"
		if r.Nines != nil {
			nines = fmt.Sprintf("%.2f", *r.Nines)
		}
		if r.DowntimePerYear != nil {
			downtime = availability.FormatDowntime(r.DowntimePerYear.Duration)
		}
		fmt.Fprintf(w, "%d replicas on different nodes, at least %d up: %s (%s nines, %s of downtime a year), from the measured node availability %s.\n",
			r.Replicas, r.MinAvailable, percent(r.Availability), nines, downtime, percent(r.From))
	}
	return nil
}

// reportDocument is the document of -o json and yaml.
type reportDocument struct {
	// Since is --since: the window ends at the time of the report.
	Since        metav1.Duration       `json:"since"`
	Window       windowDocument        `json:"window"`
	Items        []record.NodeFailover `json:"items"`
	Availability availabilityDocument  `json:"availability"`
}

type windowDocument struct {
	Start metav1.Time `json:"start"`
	End   metav1.Time `json:"end"`
}

type availabilityDocument struct {
	// Nodes is how many Nodes the cluster has; Node names only in
	// records count too.
	Nodes int `json:"nodes"`
	// Cluster pools the failures and repairs of every node; its measured
	// availability is the mean of the nodes'.
	Cluster statsDocument `json:"cluster"`
	// PerNode is by node name.
	PerNode map[string]statsDocument `json:"perNode"`
	// AllUp is the fraction of the window during which no node was down.
	AllUp float64 `json:"allUp"`
	// Skipped counts the records left out (no last-heard time, or
	// recovered before it).
	Skipped int `json:"skipped"`
	// Replicated is there with --replicas.
	Replicated *replicatedDocument `json:"replicated,omitempty"`
}

// statsDocument is availability.Stats; a figure that is not defined (no
// failure detected, repaired, ...) is left out.
type statsDocument struct {
	Failures     int              `json:"failures"`
	Detected     int              `json:"detected"`
	Repaired     int              `json:"repaired"`
	MTTD         *metav1.Duration `json:"mttd,omitempty"`
	MTTR         *metav1.Duration `json:"mttr,omitempty"`
	MTBF         *metav1.Duration `json:"mtbf,omitempty"`
	Availability *float64         `json:"availability,omitempty"`
	// Nines is -log10(1 - availability); left out for 100%.
	Nines    *float64        `json:"nines,omitempty"`
	Measured float64         `json:"measured"`
	Downtime metav1.Duration `json:"downtime"`
}

type replicatedDocument struct {
	Replicas     int `json:"replicas"`
	MinAvailable int `json:"minAvailable"`
	// From is the measured node availability of the cluster.
	From         float64 `json:"from"`
	Availability float64 `json:"availability"`
	// Nines is left out for 100%.
	Nines           *float64         `json:"nines,omitempty"`
	DowntimePerYear *metav1.Duration `json:"downtimePerYear,omitempty"`
}

func (o *reportOptions) document(rep failoverReport) reportDocument {
	items := rep.records
	if items == nil {
		items = []record.NodeFailover{}
	}
	for i := range items {
		items[i].APIVersion, items[i].Kind = record.Group+"/"+record.Version, record.Kind
	}
	sum := rep.summary
	doc := reportDocument{
		Since:  metav1.Duration{Duration: o.since},
		Window: windowDocument{Start: metav1.NewTime(sum.Window.Start.UTC()), End: metav1.NewTime(sum.Window.End.UTC())},
		Items:  items,
		Availability: availabilityDocument{
			Nodes:      rep.nodes,
			Cluster:    statsDoc(sum.Cluster),
			PerNode:    map[string]statsDocument{},
			AllUp:      sum.AllUp,
			Skipped:    sum.Skipped,
			Replicated: o.replicated(sum),
		},
	}
	for name, s := range sum.Nodes {
		doc.Availability.PerNode[name] = statsDoc(s)
	}
	return doc
}

func statsDoc(s availability.Stats) statsDocument {
	d := statsDocument{
		Failures: s.Failures, Detected: s.Detected, Repaired: s.Repaired,
		Measured: s.Measured, Downtime: metav1.Duration{Duration: s.Downtime},
	}
	if s.HasMTTD() {
		d.MTTD = &metav1.Duration{Duration: s.MTTD}
	}
	if s.HasMTTR() {
		d.MTTR = &metav1.Duration{Duration: s.MTTR}
	}
	if s.HasMTBF() {
		d.MTBF = &metav1.Duration{Duration: s.MTBF}
	}
	if s.HasAvailability() {
		a := s.Availability
		d.Availability = &a
		d.Nines = nines(a)
	}
	return d
}

// replicated answers --replicas from the cluster's measured availability,
// or is nil without it.
func (o *reportOptions) replicated(sum availability.Summary) *replicatedDocument {
	if o.replicas < 1 {
		return nil
	}
	from := sum.Cluster.Measured
	var a float64
	var err error
	if o.minAvailable <= 1 {
		a, err = availability.Replicated(from, o.replicas)
	} else {
		a, err = availability.KOfN(from, o.minAvailable, o.replicas)
	}
	if err != nil {
		return nil // validated: cannot happen
	}
	r := &replicatedDocument{Replicas: o.replicas, MinAvailable: max(o.minAvailable, 1), From: from, Availability: a, Nines: nines(a)}
	if d, err := availability.DowntimePerYear(a); err == nil {
		r.DowntimePerYear = &metav1.Duration{Duration: d}
	}
	return r
}

// nines is availability.Nines, or nil where it is infinite (100%).
func nines(a float64) *float64 {
	n, err := availability.Nines(a)
	if err != nil || math.IsInf(n, 0) {
		return nil
	}
	n = math.Round(n*100) / 100
	return &n
}

// percent prints a fraction as `haagent report` prints availability, with
// five decimals, or more where it has more nines: 0.99999999912 is
// "99.9999999912%", not "100.00000%".
func percent(a float64) string {
	digits := 5
	if n, err := availability.Nines(a); err == nil && !math.IsInf(n, 0) {
		digits = min(max(digits, int(math.Ceil(n))), 15)
	}
	return fmt.Sprintf("%.*f%%", digits, a*100)
}
