// Package nodecache keeps this agent's copy of the cluster's Nodes: one
// list and watch, read by gossip admission (is a peer a Node, at that
// Node's address?) and by the majority tests (which Nodes exist, and on
// which has an agent run?). The copy outlives an API outage: what the API
// last said stays true until it says otherwise.
//
// The informer is built for Nodes alone, not from client-go's informer
// factory, which links the informers and listers of every API group into
// the binary (about 20 MB of it).
//
// Lifecycle: New starts nothing; Run runs the informer until its context
// ends; WaitForSync waits for the first list.
package nodecache

import (
	"context"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Cache is a watched copy of the Nodes.
type Cache struct {
	informer cache.SharedIndexInformer
	lister   listerscorev1.NodeLister
	synced   cache.InformerSynced
	ready    atomic.Bool
	// agent is the Node condition an agent writes on its own Node: a Node
	// that carries it has run an agent.
	agent corev1.NodeConditionType
}

// New builds a cache over the client's Nodes. agentCondition is the Node
// condition that marks a Node an agent has run on.
func New(client kubernetes.Interface, agentCondition corev1.NodeConditionType) *Cache {
	inf := coreinformers.NewNodeInformer(client, 0, cache.Indexers{})
	return &Cache{informer: inf, lister: listerscorev1.NewNodeLister(inf.GetIndexer()), synced: inf.HasSynced, agent: agentCondition}
}

// Run runs the informer until ctx ends.
func (c *Cache) Run(ctx context.Context) error {
	c.informer.RunWithContext(ctx)
	return nil
}

// WaitForSync waits up to timeout for the first list of Nodes and reports
// whether it came.
func (c *Cache) WaitForSync(ctx context.Context, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ok := cache.WaitForCacheSync(ctx.Done(), c.synced)
	c.ready.Store(ok)
	return ok
}

// Synced reports whether the first list has arrived.
func (c *Cache) Synced() bool { return c.ready.Load() || c.synced() }

// Get returns the named Node from the cache. Callers must not modify it.
func (c *Cache) Get(name string) (*corev1.Node, bool) {
	n, err := c.lister.Get(name)
	return n, err == nil
}

// Exists reports whether the named Node is in the cache.
func (c *Cache) Exists(name string) bool {
	_, ok := c.Get(name)
	return ok
}

// AgentNodes lists the Nodes that carry the agent's condition.
func (c *Cache) AgentNodes() []string {
	nodes, err := c.lister.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range nodes {
		for _, cond := range n.Status.Conditions {
			if cond.Type == c.agent {
				out = append(out, n.Name)
				break
			}
		}
	}
	return out
}
