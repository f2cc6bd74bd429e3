package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/haagent/haagent/agent/gossip"
)

// Where the auto profile's group size came from, for the start-up log.
const (
	sizeFromFlag    = "flag"
	sizeFromRoster  = "roster"
	sizeFromNodes   = "node_count"
	sizeFromUnknown = "unknown"
)

// countNodes counts the cluster's Nodes with one list of one item: the
// API server reports how many more there are (remainingItemCount), so
// a cluster of 5000 Nodes costs one small answer, not the whole list. The
// Nodes bound the gossip group from above: an agent runs on some of them.
func countNodes(ctx context.Context, client kubernetes.Interface) (int, error) {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("count Nodes: %w", err)
	}
	n := len(list.Items)
	switch {
	case list.RemainingItemCount != nil:
		n += int(*list.RemainingItemCount)
	case list.Continue != "":
		return 0, errors.New("count Nodes: the API server did not say how many Nodes remain")
	}
	if n == 0 {
		return 0, errors.New("count Nodes: the API server lists none")
	}
	return n, nil
}

// nodeCount is the answer of countNodes, delivered on a channel: the count
// runs beside the wait for the roster, so that it adds nothing to the
// start-up when the API server is away.
type nodeCount struct {
	n   int
	err error
}

// startNodeCount counts the Nodes in the background, within timeout.
func startNodeCount(ctx context.Context, client kubernetes.Interface, timeout time.Duration) <-chan nodeCount {
	out := make(chan nodeCount, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		n, err := countNodes(ctx, client)
		out <- nodeCount{n, err}
	}()
	return out
}

// groupSize decides the group size the auto profile chooses its timings
// for, before memberlist is created (its timings cannot change after):
// --expected-members if set; else the Nodes an agent has run on, from the
// roster the coordinator publishes; else the number of Nodes (a new
// cluster, whose coordinator has not written a roster yet). rosterAgents
// is nil without the API; nodes is nil when the count was not started.
// It returns 0 when none answers: the auto profile then takes its slowest
// band, which is safe at any size. why says what was missing.
func groupSize(flag int, rosterAgents []string, nodes <-chan nodeCount) (n int, source, why string) {
	if flag > 0 {
		return flag, sizeFromFlag, ""
	}
	if len(rosterAgents) > 0 {
		return len(rosterAgents), sizeFromRoster, ""
	}
	if nodes == nil {
		return 0, sizeFromUnknown, "no Kubernetes API and no --expected-members"
	}
	c := <-nodes
	if c.err != nil {
		return 0, sizeFromUnknown, "no roster and " + c.err.Error()
	}
	return c.n, sizeFromNodes, ""
}

// logTimings logs the gossip timings chosen at start.
func logTimings(log *zap.Logger, c gossip.Config, source, why string) {
	p := c.Effective()
	fields := []zap.Field{
		zap.String("profile", c.ProfileName), zap.String("band", c.Band()),
		zap.Int("expected_members", c.ExpectedMembers), zap.String("size_from", source),
		zap.Duration("probe_interval", p.ProbeInterval), zap.Duration("probe_timeout", p.ProbeTimeout),
		zap.Int("suspicion_mult", p.SuspicionMult), zap.Duration("gossip_interval", p.GossipInterval),
		zap.Duration("push_pull_interval", p.PushPullInterval), zap.Duration("isolation_timeout", p.IsolationTimeout),
	}
	if why != "" {
		log.Warn("group size unknown at start: the auto gossip profile takes its slowest band", append(fields, zap.String("reason", why))...)
		return
	}
	log.Info("gossip timings", fields...)
}
