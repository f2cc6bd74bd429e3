package coordinator

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/clock"

	"github.com/haagent/haagent/agent/nodecache"
	"github.com/haagent/haagent/agent/roster"
)

// Roster publishing: at most one write per rosterMinInterval, the Nodes
// compared with what was written every rosterCheck.
const (
	rosterMinInterval = 5 * time.Second
	rosterCheck       = time.Second
)

// watchNodes starts, for this term, the Node watch that only the
// coordinator holds, and the roster publisher that feeds every other
// agent from it. Both stop when ctx ends; the function returned waits for
// them. Until the first Node list arrives, node falls back to a GET.
func (c *Coordinator) watchNodes(ctx context.Context) (wait func()) {
	client := c.d.WatchClient
	if client == nil {
		client = c.d.Client
	}
	nodes := nodecache.New(client, c.d.AgentCondition)
	c.nodes.Store(nodes)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = nodes.Run(ctx)
	})
	wg.Go(func() {
		<-ctx.Done()
		c.nodes.CompareAndSwap(nodes, nil)
	})
	if c.roster != nil {
		wg.Go(func() {
			if err := c.roster.Run(ctx, nodes); err != nil {
				c.log.Error("roster not published", zap.Error(err))
			}
		})
	}
	return wg.Wait
}

// newRosterPublisher builds the publisher, or nil when Deps names no
// roster.
func newRosterPublisher(d Deps, clk clock.WithTicker, log *zap.Logger) (*roster.Publisher, error) {
	if d.RosterName == "" {
		return nil, nil
	}
	return roster.NewPublisher(roster.PublisherConfig{
		Namespace: d.Namespace, Name: d.RosterName, AgentCondition: d.AgentCondition,
		MinInterval: rosterMinInterval, Check: rosterCheck,
	}, roster.PublisherDeps{Client: d.Client, Clock: clk, Logger: log, Registerer: d.Registerer})
}

// node returns the named Node: from this term's Node watch once it has
// synced, else by a GET served from the API server's cache.
func (c *Coordinator) node(ctx context.Context, name string) (*corev1.Node, error) {
	if nodes := c.nodes.Load(); nodes != nil && nodes.Synced() {
		if n, ok := nodes.Get(name); ok {
			return n, nil
		}
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "nodes"}, name)
	}
	n, err := c.d.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{ResourceVersion: "0"})
	if err != nil && !apierrors.IsNotFound(err) {
		c.log.Debug("read node", zap.String("node", name), zap.Error(err))
	}
	return n, err
}
