package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NetFault is a fault of a Network: rules in node namespaces' iptables, or
// a link set down. Remove undoes it.
//
// The rules are in the nodes' own namespaces, each with the network's
// comment, and go with the namespaces when the Network closes. A DROP on
// INPUT loses a packet silently, as a cut cable does; a DROP on OUTPUT does
// too for TCP (the segment is retransmitted), but a UDP send it drops fails
// with EPERM in the sending process.
type NetFault struct {
	name   string
	remove func() error

	mu      sync.Mutex
	removed bool
}

// Remove undoes the fault; a second call does nothing.
func (f *NetFault) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removed {
		return nil
	}
	if err := f.remove(); err != nil {
		return fmt.Errorf("cluster: remove %s: %w", f.name, err)
	}
	f.removed = true
	return nil
}

// String names the fault.
func (f *NetFault) String() string { return f.name }

// nsRules are rules for one node's namespace.
type nsRules struct {
	node  *NetNode
	rules []rule
}

// addRules inserts each node's rules at the head of its chains, one
// iptables-restore transaction per namespace; if one fails, those already
// added are removed again.
func (n *Network) addRules(name string, sets []nsRules) (*NetFault, error) {
	for i, s := range sets {
		if err := s.node.restore("-I", s.rules); err != nil {
			for _, done := range sets[:i] {
				_ = done.node.restore("-D", done.rules)
			}
			return nil, fmt.Errorf("cluster: %s: %w", name, err)
		}
	}
	return &NetFault{name: name, remove: func() error {
		var errs []error
		for _, s := range sets {
			if err := s.node.restore("-D", s.rules); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}}, nil
}

// restore applies op (-I or -D) to the filter rules in the node's
// namespace in one transaction.
func (nn *NetNode) restore(op string, rules []rule) error {
	var in bytes.Buffer
	fmt.Fprintln(&in, "*filter")
	for _, r := range rules {
		line := insertComment(append([]string{op, r.chain}, r.spec...), nn.net.comment)
		fmt.Fprintln(&in, strings.Join(line, " "))
	}
	fmt.Fprintln(&in, "COMMIT")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nn.ns, "iptables-restore", "--noflush", "--wait")
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("node %s: iptables-restore: %w: %s\ninput:\n%s", nn.name, err, bytes.TrimSpace(out), in.String())
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

// Isolate drops every packet on the node's eth0, both ways; its loopback
// and its processes go on. Peers see timeouts, as with a cut cable.
func (nn *NetNode) Isolate() (*NetFault, error) {
	return nn.net.addRules("isolate "+nn.name, []nsRules{{nn, []rule{
		filterRule("INPUT", "-i", nodeLink),
		filterRule("OUTPUT", "-o", nodeLink),
	}}})
}

// Partition drops every packet between each node of a and each node of b,
// both ways, each at its receiver's INPUT, so that no sender gets an error.
// Traffic within a side, with the hub and so with the control plane, flows.
func (n *Network) Partition(a, b []*NetNode) (*NetFault, error) {
	if len(a) == 0 || len(b) == 0 {
		return nil, errors.New("cluster: partition: both sides need a node")
	}
	var sets []nsRules
	side := func(from, to []*NetNode) {
		for _, x := range from {
			s := nsRules{node: x}
			for _, y := range to {
				s.rules = append(s.rules, filterRule("INPUT", "-i", nodeLink, "-s", hostAddr(y.ip)))
			}
			sets = append(sets, s)
		}
	}
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return nil, fmt.Errorf("cluster: partition: %s is on both sides", x.name)
			}
		}
	}
	side(a, b)
	side(b, a)
	return n.addRules("partition "+netNodeList(a)+" | "+netNodeList(b), sets)
}

// Loss drops each packet into or out of the node's eth0 with probability
// p (0 < p ≤ 1), independently.
func (nn *NetNode) Loss(p float64) (*NetFault, error) {
	if !(p > 0 && p <= 1) {
		return nil, fmt.Errorf("cluster: loss probability (%v) must be in (0, 1]", p)
	}
	prob := strconv.FormatFloat(p, 'f', -1, 64)
	stat := []string{"-m", "statistic", "--mode", "random", "--probability", prob}
	return nn.net.addRules(fmt.Sprintf("loss %s p=%s", nn.name, prob), []nsRules{{nn, []rule{
		filterRule("INPUT", append([]string{"-i", nodeLink}, stat...)...),
		filterRule("OUTPUT", append([]string{"-o", nodeLink}, stat...)...),
	}}})
}

// BlockAPI cuts the node off from its API proxy, and so from the control
// plane, while its peers still reach it.
func (nn *NetNode) BlockAPI() (*NetFault, error) {
	hub, port := hostAddr(nn.net.hubIP), strconv.Itoa(nn.proxyPort)
	return nn.net.addRules("block API of "+nn.name, []nsRules{{nn, []rule{
		filterRule("OUTPUT", "-o", nodeLink, "-p", "tcp", "-d", hub, "--dport", port),
		filterRule("INPUT", "-i", nodeLink, "-p", "tcp", "-s", hub, "--sport", port),
	}}})
}

// LinkDown sets the hub's end of the node's veth down: the node's eth0
// loses its carrier, as when the machine loses power, while its address
// and routes stay for when it comes back. Remove sets it up again.
func (nn *NetNode) LinkDown() (*NetFault, error) {
	if err := nn.setLink("down"); err != nil {
		return nil, err
	}
	return &NetFault{name: "link down " + nn.name, remove: func() error { return nn.setLink("up") }}, nil
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
