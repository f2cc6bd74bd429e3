// Package admission decides which gossip peers may be members: only a peer
// named after a Node of the cluster, at that Node's address. Without it,
// anyone holding the gossip key could join under any name and vote.
//
// It answers from the agent's Node cache (agent/nodecache), so the check
// costs nothing on the gossip path. It has no lifecycle of its own.
package admission

import (
	"net"

	corev1 "k8s.io/api/core/v1"
)

// Refusal reasons, the label values of haagent_gossip_admission_refusals_total.
const (
	RefusedUnknownNode     = "unknown_node"
	RefusedAddressMismatch = "address_mismatch"
)

// Nodes is the Node cache the checker reads.
type Nodes interface {
	// Synced reports whether the first Node list has arrived.
	Synced() bool
	// Get returns the named Node.
	Get(name string) (*corev1.Node, bool)
}

// Checker admits peers that match a Node.
type Checker struct {
	nodes Nodes
}

// New builds a checker over a Node cache.
func New(nodes Nodes) *Checker { return &Checker{nodes: nodes} }

// Admit returns "" when name is a Node one of whose addresses is ip, else
// the reason of the refusal. Before the first list it admits everyone (the
// agent logs that at start): refusing then would keep a cluster whose API
// is down at start from forming at all.
func (c *Checker) Admit(name string, ip net.IP) string {
	if !c.nodes.Synced() {
		return ""
	}
	n, ok := c.nodes.Get(name)
	if !ok {
		return RefusedUnknownNode
	}
	for _, a := range n.Status.Addresses {
		if (a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP) && net.ParseIP(a.Address).Equal(ip) {
			return ""
		}
	}
	return RefusedAddressMismatch
}
