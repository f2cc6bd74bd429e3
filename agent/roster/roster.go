// Package roster is the cluster's list of Nodes as every agent needs it:
// each Node's name, addresses and zone, and whether an agent has run on
// it. The coordinator, the one agent that watches every Node, publishes it
// in one ConfigMap (Publisher); every other agent watches that one object
// (Cache). So an agent's cost to the API server does not grow with the
// cluster's size the way a watch of every Node on every node does: at 5000
// nodes that was 5000 watchers of every Node change, each caching every
// Node object.
//
// The roster serves gossip admission (is a peer a Node, at that Node's
// address?), the expected group that majorities are counted against (which
// Nodes exist, and on which has an agent run?), the kubelet checks of
// suspect peers (a Node's InternalIP), the zone, and gossip discovery.
//
// The wire form is one line per Node, sorted by name, in the ConfigMap's
// data key "nodes":
//
//	<name> <address>[,<address>...] <agent: 0|1> <zone, or ->
//
// Node names and addresses hold no spaces, so the form needs no quoting;
// at 5000 nodes it is about 250 KB, well inside a ConfigMap's 1 MiB.
package roster

import (
	"fmt"
	"sort"
	"strings"
)

// DefaultName is the ConfigMap's name in the agents' namespace.
const DefaultName = "haagent-roster"

// Data keys of the ConfigMap.
const (
	keyNodes  = "nodes"
	keyFormat = "format"
	format    = "v1"
)

// Entry is one Node of the roster.
type Entry struct {
	Name string
	// Addresses are the Node's InternalIP and ExternalIP addresses, in
	// the Node's order.
	Addresses []string
	// Agent: the Node carries the agent's condition, so an agent has run
	// on it.
	Agent bool
	// Zone is the Node's topology.kubernetes.io/zone label.
	Zone string
}

// InternalIP is the first address, which the Node lists first when it has
// an InternalIP.
func (e Entry) InternalIP() string {
	if len(e.Addresses) == 0 {
		return ""
	}
	return e.Addresses[0]
}

// Encode returns the ConfigMap data of entries, sorted by name.
func Encode(entries []Entry) map[string]string {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var b strings.Builder
	for _, e := range sorted {
		addrs, agent, zone := strings.Join(e.Addresses, ","), "0", e.Zone
		if addrs == "" {
			addrs = "-"
		}
		if e.Agent {
			agent = "1"
		}
		if zone == "" {
			zone = "-"
		}
		fmt.Fprintf(&b, "%s %s %s %s\n", e.Name, addrs, agent, zone)
	}
	return map[string]string{keyFormat: format, keyNodes: b.String()}
}

// Decode parses ConfigMap data. A malformed line is an error that names
// it: a roster read in part would shrink the expected group.
func Decode(data map[string]string) ([]Entry, error) {
	if f := data[keyFormat]; f != format {
		return nil, fmt.Errorf("roster: data key %q is %q, want %q", keyFormat, f, format)
	}
	var out []Entry
	for i, line := range strings.Split(strings.TrimSuffix(data[keyNodes], "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("roster: line %d %q has %d fields, want 4 (name, addresses, agent, zone)", i+1, line, len(f))
		}
		e := Entry{Name: f[0]}
		if f[1] != "-" {
			e.Addresses = strings.Split(f[1], ",")
		}
		switch f[2] {
		case "1":
			e.Agent = true
		case "0":
		default:
			return nil, fmt.Errorf("roster: line %d: agent field %q must be 0 or 1", i+1, f[2])
		}
		if f[3] != "-" {
			e.Zone = f[3]
		}
		out = append(out, e)
	}
	return out, nil
}
