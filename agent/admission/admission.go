// Package admission decides which gossip peers may be members: only a peer
// named after a Node of the cluster, at that Node's address. Without it,
// anyone holding the gossip key could join under any name and vote.
//
// It answers from the agent's copy of the roster (agent/roster), so the
// check costs nothing on the gossip path. It has no lifecycle of its own.
package admission

import "net"

// Refusal reasons, the label values of haagent_gossip_admission_refusals_total.
const (
	RefusedUnknownNode     = "unknown_node"
	RefusedAddressMismatch = "address_mismatch"
)

// Nodes is the list of Nodes the checker reads.
type Nodes interface {
	// Synced reports whether the first list has arrived.
	Synced() bool
	// Addresses returns the named Node's InternalIP and ExternalIP
	// addresses.
	Addresses(name string) ([]string, bool)
}

// Checker admits peers that match a Node.
type Checker struct {
	nodes Nodes
}

// New builds a checker over a list of Nodes.
func New(nodes Nodes) *Checker { return &Checker{nodes: nodes} }

// Admit returns "" when name is a Node one of whose addresses is ip, else
// the reason of the refusal. Before the first list it admits everyone (the
// agent logs that at start): refusing then would keep a cluster whose API
// is down at start from forming at all, and a new cluster from forming the
// majority that elects the coordinator that publishes the first roster.
func (c *Checker) Admit(name string, ip net.IP) string {
	if !c.nodes.Synced() {
		return ""
	}
	addrs, ok := c.nodes.Addresses(name)
	if !ok {
		return RefusedUnknownNode
	}
	for _, a := range addrs {
		if net.ParseIP(a).Equal(ip) {
			return ""
		}
	}
	return RefusedAddressMismatch
}
