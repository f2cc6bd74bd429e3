package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/test/cluster"
)

// TestMain removes the haagent binary built for this test process, and
// doubles as a tiny dialer for the firewall test (see dialHelper).
func TestMain(m *testing.M) {
	if addr := os.Getenv(dialHelperEnv); addr != "" {
		os.Exit(dialHelper(addr))
	}
	code := m.Run()
	if agentBuild.dir != "" {
		os.RemoveAll(agentBuild.dir)
	}
	os.Exit(code)
}

// agentBuild is the haagent binary, built once per test process from the
// checkout this test module sits in.
var agentBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func haagentBinary(t *testing.T) string {
	t.Helper()
	agentBuild.once.Do(func() {
		root, err := cluster.RepoRoot()
		if err != nil {
			agentBuild.err = err
			return
		}
		if agentBuild.dir, err = os.MkdirTemp("", "haagent-e2e-bin-"); err != nil {
			agentBuild.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		agentBuild.path, agentBuild.err = cluster.BuildAgent(ctx, root, agentBuild.dir)
		if agentBuild.err == nil {
			t.Logf("built %s in %s", agentBuild.path, time.Since(start).Round(100*time.Millisecond))
		}
	})
	if agentBuild.err != nil {
		t.Fatal(agentBuild.err)
	}
	return agentBuild.path
}

// deployDir is deploy/ of the checkout.
func deployDir(t *testing.T) string {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "deploy")
}

// newFirewall returns a firewall for the control plane's run, removed when
// the test ends. Its rules carry the comment haagent-e2e-<pid>-<run id>,
// the run ID being that of the control plane's run directory.
func newFirewall(t *testing.T, cp *cluster.ControlPlane) *cluster.Firewall {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network faults need root: run hack/e2e.sh as root")
	}
	runID := strings.TrimPrefix(filepath.Base(cp.Dir()), cluster.RulePrefix+"-")
	fw, err := cluster.NewFirewall(runID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fw.Close(); err != nil {
			t.Errorf("remove firewall rules: %v", err)
		}
	})
	return fw
}

// clusterOptions shape a test cluster.
type clusterOptions struct {
	nodes   int
	timings timings
	// agent, if set, adjusts each node's agent configuration.
	agent func(i int, cfg *cluster.AgentConfig)
	// fence gives each node a fence file (see tc.fenceFile) and its agent
	// --fence-action=command with a command that creates it, which powers
	// the node's kubelet off. agent may override the flags.
	fence bool
	// auditLog turns on the apiserver's audit log (cluster.ControlPlaneConfig.AuditLog).
	auditLog bool
	// ground is where the nodes run: fakeGround (the default) or
	// hollowGround.
	ground ground
}

// ground is where a test's nodes run.
//
//   - fakeGround: a FakeKubelet each, in the test process, on the host's
//     loopback (an address of 127/8 each), faults as iptables rules on the
//     host. Light and fast: many nodes, tuned timings (a Lease every 2 s).
//   - hollowGround: the real kubelet code (kubemark, fake container runtime)
//     in a network namespace of its own each, linked to a bridge, with the
//     agent beside it; faults in the namespaces. Its container runtime's
//     state is the evidence of where a pod ran. About 90 MB per node, a
//     Lease every 10 s (so stock timings only), 10 s to register.
type ground int

const (
	fakeGround ground = iota
	hollowGround
)

func (g ground) String() string {
	if g == hollowGround {
		return "hollow"
	}
	return "fake"
}

// grounds runs f as a subtest on each ground.
func grounds(t *testing.T, f func(t *testing.T, g ground)) {
	for _, g := range []ground{fakeGround, hollowGround} {
		t.Run(g.String(), func(t *testing.T) { f(t, g) })
	}
}

// testCluster is a control plane with deploy/ installed, a firewall, and
// nodes each running a fake kubelet and a real haagent. Every kubelet
// records its pods' containers in journal.
type testCluster struct {
	cp *cluster.ControlPlane
	// fw is the host's firewall (the fake ground's faults), net the
	// namespaces of the hollow ground; faults is whichever the nodes use.
	fw      *cluster.Firewall
	net     *cluster.Network
	faults  cluster.Faults
	nodes   []*cluster.Node
	journal *cluster.Journal
}

// fenceFile is the node's fence file, with clusterOptions.fence.
func (tc *testCluster) fenceFile(node string) string {
	return filepath.Join(tc.cp.Dir(), "fence", node)
}

// startCluster starts everything and waits until every agent answers
// /readyz. Cleanup stops the nodes (printing each agent's log if the test
// failed), then removes the firewall rules, then stops the control plane.
func startCluster(t *testing.T, opts clusterOptions) *testCluster {
	t.Helper()
	bin := haagentBinary(t)
	cp := startControlPlane(t, opts.timings, func(cfg *cluster.ControlPlaneConfig) { cfg.AuditLog = opts.auditLog })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cp.ApplyDeploy(ctx, deployDir(t)); err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{cp: cp, journal: cluster.NewJournal()}
	var kubemark string
	if opts.ground == hollowGround {
		if opts.timings == tuned {
			t.Fatal("test bug: the hollow ground runs real kubelets, which renew their Lease every 10 s: too slow for the tuned 8 s grace period")
		}
		kubemark = kubemarkBinary(t)
		tc.net = newNetwork(t, cp)
		tc.faults = tc.net
	} else {
		tc.fw = newFirewall(t, cp)
		tc.faults = tc.fw
	}
	touch := ""
	if opts.fence {
		var err error
		if touch, err = exec.LookPath("touch"); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(tc.fenceFile("x")), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	addrs := cluster.NewNodeAddresses()
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	var seed string
	var configs []cluster.NodeConfig
	for i := range opts.nodes {
		addr, err := addrs.Next()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			seed = net.JoinHostPort(addr.IP.String(), strconv.Itoa(cluster.AgentGossipPort))
		}
		kc := cluster.DefaultFakeKubeletConfig(fmt.Sprintf("node-%d", i+1), addr)
		kc.Logger = log
		kc.Journal = tc.journal
		if opts.timings == tuned {
			kc.LeaseRenewInterval = 2 * time.Second
			kc.StatusUpdateInterval = 2 * time.Second
		}
		ac := cluster.DefaultAgentConfig(bin)
		ac.Join = []string{seed}
		if opts.fence {
			kc.FenceFile = tc.fenceFile(kc.NodeName)
			// Split on spaces by the agent: the path has none.
			ac.ExtraArgs = append(ac.ExtraArgs, "--fence-action=command", "--fence-command="+touch+" "+kc.FenceFile)
		}
		if opts.agent != nil {
			opts.agent(i, &ac)
		}
		nc := cluster.NodeConfig{Kubelet: kc, Agent: &ac}
		if opts.ground == hollowGround {
			if nc.Net, err = tc.net.AddNode(kc.NodeName); err != nil {
				t.Fatal(err)
			}
			nc.Hollow = &cluster.HollowKubeletConfig{Binary: kubemark}
			if i == 0 {
				seed = net.JoinHostPort(nc.Net.IP().String(), strconv.Itoa(cluster.AgentGossipPort))
				ac.Join = []string{seed}
			}
		}
		configs = append(configs, nc)
	}
	// A hollow kubelet takes some 10 s to register (its first Lease write
	// waits for the Node), so those nodes start all at once; fake ones in
	// turn, as they always have.
	started := make([]*cluster.Node, len(configs))
	errs := make([]error, len(configs))
	var wg sync.WaitGroup
	for i, nc := range configs {
		start := func() { started[i], errs[i] = cluster.StartNode(ctx, cp, tc.fw, nc) }
		if opts.ground != hollowGround {
			start()
			if errs[i] != nil {
				break
			}
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); start() }()
	}
	wg.Wait()
	for _, n := range started {
		if n == nil {
			continue
		}
		t.Cleanup(func() {
			if a := n.Agent(); a != nil && t.Failed() {
				t.Logf("----- haagent %s (%s), last 60 lines -----\n%s", n.Name(), a.LogPath(), a.LogTail(60))
			}
			if k := n.HollowKubelet(); k != nil && t.Failed() {
				t.Logf("----- kubemark %s (%s), last 30 lines -----\n%s", n.Name(), k.LogPath(), k.LogTail(30))
			}
			if err := n.Stop(); err != nil {
				t.Errorf("stop node %s: %v", n.Name(), err)
			}
		})
		tc.nodes = append(tc.nodes, n)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, n := range tc.nodes {
		if err := n.Agent().WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return tc
}

// kubemarkBinary is the hollow kubelet, built beside the control plane.
func kubemarkBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(os.Getenv(binDirEnv), cluster.KubemarkBinary)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no kubemark in %s=%s (%v): hack/e2e.sh builds it with hack/build-control-plane.sh", binDirEnv, os.Getenv(binDirEnv), err)
	}
	return bin
}

// newNetwork creates the namespaces' hub of a hollow-ground cluster, with
// an API proxy per node to cp's apiserver, closed when the test ends.
func newNetwork(t *testing.T, cp *cluster.ControlPlane) *cluster.Network {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root: run hack/e2e.sh as root")
	}
	u, err := url.Parse(cp.APIServerURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.DefaultNetworkConfig(strings.TrimPrefix(filepath.Base(cp.Dir()), cluster.RulePrefix+"-"))
	cfg.APIServer = u.Host
	network, err := cluster.NewNetwork(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := network.Close(); err != nil {
			t.Errorf("close network: %v", err)
		}
	})
	return network
}

// names of the nodes.
func nodeNames(nodes []*cluster.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name()
	}
	return out
}

// waitMembers polls the /members of every node's agent until check passes
// for each, and returns, per node, when it first passed. A failure shows
// the last error of every agent that had not passed.
func waitMembers(t *testing.T, nodes []*cluster.Node, timeout time.Duration, what string, check func(*api.MembersResponse) error) map[string]time.Time {
	t.Helper()
	passed := map[string]time.Time{}
	last := map[string]error{}
	deadline := time.Now().Add(timeout)
	for {
		for _, n := range nodes {
			if _, ok := passed[n.Name()]; ok {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := n.Agent().Members(ctx)
			cancel()
			if err == nil {
				err = check(resp)
			}
			if err == nil {
				passed[n.Name()] = time.Now()
				delete(last, n.Name())
			} else {
				last[n.Name()] = err
			}
		}
		if len(passed) == len(nodes) {
			return passed
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for name, err := range last {
				fmt.Fprintf(&b, "\n  %s: %v", name, err)
			}
			t.Fatalf("%s: not within %s:%s", what, timeout, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// memberIs returns a check that name is in state on the agent.
func memberIs(name, state string) func(*api.MembersResponse) error {
	return func(resp *api.MembersResponse) error {
		m, ok := cluster.Member(resp, name)
		if !ok {
			return fmt.Errorf("%s is not a member", name)
		}
		if m.State.String() != state {
			return fmt.Errorf("%s is %s, want %s", name, m.State, state)
		}
		return nil
	}
}
