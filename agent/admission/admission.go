// Package admission decides which gossip peers may be members: only a peer
// named after a Node of the cluster, at that Node's address. Without it,
// anyone holding the gossip key could join under any name and vote.
//
// It watches Nodes (list and watch, through a shared informer) and answers
// from the cache, so the check costs nothing on the gossip path. The
// informer is built for Nodes alone, not from client-go's informer factory,
// which links the informers and listers of every API group into the
// binary (about 20 MB of it). Lifecycle:
// New starts nothing; Start runs the informer until its context ends;
// WaitForSync waits for the first list.
package admission

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Refusal reasons, the label values of haagent_gossip_admission_refusals_total.
const (
	RefusedUnknownNode     = "unknown_node"
	RefusedAddressMismatch = "address_mismatch"
)

// Checker admits peers that match a Node.
type Checker struct {
	informer cache.SharedIndexInformer
	lister   listerscorev1.NodeLister
	synced   cache.InformerSynced
	ready    atomic.Bool
}

// New builds a checker over the client's Nodes.
func New(client kubernetes.Interface) *Checker {
	inf := coreinformers.NewNodeInformer(client, 0, cache.Indexers{})
	return &Checker{informer: inf, lister: listerscorev1.NewNodeLister(inf.GetIndexer()), synced: inf.HasSynced}
}

// Start runs the informer until ctx ends; it returns at once.
func (c *Checker) Start(ctx context.Context) {
	go c.informer.RunWithContext(ctx)
}

// WaitForSync waits up to timeout for the first list of Nodes and reports
// whether it came.
func (c *Checker) WaitForSync(ctx context.Context, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ok := cache.WaitForCacheSync(ctx.Done(), c.synced)
	c.ready.Store(ok)
	return ok
}

// Synced reports whether the Node cache is filled.
func (c *Checker) Synced() bool { return c.ready.Load() || c.synced() }

// Admit returns "" when name is a Node one of whose addresses is ip, else
// the reason of the refusal. Before the first list it admits everyone (the
// agent logs that at start): refusing then would keep a cluster whose API
// is down at start from forming at all.
func (c *Checker) Admit(name string, ip net.IP) string {
	if !c.Synced() {
		return ""
	}
	n, err := c.lister.Get(name)
	if err != nil {
		return RefusedUnknownNode
	}
	for _, a := range n.Status.Addresses {
		if (a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP) && net.ParseIP(a.Address).Equal(ip) {
			return ""
		}
	}
	return RefusedAddressMismatch
}
