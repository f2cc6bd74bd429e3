package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The faults of a Network are DROP rules in the namespaces' own iptables,
// each with the network's comment, gone with the namespaces when the
// Network closes, or a link set down. Every rule is on INPUT, at the
// receiver: a packet dropped there is lost silently, as on a cut cable,
// while a DROP on OUTPUT would fail the sender's send with EPERM (a TCP
// connect and a UDP send alike), which no real cut does.

// nsRules are rules for one namespace: a node's or the hub's.
type nsRules struct {
	ns    string // ip netns name
	label string // the node's name, or "hub", for errors
	rules []rule
}

// addRules inserts each namespace's rules at the head of its chains, one
// iptables-restore transaction per namespace; if one fails, those already
// added are removed again.
func (n *Network) addRules(name string, sets []nsRules) (*Fault, error) {
	for i, s := range sets {
		if err := n.restore(s, "-I"); err != nil {
			for _, done := range sets[:i] {
				_ = n.restore(done, "-D")
			}
			return nil, fmt.Errorf("cluster: %s: %w", name, err)
		}
	}
	return &Fault{name: name, remove: func() error {
		var errs []error
		for _, s := range sets {
			if err := n.restore(s, "-D"); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}}, nil
}

// restore applies op (-I or -D) to the filter rules of s in its namespace
// in one transaction.
func (n *Network) restore(s nsRules, op string) error {
	rules := s.rules
	var in bytes.Buffer
	fmt.Fprintln(&in, "*filter")
	for _, r := range rules {
		line := insertComment(append([]string{op, r.chain}, r.spec...), n.comment)
		fmt.Fprintln(&in, strings.Join(line, " "))
	}
	fmt.Fprintln(&in, "COMMIT")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", s.ns, "iptables-restore", "--noflush", "--wait")
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: iptables-restore: %w: %s\ninput:\n%s", s.label, err, bytes.TrimSpace(out), in.String())
	}
	return nil
}

// IptablesSave is the node namespace's filter table as iptables-save
// prints it.
func (nn *NetNode) IptablesSave() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nn.ns, "iptables-save", "-t", "filter").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cluster: node %s: iptables-save: %w: %s", nn.name, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func filterRule(chain string, spec ...string) rule {
	return rule{table: "filter", chain: chain, spec: append(spec, "-j", "DROP")}
}

// receive is the rule set of a namespace that drops what arrives from the
// given senders (with extra matches, such as a probability).
func receive(ns, label string, from []netip.Addr, match ...string) nsRules {
	s := nsRules{ns: ns, label: label}
	for _, ip := range from {
		s.rules = append(s.rules, filterRule("INPUT", append([]string{"-s", hostAddr(ip)}, match...)...))
	}
	return s
}

// cut is the rules that drop every packet to the nodes (at their own eth0)
// and every packet from them (at each other node and at the hub, where
// their API proxies listen), each with the extra matches.
func (n *Network) cut(victims []*NetNode, match ...string) []nsRules {
	var sets []nsRules
	from := make([]netip.Addr, len(victims))
	for i, v := range victims {
		from[i] = v.ip
		sets = append(sets, nsRules{ns: v.ns, label: v.name, rules: []rule{
			filterRule("INPUT", append([]string{"-i", nodeLink}, match...)...),
		}})
	}
	for _, o := range n.Nodes() {
		if !slices.Contains(victims, o) {
			sets = append(sets, receive(o.ns, o.name, from, match...))
		}
	}
	return append(sets, receive(n.hub, "hub", from, match...))
}

// Isolate drops every packet to and from the node: its peers and the hub
// (its API proxy) hear nothing from it, it hears nothing on eth0; its
// loopback and its processes go on. Peers see timeouts, as with a cut
// cable.
func (nn *NetNode) Isolate() (*Fault, error) {
	return nn.net.addRules("isolate "+nn.name, nn.net.cut([]*NetNode{nn}))
}

// Isolate isolates the nodes of these addresses (NetNode.Isolate).
func (n *Network) Isolate(ips ...netip.Addr) (*Fault, error) {
	nodes, err := n.byAddr(ips)
	if err != nil {
		return nil, err
	}
	return n.addRules("isolate "+netNodeList(nodes), n.cut(nodes))
}

// PartitionNodes drops every packet between each node of a and each node
// of b, both ways, each at its receiver's INPUT. Traffic within a side,
// with the hub and so with the control plane, flows.
func (n *Network) PartitionNodes(a, b []*NetNode) (*Fault, error) {
	if len(a) == 0 || len(b) == 0 {
		return nil, errors.New("cluster: partition: both sides need a node")
	}
	for _, x := range a {
		if slices.Contains(b, x) {
			return nil, fmt.Errorf("cluster: partition: %s is on both sides", x.name)
		}
	}
	var sets []nsRules
	side := func(from, to []*NetNode) {
		ips := make([]netip.Addr, len(to))
		for i, y := range to {
			ips[i] = y.ip
		}
		for _, x := range from {
			sets = append(sets, receive(x.ns, x.name, ips))
		}
	}
	side(a, b)
	side(b, a)
	return n.addRules("partition "+netNodeList(a)+" | "+netNodeList(b), sets)
}

// Partition partitions the nodes of these addresses (PartitionNodes).
func (n *Network) Partition(a, b []netip.Addr) (*Fault, error) {
	na, err := n.byAddr(a)
	if err != nil {
		return nil, err
	}
	nb, err := n.byAddr(b)
	if err != nil {
		return nil, err
	}
	return n.PartitionNodes(na, nb)
}

// Loss drops each packet to or from the node with probability p
// (0 < p ≤ 1), independently, each at its receiver.
func (nn *NetNode) Loss(p float64) (*Fault, error) {
	if !(p > 0 && p <= 1) {
		return nil, fmt.Errorf("cluster: loss probability (%v) must be in (0, 1]", p)
	}
	prob := strconv.FormatFloat(p, 'f', -1, 64)
	stat := []string{"-m", "statistic", "--mode", "random", "--probability", prob}
	return nn.net.addRules(fmt.Sprintf("loss %s p=%s", nn.name, prob), nn.net.cut([]*NetNode{nn}, stat...))
}

// Loss adds packet loss to the node of ip (NetNode.Loss).
func (n *Network) Loss(ip netip.Addr, p float64) (*Fault, error) {
	nodes, err := n.byAddr([]netip.Addr{ip})
	if err != nil {
		return nil, err
	}
	return nodes[0].Loss(p)
}

// BlockAPI cuts the node off from its API proxy, and so from the control
// plane, while its peers still reach it: the hub drops its connections'
// packets to the proxy port, the node the proxy's answers.
func (nn *NetNode) BlockAPI() (*Fault, error) {
	hub, port := hostAddr(nn.net.hubIP), strconv.Itoa(nn.proxyPort)
	return nn.net.addRules("block API of "+nn.name, []nsRules{
		{ns: nn.net.hub, label: "hub", rules: []rule{
			filterRule("INPUT", "-p", "tcp", "-s", hostAddr(nn.ip), "--dport", port),
		}},
		{ns: nn.ns, label: nn.name, rules: []rule{
			filterRule("INPUT", "-i", nodeLink, "-p", "tcp", "-s", hub, "--sport", port),
		}},
	})
}

// byAddr is the nodes of these addresses.
func (n *Network) byAddr(ips []netip.Addr) ([]*NetNode, error) {
	if len(ips) == 0 {
		return nil, errors.New("cluster: network: no node address given")
	}
	nodes := n.Nodes()
	out := make([]*NetNode, 0, len(ips))
	for _, ip := range ips {
		i := slices.IndexFunc(nodes, func(nn *NetNode) bool { return nn.ip == ip })
		if i < 0 {
			return nil, fmt.Errorf("cluster: network: no node has address %s", ip)
		}
		out = append(out, nodes[i])
	}
	return out, nil
}

// LinkDown sets the hub's end of the node's veth down: the node's eth0
// loses its carrier, as when the machine loses power, while its address
// and routes stay for when it comes back. Remove sets it up again.
func (nn *NetNode) LinkDown() (*Fault, error) {
	if err := nn.setLink("down"); err != nil {
		return nil, err
	}
	return &Fault{name: "link down " + nn.name, remove: func() error { return nn.setLink("up") }}, nil
}

func (nn *NetNode) setLink(state string) error {
	return runIP("-n", nn.net.hub, "link", "set", nn.hubLink, state)
}

func netNodeList(nodes []*NetNode) string {
	s := make([]string, len(nodes))
	for i, n := range nodes {
		s[i] = n.name
	}
	return strings.Join(s, ",")
}
