package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/internal/availability"
)

// reportCommand prints the failover history from the NodeFailover records
// and the availability figures they give.
func reportCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("haagent report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", getenv("KUBECONFIG"), "kubeconfig file (default $KUBECONFIG, else in-cluster)")
	output := fs.String("o", "", "output format: (table), wide or json")
	since := fs.Duration("since", 30*24*time.Hour, "window of the availability figures, ending now")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the API")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *output != "" && *output != "wide" && *output != "json" {
		fmt.Fprintf(stderr, "haagent report: -o (%q) must be wide or json\n", *output)
		return 2
	}
	if *since <= 0 {
		fmt.Fprintf(stderr, "haagent report: --since (%s) must be positive\n", *since)
		return 2
	}
	if err := report(*kubeconfig, *output, *since, *timeout, getenv, stdout); err != nil {
		fmt.Fprintf(stderr, "haagent report: %v\n", err)
		return 1
	}
	return 0
}

func report(kubeconfig, output string, since, timeout time.Duration, getenv func(string) string, w io.Writer) error {
	cfg, err := kubeConfig(kubeconfig, getenv)
	if err != nil {
		return err
	}
	if cfg == nil {
		return errors.New("no Kubernetes API: give --kubeconfig or set KUBECONFIG")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	store, err := record.NewStore(dyn, record.DefaultConfig())
	if err != nil {
		return err
	}
	records, err := store.ListAll(ctx)
	if err != nil {
		return err
	}
	if output == "json" {
		return record.WriteJSON(w, records)
	}
	if err := record.WriteTable(w, records, output == "wide"); err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	now := time.Now()
	sum, err := record.Report(records, availability.Window{Start: now.Add(-since), End: now}, names)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nAvailability over the last %s (%d nodes):\n", since, len(names))
	return record.WriteSummary(w, sum)
}
