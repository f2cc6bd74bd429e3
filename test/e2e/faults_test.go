package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haagent/haagent/test/cluster"
)

// dialHelperEnv makes the test binary a one-shot TCP client (see TestMain):
// it dials the address in the variable and prints what the server said.
const dialHelperEnv = "HAAGENT_E2E_DIAL"

// Exit codes of the dial helper.
const (
	dialOK      = 0
	dialTimeout = 3
	dialError   = 4
)

func dialHelper(addr string) int {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		fmt.Println(err)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return dialTimeout
		}
		return dialError
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		fmt.Println(err)
		return dialError
	}
	fmt.Print(line)
	return dialOK
}

// dialAs dials addr from a process of group gid, as an agent would, and
// returns the helper's exit code and output.
func dialAs(t *testing.T, gid uint32, addr string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), dialHelperEnv+"="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: gid, NoSetGroups: true}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, strings.TrimSpace(string(out))
	case errors.As(err, &ee):
		return ee.ExitCode(), strings.TrimSpace(string(out))
	default:
		t.Fatalf("dial helper: %v", err)
		return -1, ""
	}
}

// whoAmIServer accepts TCP connections on ip and tells each client the
// address it came from; it also echoes UDP datagrams on the same port.
func whoAmIServer(t *testing.T, ip netip.Addr) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			fmt.Fprintln(c, host)
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	return addr
}

// udpEcho sends a datagram from a socket bound to from (any address if
// invalid) to addr and reports whether the echo came back.
func udpEcho(t *testing.T, from netip.Addr, addr string) bool {
	t.Helper()
	local := ""
	if from.IsValid() {
		local = net.JoinHostPort(from.String(), "0")
	}
	pc, err := net.ListenPacket("udp", local)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.WriteTo([]byte("ping"), to); err != nil {
		t.Fatalf("UDP send to %s: %v (a DROP on INPUT must not fail the send)", addr, err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 16)
	_, _, err = pc.ReadFrom(buf)
	return err == nil
}

// tcpTimesOut reports whether a connection from this process to addr times
// out (the packets are dropped) rather than succeeding or being refused.
func tcpTimesOut(t *testing.T, addr string) bool {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err == nil {
		c.Close()
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	t.Errorf("dial %s: %v, want a timeout or success", addr, err)
	return false
}

// mustFault(t)(fw.Isolate(ip)) is the fault, or the end of the test.
func mustFault(t *testing.T) func(*cluster.Fault, error) *cluster.Fault {
	return func(f *cluster.Fault, err error) *cluster.Fault {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
}

func mustRemove(t *testing.T, f *cluster.Fault) {
	t.Helper()
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
}

// TestHarness_firewall checks the fault rules on the host's loopback: a
// dropped packet is lost silently (a timeout, not a refusal), a partition
// cuts both directions of TCP and UDP between two node addresses whichever
// side dials, and the source NAT makes an agent's connections come from its
// node's address.
func TestHarness_firewall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network faults need root: run hack/e2e.sh as root")
	}
	fw, err := cluster.NewFirewall("fw" + strconv.Itoa(rand.IntN(1_000_000)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fw.Close(); err != nil {
			t.Error(err)
		}
	})
	addrs := cluster.NewNodeAddresses()
	var ips []netip.Addr
	var srv []string
	for range 3 {
		a, err := addrs.Next()
		if err != nil {
			t.Fatal(err)
		}
		ips = append(ips, a.IP)
		srv = append(srv, whoAmIServer(t, a.IP))
	}
	a, b, c := ips[0], ips[1], ips[2]
	gidA, gidB := uint32(1_000_000+rand.IntN(1_000_000)), uint32(2_000_000+rand.IntN(1_000_000))
	mustFault(t)(fw.SourceNAT(gidA, a))
	mustFault(t)(fw.SourceNAT(gidB, b))

	t.Run("source NAT", func(t *testing.T) {
		code, out := dialAs(t, gidA, srv[1])
		if code != dialOK || out != a.String() {
			t.Errorf("dial from group of %s to %s: exit %d, server saw %q; want %s", a, srv[1], code, out, a)
		}
	})

	t.Run("isolate drops silently, both ways", func(t *testing.T) {
		f := mustFault(t)(fw.Isolate(c))
		if !tcpTimesOut(t, srv[2]) {
			t.Errorf("TCP to isolated %s: connected", c)
		}
		if udpEcho(t, netip.Addr{}, srv[2]) {
			t.Errorf("UDP to isolated %s: echoed", c)
		}
		if code, out := dialAs(t, gidA, srv[2]); code != dialTimeout {
			t.Errorf("agent of %s to isolated %s: exit %d (%s), want a timeout", a, c, code, out)
		}
		if !udpEcho(t, a, srv[1]) {
			t.Errorf("UDP %s to %s, not isolated: no echo", a, b)
		}
		mustRemove(t, f)
		if tcpTimesOut(t, srv[2]) || !udpEcho(t, netip.Addr{}, srv[2]) {
			t.Errorf("%s still cut off after the rules were removed", c)
		}
	})

	t.Run("partition cuts both directions", func(t *testing.T) {
		f := mustFault(t)(fw.Partition([]netip.Addr{a}, []netip.Addr{b}))
		if code, out := dialAs(t, gidA, srv[1]); code != dialTimeout {
			t.Errorf("TCP %s to %s across the partition: exit %d (%s), want a timeout", a, b, code, out)
		}
		if code, out := dialAs(t, gidB, srv[0]); code != dialTimeout {
			t.Errorf("TCP %s to %s across the partition: exit %d (%s), want a timeout", b, a, code, out)
		}
		if udpEcho(t, a, srv[1]) || udpEcho(t, b, srv[0]) {
			t.Error("UDP crossed the partition")
		}
		if code, out := dialAs(t, gidA, srv[2]); code != dialOK {
			t.Errorf("TCP %s to %s, same side: exit %d (%s)", a, c, code, out)
		}
		if tcpTimesOut(t, srv[0]) || tcpTimesOut(t, srv[1]) {
			t.Error("the test process (the control plane's side) lost a partitioned node")
		}
		mustRemove(t, f)
		if code, out := dialAs(t, gidA, srv[1]); code != dialOK {
			t.Errorf("TCP %s to %s after the partition healed: exit %d (%s)", a, b, code, out)
		}
	})

	t.Run("loss", func(t *testing.T) {
		f := mustFault(t)(fw.Loss(b, 1))
		if !tcpTimesOut(t, srv[1]) {
			t.Errorf("TCP to %s with 100%% loss: connected", b)
		}
		mustRemove(t, f)
		f = mustFault(t)(fw.Loss(b, 0.5))
		lost := 0
		for range 20 {
			if !udpEcho(t, a, srv[1]) {
				lost++
			}
		}
		mustRemove(t, f)
		// Request and echo each cross with p=0.5: 75 % of round trips
		// fail on average; 20 tries all passing or all failing is unlikely.
		if lost == 0 || lost == 20 {
			t.Errorf("50%% loss: %d of 20 UDP round trips lost", lost)
		}
		t.Logf("50%% loss each way: %d of 20 UDP round trips lost", lost)
	})

	t.Run("block port", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(srv[0])
		p, _ := strconv.Atoi(port)
		f := mustFault(t)(fw.BlockPort(a, p))
		if !tcpTimesOut(t, srv[0]) {
			t.Errorf("TCP to blocked %s: connected", srv[0])
		}
		mustRemove(t, f)
	})

	t.Run("leftover rules are found and removed by comment", func(t *testing.T) {
		// As after a killed test run: rules nobody will Remove.
		stray, err := cluster.NewFirewall("stray" + strconv.Itoa(rand.IntN(1_000_000)))
		if err != nil {
			t.Fatal(err)
		}
		mustFault(t)(stray.Isolate(c))
		mustFault(t)(stray.Partition([]netip.Addr{a}, []netip.Addr{b}))
		mustFault(t)(stray.Loss(a, 0.3))
		mustFault(t)(stray.BlockPort(b, 6443))
		mustFault(t)(stray.SourceNAT(gidA, a))
		rules, err := stray.Rules()
		if err != nil || len(rules) != 4+4+2+2+1 {
			t.Fatalf("%d stray rules (%v), want 13:\n%s", len(rules), err, strings.Join(rules, "\n"))
		}
		if err := cluster.RemoveRulesWithComment(stray.Comment()); err != nil {
			t.Fatal(err)
		}
		if rules, err := stray.Rules(); err != nil || len(rules) > 0 {
			t.Errorf("rules left after removal by comment (%v):\n%s", err, strings.Join(rules, "\n"))
		}
	})

	rules, err := fw.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 {
		t.Errorf("after removing the faults, rules left: %q; want the 2 source NAT rules", rules)
	}
}

// TestHarness_cleanup checks that a cluster with agents, in the middle of
// faults, leaves nothing behind once stopped: no process, no firewall rule,
// no run directory.
func TestHarness_cleanup(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 3})
	a, b, c := tc.nodes[0], tc.nodes[1], tc.nodes[2]
	mustFault(t)(tc.faults.Partition([]netip.Addr{a.IP()}, []netip.Addr{b.IP()}))
	mustFault(t)(tc.faults.Loss(a.IP(), 0.2))
	mustFault(t)(b.IsolateFromAPI())
	if err := b.PauseAgent(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Crash(); err != nil {
		t.Fatal(err)
	}
	if err := c.Return(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Crash(); err != nil {
		t.Fatal(err)
	}

	pids := tc.cp.PIDs()
	for _, n := range tc.nodes {
		if pid := n.Agent().PID(); pid != 0 {
			pids = append(pids, pid)
		}
	}
	rules, err := tc.fw.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 {
		t.Fatal("no firewall rules during the faults")
	}
	t.Logf("%d processes and %d firewall rules before the stop", len(pids), len(rules))
	dir := tc.cp.Dir()

	for _, n := range tc.nodes {
		if err := n.Stop(); err != nil {
			t.Errorf("stop %s: %v", n.Name(), err)
		}
	}
	if err := tc.fw.Close(); err != nil {
		t.Errorf("firewall: %v", err)
	}
	stopAndCheck(t, tc.cp)

	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists (kill -0: %v)", pid, err)
		}
	}
	if kids := childProcesses(t); len(kids) > 0 {
		t.Errorf("child processes left: %v", kids)
	}
	if left, err := cluster.RulesWithComment(tc.fw.Comment()); err != nil || len(left) > 0 {
		t.Errorf("firewall rules left with comment %s: %q (%v)", tc.fw.Comment(), left, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) && os.Getenv("HAAGENT_E2E_KEEP") != "1" {
		t.Errorf("run directory %s still there (stat: %v)", dir, err)
	}
}

// childProcesses lists the processes whose parent is this test process,
// as "pid name".
func childProcesses(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	var kids []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(f)
		f.Close()
		// pid (comm) state ppid ...; comm may hold spaces, so split after ')'.
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == self {
			kids = append(kids, fmt.Sprintf("%d %s", pid, s[strings.IndexByte(s, '(')+1:i]))
		}
	}
	return kids
}
