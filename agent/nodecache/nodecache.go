// Package nodecache keeps the coordinator's copy of the cluster's Nodes:
// one list and watch, run only while the agent holds the coordinator Lease
// (it is the one cluster-wide watch of an agent). The coordinator reads
// opt-out labels and deletions from it, and publishes the roster every
// other agent reads (agent/roster) from it.
//
// The copy keeps what those readers need and drops the rest (the image
// list, managed fields, volumes), which
// is most of a Node object's size.
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
	_ = inf.SetTransform(strip)
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

// List returns every Node in the cache. Callers must not modify them.
func (c *Cache) List() []*corev1.Node {
	nodes, err := c.lister.List(labels.Everything())
	if err != nil {
		return nil
	}
	return nodes
}

// strip drops the parts of a Node the coordinator never reads.
func strip(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	n.ManagedFields = nil
	n.Status.Images = nil
	n.Status.VolumesAttached = nil
	n.Status.VolumesInUse = nil
	return n, nil
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
