package cluster

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
)

// MaxNodes is how many nodes one NodeAddresses hands out: each node gets a
// /24 of pod IPs from 198.18.0.0/15, which holds 512 of them.
const MaxNodes = 500

// NodeAddress is what one simulated node owns.
type NodeAddress struct {
	// IP is the node's InternalIP and the address its kubelet port (and
	// later its agent) listens on: a loopback address, reachable from every
	// process on this host without any setup.
	IP netip.Addr
	// PodCIDR is where the node's pod IPs come from. They are never dialled;
	// they only have to be valid outside loopback, or EndpointSlices refuse them.
	PodCIDR netip.Prefix
}

// NodeAddresses hands out node addresses 127.X.Y.2, 127.X.Y.3, ... where X
// and Y are drawn at random per allocator, so that test runs going on at the
// same time on one machine are very unlikely to bind the same addresses.
// It is safe for concurrent use.
type NodeAddresses struct {
	mu   sync.Mutex
	x, y byte
	next int
}

// NewNodeAddresses returns an allocator on a random 127.X.Y.0 block. X is
// never 0, so 127.0.0.1, where the control plane listens, is never handed out.
func NewNodeAddresses() *NodeAddresses {
	return newNodeAddresses(byte(1+rand.IntN(254)), byte(rand.IntN(256)))
}

func newNodeAddresses(x, y byte) *NodeAddresses {
	return &NodeAddresses{x: x, y: y}
}

// Next returns the next free address, or an error after MaxNodes.
func (a *NodeAddresses) Next() (NodeAddress, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.next
	if n >= MaxNodes {
		return NodeAddress{}, fmt.Errorf("cluster: no more than %d node addresses per allocator", MaxNodes)
	}
	a.next++
	// 253 hosts per /24 (.2 to .254), then on to the next third octet.
	third := byte((int(a.y) + n/253) % 256)
	fourth := byte(2 + n%253)
	return NodeAddress{
		IP:      netip.AddrFrom4([4]byte{127, a.x, third, fourth}),
		PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, byte(18 + n/256), byte(n % 256), 0}), 24),
	}, nil
}
