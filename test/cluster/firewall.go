package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RulePrefix starts the comment of every firewall rule the harness adds, so
// that hack/e2e.sh can find and remove rules a killed test run left behind.
const RulePrefix = "haagent-e2e"

// Firewall adds iptables rules for one test run. Every rule carries the
// comment "haagent-e2e-<pid>-<run id>", where pid is the test process's;
// Close removes them all. Should the test process die before that, the
// rules outlive it: hack/e2e.sh removes those whose process is gone.
//
// All simulated nodes share the host's loopback interface, so a fault is a
// set of DROP rules on the INPUT chain, matched by address. A dropped packet
// is silently lost: a peer sees a timeout, as with a powered-off host or a cut
// cable, not a refused connection (which a DROP on OUTPUT would give, as an
// error from send). Loopback traffic crosses INPUT once, so each rule sees
// each packet once.
//
// Addresses alone do not tell which node sent a packet: a process that dials
// a 127.x address without binding a source address gets 127.0.0.1 as its
// source, whichever node it plays. So each agent runs with a group ID of its
// own, and a SourceNAT rule rewrites the source of its new connections to its
// node's address. The replies then go to the node's address, but the kernel
// rewrites them back to 127.0.0.1 on the sending side, before they reach
// INPUT. The rules therefore match a packet both by its addresses and by the
// reply tuple of its connection (conntrack), which always holds the real
// addresses of both ends: together they catch both directions of every
// connection, whoever opened it.
type Firewall struct {
	comment string

	mu     sync.Mutex
	faults map[*Fault]bool
	closed bool
}

// rule is one iptables rule: a table, a chain and the match and target.
type rule struct {
	table, chain string
	spec         []string
}

// Fault is one network fault, on either ground: a group of rules added
// together and removed together (of a Firewall, or in the namespaces of a
// Network), or a link set down. Remove undoes it.
type Fault struct {
	name   string
	remove func() error

	mu      sync.Mutex
	removed bool
}

// Faults are the network faults a test causes between nodes, named by the
// nodes' addresses, whichever ground the nodes run on: the host's loopback
// (Firewall) or network namespaces of their own (Network).
type Faults interface {
	// Isolate drops every packet to and from each address.
	Isolate(ips ...netip.Addr) (*Fault, error)
	// Partition drops every packet between each address of a and each of b.
	Partition(a, b []netip.Addr) (*Fault, error)
	// Loss drops each packet to or from ip with probability p.
	Loss(ip netip.Addr, p float64) (*Fault, error)
}

var (
	_ Faults = (*Firewall)(nil)
	_ Faults = (*Network)(nil)
)

// NewFirewall checks that iptables is usable (it needs root) and returns a
// firewall whose rules carry the comment RulePrefix-<pid>-runID.
func NewFirewall(runID string) (*Firewall, error) {
	if runID == "" || strings.ContainsAny(runID, " \t\n\"'") {
		return nil, fmt.Errorf("cluster: firewall run ID %q must be non-empty, without spaces or quotes", runID)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("cluster: network faults need root (iptables)")
	}
	for _, bin := range []string{"iptables", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("cluster: network faults need %s: %w (hack/e2e.sh installs the iptables package)", bin, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "iptables-save", "-t", "filter").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cluster: iptables does not work here: %w\n%s", err, out)
	}
	comment := fmt.Sprintf("%s-%d-%s", RulePrefix, os.Getpid(), runID)
	return &Firewall{comment: comment, faults: map[*Fault]bool{}}, nil
}

// Comment is the comment every rule of this firewall carries.
func (fw *Firewall) Comment() string { return fw.comment }

// drop is a DROP rule on INPUT with the given matches.
func drop(match ...string) rule {
	return rule{table: "filter", chain: "INPUT", spec: append(match, "-j", "DROP")}
}

// Isolate drops every packet to and from each address: the host is gone
// from the network, as when powered off. The rules go in front of any
// other fault's.
func (fw *Firewall) Isolate(ips ...netip.Addr) (*Fault, error) {
	var rules []rule
	for _, ip := range ips {
		a := hostAddr(ip)
		rules = append(rules,
			drop("-s", a),
			drop("-d", a),
			drop("-m", "conntrack", "--ctreplsrc", a),
			drop("-m", "conntrack", "--ctrepldst", a),
		)
	}
	return fw.add("isolate "+addrList(ips), rules)
}

// Partition drops every packet between each address of a and each address
// of b, both ways. Traffic within a side, and with the control plane, flows.
func (fw *Firewall) Partition(a, b []netip.Addr) (*Fault, error) {
	var rules []rule
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return nil, fmt.Errorf("cluster: partition: %s is on both sides", x)
			}
			xa, ya := hostAddr(x), hostAddr(y)
			rules = append(rules,
				drop("-s", xa, "-d", ya),
				drop("-s", ya, "-d", xa),
				drop("-m", "conntrack", "--ctreplsrc", xa, "--ctrepldst", ya),
				drop("-m", "conntrack", "--ctreplsrc", ya, "--ctrepldst", xa),
			)
		}
	}
	return fw.add("partition "+addrList(a)+" | "+addrList(b), rules)
}

// Loss drops each packet to or from ip with probability p (0 < p ≤ 1),
// independently.
func (fw *Firewall) Loss(ip netip.Addr, p float64) (*Fault, error) {
	if !(p > 0 && p <= 1) {
		return nil, fmt.Errorf("cluster: loss probability (%v) must be in (0, 1]", p)
	}
	a := hostAddr(ip)
	prob := strconv.FormatFloat(p, 'f', -1, 64)
	stat := []string{"-m", "statistic", "--mode", "random", "--probability", prob}
	// Each packet of a connection of ip's has ip at one end of the reply
	// tuple; the negation keeps its traffic with itself from being counted twice.
	return fw.add(fmt.Sprintf("loss %s p=%s", ip, prob), []rule{
		drop(append([]string{"-m", "conntrack", "--ctreplsrc", a}, stat...)...),
		drop(append([]string{"-m", "conntrack", "--ctrepldst", a, "!", "--ctreplsrc", a}, stat...)...),
	})
}

// BlockPort drops TCP traffic to and from ip:port, for instance a node's
// API proxy, which cuts the node off from the control plane only.
func (fw *Firewall) BlockPort(ip netip.Addr, port int) (*Fault, error) {
	a, p := hostAddr(ip), strconv.Itoa(port)
	return fw.add(fmt.Sprintf("block %s:%s", ip, p), []rule{
		drop("-p", "tcp", "-d", a, "--dport", p),
		drop("-p", "tcp", "-s", a, "--sport", p),
	})
}

// SourceNAT gives new loopback connections of the processes of group gid
// the source address ip, so that the rules above know them as the node's.
// It is not a fault; remove it when the node goes away.
func (fw *Firewall) SourceNAT(gid uint32, ip netip.Addr) (*Fault, error) {
	return fw.add(fmt.Sprintf("snat gid %d to %s", gid, ip), []rule{{
		table: "nat", chain: "POSTROUTING",
		spec: []string{"-o", "lo", "-m", "owner", "--gid-owner", strconv.FormatUint(uint64(gid), 10),
			"-j", "SNAT", "--to-source", ip.String()},
	}})
}

// add inserts the rules at the head of their chains in one iptables-restore
// transaction, so that a fault starts at one instant.
func (fw *Firewall) add(name string, rules []rule) (*Fault, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.closed {
		return nil, errors.New("cluster: firewall is closed")
	}
	f := &Fault{name: name}
	f.remove = func() error {
		fw.mu.Lock()
		defer fw.mu.Unlock()
		if err := fw.restore("-D", rules); err != nil {
			return err
		}
		delete(fw.faults, f)
		return nil
	}
	if err := fw.restore("-I", rules); err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", name, err)
	}
	fw.faults[f] = true
	return f, nil
}

// restore applies op (-I or -D) to every rule in one transaction per table.
func (fw *Firewall) restore(op string, rules []rule) error {
	byTable := map[string][]rule{}
	var tables []string
	for _, r := range rules {
		if _, ok := byTable[r.table]; !ok {
			tables = append(tables, r.table)
		}
		byTable[r.table] = append(byTable[r.table], r)
	}
	var in bytes.Buffer
	for _, t := range tables {
		fmt.Fprintf(&in, "*%s\n", t)
		for _, r := range byTable[t] {
			line := append([]string{op, r.chain}, r.spec...)
			// The comment goes before the target, where iptables-save prints it.
			line = insertComment(line, fw.comment)
			fmt.Fprintln(&in, strings.Join(line, " "))
		}
		fmt.Fprintln(&in, "COMMIT")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "iptables-restore", "--noflush", "--wait")
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %w: %s\ninput:\n%s", err, bytes.TrimSpace(out), in.String())
	}
	return nil
}

func insertComment(line []string, comment string) []string {
	for i, w := range line {
		if w == "-j" {
			out := append([]string{}, line[:i]...)
			out = append(out, "-m", "comment", "--comment", comment)
			return append(out, line[i:]...)
		}
	}
	return append(line, "-m", "comment", "--comment", comment)
}

// Remove undoes the fault; a second call does nothing.
func (f *Fault) Remove() error {
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
func (f *Fault) String() string { return f.name }

// Rules lists the rules in the kernel that carry this firewall's comment,
// as iptables-save prints them, each line prefixed with its table.
func (fw *Firewall) Rules() ([]string, error) {
	return RulesWithComment(fw.comment)
}

// Close removes every rule this firewall added, then any rule that still
// carries its comment. Safe to call more than once.
func (fw *Firewall) Close() error {
	fw.mu.Lock()
	fw.closed = true
	faults := make([]*Fault, 0, len(fw.faults))
	for f := range fw.faults {
		faults = append(faults, f)
	}
	fw.mu.Unlock()
	var errs []error
	for _, f := range faults {
		if err := f.Remove(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := RemoveRulesWithComment(fw.comment); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RulesWithComment lists the rules whose comment starts with prefix, each as
// "<table> <rule as iptables-save prints it>".
func RulesWithComment(prefix string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "iptables-save").Output()
	if err != nil {
		return nil, fmt.Errorf("cluster: iptables-save: %w", err)
	}
	var rules []string
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, "-A ") && hasCommentPrefix(line, prefix):
			rules = append(rules, table+" "+line)
		}
	}
	return rules, sc.Err()
}

func hasCommentPrefix(line, prefix string) bool {
	i := strings.Index(line, "--comment ")
	if i < 0 {
		return false
	}
	c := strings.TrimPrefix(line[i+len("--comment "):], `"`)
	return strings.HasPrefix(c, prefix)
}

// RemoveRulesWithComment deletes every rule whose comment starts with prefix.
func RemoveRulesWithComment(prefix string) error {
	rules, err := RulesWithComment(prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rules {
		table, line, _ := strings.Cut(r, " ")
		args := []string{"-w", "-t", table, "-D"}
		fields := strings.Fields(strings.TrimPrefix(line, "-A "))
		for i, f := range fields {
			// iptables-save prints conntrack addresses without their /32,
			// and iptables -D then fails to match them.
			if i > 0 && conntrackAddrFlags[fields[i-1]] && !strings.Contains(f, "/") {
				f += "/32"
			}
			args = append(args, f)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, "iptables", args...).CombinedOutput()
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster: iptables %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}

var conntrackAddrFlags = map[string]bool{
	"--ctorigsrc": true, "--ctorigdst": true, "--ctreplsrc": true, "--ctrepldst": true,
}

func hostAddr(ip netip.Addr) string { return ip.String() + "/32" }

func addrList(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}
