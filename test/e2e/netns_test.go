package e2e

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/probe"
	"github.com/haagent/haagent/test/cluster"
)

// TestNetns runs three real agents, each in a network namespace of its own
// linked to the others by a bridge, and checks the faults of a
// cluster.Network on them: isolation, a partition, packet loss, a blocked
// API, a link down. Every node's stack is separate, so the agents bind the
// real ports on their own addresses, with no source NAT; no kubelet runs
// yet, so the agents check the apiserver only.
func TestNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root: run hack/e2e.sh as root")
	}
	hostBefore := hostNetState(t)
	bin := haagentBinary(t)
	cp := startControlPlane(t, tuned)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cp.ApplyDeploy(ctx, deployDir(t)); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cp.APIServerURL())
	if err != nil {
		t.Fatal(err)
	}
	ncfg := cluster.DefaultNetworkConfig(strings.TrimPrefix(filepath.Base(cp.Dir()), cluster.RulePrefix+"-"))
	ncfg.APIServer = u.Host
	network, err := cluster.NewNetwork(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := network.Close(); err != nil {
			t.Errorf("close network: %v", err)
		}
	})

	var apiCheck []probe.Check
	for _, c := range cluster.NamespaceAgentChecks() {
		if c.Name == "apiserver" {
			apiCheck = append(apiCheck, c)
		}
	}
	var (
		nodes  []*cluster.NetNode
		agents []*cluster.Agent
	)
	for i := range 3 {
		name := fmt.Sprintf("node-%d", i+1)
		nn, err := network.AddNode(name)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nn)
		// No kubelet registers the Node yet, and the agents admit only
		// peers that match a Node's name and address.
		registerNode(ctx, t, cp, name, nn.IP().String())
		dir := filepath.Join(cp.Dir(), "nodes", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ac := cluster.DefaultAgentConfig(bin)
		ac.NodeName = name
		ac.Dir = dir
		ac.Checks = apiCheck
		ac.Kubeconfig = filepath.Join(dir, "agent.kubeconfig")
		if err := nn.ServiceAccountKubeconfig(ctx, cp, "haagent", "haagent", ac.Kubeconfig); err != nil {
			t.Fatal(err)
		}
		nn.ConfigureAgent(&ac)
		ac.Join = []string{net.JoinHostPort(nodes[0].IP().String(), strconv.Itoa(cluster.AgentGossipPort))}
		a, err := cluster.NewAgent(ac)
		if err != nil {
			t.Fatal(err)
		}
		// Registered before the network's Close, so it runs first.
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("----- haagent %s (%s), last 60 lines -----\n%s", name, a.LogPath(), a.LogTail(60))
			}
			if err := a.Close(); err != nil {
				t.Errorf("close agent %s: %v", name, err)
			}
		})
		agents = append(agents, a)
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range agents {
		if err := a.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Each agent runs in its node's namespace. (Not compared with the test
	// process's /proc/self/ns/net: that is the main thread's, and a locked
	// goroutine may have taken the main thread into a namespace.)
	for i, a := range agents {
		var st syscall.Stat_t
		if err := syscall.Stat(nodes[i].NetNSPath(), &st); err != nil {
			t.Fatal(err)
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", a.PID()))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("net:[%d]", st.Ino); ns != want {
			t.Fatalf("agent %s runs in network namespace %s, want its node's, %s", a.NodeName(), ns, want)
		}
	}

	allAlive := func(r *api.MembersResponse) error {
		for _, a := range agents {
			if err := memberIs(a.NodeName(), "alive")(r); err != nil {
				return err
			}
		}
		return nil
	}
	waitAgentMembers(t, agents, 30*time.Second, "three agents alive over the bridge", allAlive)

	// Isolation: the others see node-3 dead, and its agent keeps running.
	f, err := nodes[2].Isolate()
	if err != nil {
		t.Fatal(err)
	}
	waitAgentMembers(t, agents[:2], 30*time.Second, "isolated node-3 dead", memberIs("node-3", "dead"))
	if !agents[2].Running() {
		t.Fatalf("node-3's agent stopped while isolated: %v", agents[2].Err())
	}
	if _, err := agents[2].Members(ctx); err == nil {
		t.Error("node-3's agent answered from the hub while isolated")
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	waitAgentMembers(t, agents, 30*time.Second, "node-3 alive again after isolation", allAlive)

	// Partition node-1 | node-2, node-3.
	f, err = network.PartitionNodes(nodes[:1], nodes[1:])
	if err != nil {
		t.Fatal(err)
	}
	waitAgentMembers(t, agents[1:], 30*time.Second, "node-1 dead across the partition", memberIs("node-1", "dead"))
	waitAgentMembers(t, agents[:1], 30*time.Second, "node-2 dead across the partition", memberIs("node-2", "dead"))
	if err := memberIs("node-3", "alive")(mustMembers(t, agents[1])); err != nil {
		t.Errorf("node-2, on node-3's side: %v", err)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	waitAgentMembers(t, agents, 30*time.Second, "all alive after the partition", allAlive)

	// Loss: each receiver drops at random, with the run's comment: node-2
	// what arrives on its eth0, every other namespace what node-2 sends.
	// 0.5, which iptables stores exactly (it prints 0.3 as 0.29999999981).
	// By address, as the tests of either ground name nodes (Faults).
	f, err = network.Loss(nodes[1].IP(), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	lossRules := func(nn *cluster.NetNode) []string {
		t.Helper()
		out, err := nn.IptablesSave()
		if err != nil {
			t.Fatal(err)
		}
		var rules []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "-m statistic --mode random --probability 0.5") && strings.Contains(l, network.Comment()) {
				rules = append(rules, l)
			}
		}
		return rules
	}
	if got := lossRules(nodes[1]); len(got) != 1 || !strings.Contains(got[0], "-i eth0") {
		t.Errorf("node-2's iptables has loss rules %q, want one on what arrives at eth0", got)
	}
	for _, i := range []int{0, 2} {
		from := "-s " + nodes[1].IP().String() + "/32"
		if got := lossRules(nodes[i]); len(got) != 1 || !strings.Contains(got[0], from) {
			t.Errorf("%s's iptables has loss rules %q, want one on what node-2 sends (%s)", nodes[i].Name(), got, from)
		}
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, nn := range nodes {
		if got := lossRules(nn); len(got) != 0 {
			t.Errorf("loss rules left in %s after Remove: %q", nn.Name(), got)
		}
	}

	// A blocked API fails node-2's apiserver check and no one else's; its
	// peers still reach it.
	apiOK := func(a *cluster.Agent) (float64, error) {
		m, err := a.Metrics(ctx)
		if err != nil {
			return 0, err
		}
		v, ok := m.Value("haagent_probe_check_success", "check", "apiserver")
		if !ok {
			return 0, fmt.Errorf("agent %s: no haagent_probe_check_success{check=\"apiserver\"}", a.NodeName())
		}
		return v, nil
	}
	for _, a := range agents {
		waitCheck(t, a, apiOK, 1, 20*time.Second)
	}
	before := nodes[1].APITraffic()
	if before.AgentSent == 0 || before.AgentReceived == 0 {
		t.Errorf("node-2's API proxy carried none of its agent's traffic: %+v", before)
	}
	f, err = nodes[1].BlockAPI()
	if err != nil {
		t.Fatal(err)
	}
	waitCheck(t, agents[1], apiOK, 0, 30*time.Second)
	for _, i := range []int{0, 2} {
		if v, err := apiOK(agents[i]); err != nil || v != 1 {
			t.Errorf("%s's apiserver check = %v (%v) while node-2's API was blocked, want 1", agents[i].NodeName(), v, err)
		}
	}
	if err := memberIs("node-2", "alive")(mustMembers(t, agents[0])); err != nil {
		t.Errorf("node-1 with node-2's API blocked: %v", err)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	waitCheck(t, agents[1], apiOK, 1, 30*time.Second)

	// Link down: node-3 is out of reach from the hub until the link is up.
	f, err = nodes[2].LinkDown()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agents[2].Members(ctx); err == nil {
		t.Error("node-3's agent answered with its link down")
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	waitAgentMembers(t, agents[2:], 10*time.Second, "node-3 reachable with its link up", allAlive)

	// Close: agents first (the namespaces outlive their processes), then
	// the network; no namespace of the run is left.
	for _, a := range agents {
		if err := a.Close(); err != nil {
			t.Errorf("close agent %s: %v", a.NodeName(), err)
		}
	}
	if err := network.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	if strings.Contains(string(out), network.Comment()) {
		t.Errorf("namespaces left after Close:\n%s", out)
	}
	if after := hostNetState(t); after != hostBefore {
		t.Errorf("the host's namespace changed:\nbefore:\n%s\nafter:\n%s", hostBefore, after)
	}
}

// registerNode creates a Node with the InternalIP addr, as a kubelet
// registers it, without conditions.
func registerNode(ctx context.Context, t *testing.T, cp *cluster.ControlPlane, name, addr string) {
	t.Helper()
	nodes := cp.Client().CoreV1().Nodes()
	if _, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The node lifecycle controller may write the Node in between.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: addr},
			{Type: corev1.NodeHostName, Address: name},
		}
		_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hostNetState is the test process's network namespace as the ip command
// and iptables-save print it: links, addresses, routes and rules, without
// counters or timestamps.
func hostNetState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"ip", "-o", "link", "show"},
		{"ip", "-o", "addr", "show"},
		{"ip", "route", "show", "table", "all"},
		{"iptables-save"},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			switch {
			case strings.HasPrefix(l, "#"), strings.HasPrefix(l, ":"):
				continue // timestamps, chain counters
			case args[0] == "ip" && args[1] == "-o" && args[2] == "addr":
				// Drop valid_lft/preferred_lft, which count down.
				l, _, _ = strings.Cut(l, "valid_lft")
			}
			fmt.Fprintln(&b, l)
		}
	}
	return b.String()
}

// waitAgentMembers is waitMembers for agents that are not part of a
// cluster.Node.
func waitAgentMembers(t *testing.T, agents []*cluster.Agent, timeout time.Duration, what string, check func(*api.MembersResponse) error) {
	t.Helper()
	last := map[string]error{}
	pending := slices.Clone(agents)
	deadline := time.Now().Add(timeout)
	for {
		var still []*cluster.Agent
		for _, a := range pending {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := a.Members(ctx)
			cancel()
			if err == nil {
				err = check(resp)
			}
			if err != nil {
				last[a.NodeName()] = err
				still = append(still, a)
			}
		}
		if pending = still; len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, a := range pending {
				fmt.Fprintf(&b, "\n  %s: %v", a.NodeName(), last[a.NodeName()])
			}
			t.Fatalf("%s: not within %s:%s", what, timeout, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustMembers(t *testing.T, a *cluster.Agent) *api.MembersResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := a.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitCheck waits until get(a) returns want.
func waitCheck(t *testing.T, a *cluster.Agent, get func(*cluster.Agent) (float64, error), want float64, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%s's apiserver check success = %v", a.NodeName(), want), func(context.Context) (bool, error) {
		v, err := get(a)
		if err != nil {
			return false, err
		}
		if v != want {
			return false, fmt.Errorf("haagent_probe_check_success{check=\"apiserver\"} = %v", v)
		}
		return true, nil
	})
}
