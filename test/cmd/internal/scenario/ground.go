package scenario

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/haagent/haagent/test/cluster"
)

// Ground is what a cluster's nodes run on.
type Ground string

const (
	// Fake nodes are cluster.FakeKubelet objects inside the test process,
	// each on an address of the host's loopback; a crash cuts the address
	// off with iptables on the host. Fast to start (about a second a node).
	Fake Ground = "fake"
	// Hollow nodes run the real kubelet code (kubemark --morph=kubelet, a
	// fake container runtime) each in a network namespace of its own,
	// linked to a hub bridge by a veth, with its agent in the same
	// namespace; a crash sets the node's link down and kills its kubelet
	// and agent. A hollow kubelet takes 10 s to 3 minutes to register, and
	// renews its Lease every 10 s as any kubelet does.
	Hollow Ground = "hollow"
)

// Grounds lists the grounds, the default first.
func Grounds() []Ground { return []Ground{Fake, Hollow} }

// ParseGround reads a ground's name; flag names the option in the error.
func ParseGround(flag, s string) (Ground, error) {
	for _, g := range Grounds() {
		if s == string(g) {
			return g, nil
		}
	}
	names := make([]string, 0, 2)
	for _, g := range Grounds() {
		names = append(names, string(g))
	}
	return "", fmt.Errorf("%s (%q) must be one of %s", flag, s, strings.Join(names, ", "))
}

// orFake is g, with the zero value read as Fake.
func (g Ground) orFake() Ground {
	if g == "" {
		return Fake
	}
	return g
}

// Describe says in a few words what a node of the ground is.
func (g Ground) Describe() string {
	if g.orFake() == Hollow {
		return "hollow nodes: a real kubelet (kubemark, fake container runtime) per node, each in a network namespace of its own"
	}
	return "fake nodes: a fake kubelet per node, inside the test process, on an address of the host's loopback"
}

// CrashDescription says what a crash does to a node of the ground.
func (g Ground) CrashDescription() string {
	if g.orFake() == Hollow {
		return "its network link goes down, its agent and its kubelet (kubemark) get SIGKILL"
	}
	return "its address drops every packet, its agent gets SIGKILL, its kubelet stops"
}

// validateGround checks what the hollow ground cannot do.
func (c Config) validateGround() error {
	switch c.Ground.orFake() {
	case Fake:
		return nil
	case Hollow:
	default:
		return fmt.Errorf("scenario: unknown ground %q (fake or hollow)", c.Ground)
	}
	if c.Timings == Tuned {
		return errors.New("scenario: the tuned stock timings cannot run on the hollow ground: a real kubelet renews its node Lease every 10 s (kubemark has no flag to change it), too seldom for the tuned 8 s node-monitor-grace-period: every node would flap NotReady")
	}
	if c.PrometheusBin != "" {
		return errors.New("scenario: no Prometheus on the hollow ground: it runs in the host's network namespace, and the agents listen inside the nodes' namespaces, which nothing on the host reaches")
	}
	if c.AuditLog {
		return errors.New("scenario: no API-cost audit log on the hollow ground: a hollow node's kubelet and agent share its address and its API proxy, so the agent's requests cannot be told apart from the kubelet's")
	}
	return nil
}

// kubemark is the hollow kubelet's binary, beside the control plane's.
func (c Config) kubemark() string { return filepath.Join(c.BinDir, cluster.KubemarkBinary) }

// geteuid is os.Geteuid, replaced in tests.
var geteuid = os.Geteuid

// checkHollowHost checks, before anything starts, what the hollow ground
// needs of the machine: root (network and mount namespaces) and kubemark.
func (c Config) checkHollowHost() error {
	if geteuid() != 0 {
		return errors.New("scenario: the hollow ground needs root: every node is a network namespace (ip netns) and each hollow kubelet a mount namespace of its own; run as root, or use the fake ground")
	}
	if _, err := os.Stat(c.kubemark()); err != nil {
		return fmt.Errorf("scenario: the hollow ground needs kubemark in the control-plane directory (hack/build-control-plane.sh builds it): %w", err)
	}
	return nil
}

// startHollowNodes creates the namespaces' hub and starts every node in a
// namespace of its own, all at once (each kubelet takes 10 s or more to
// register), printing each as it is up.
func (c *Cluster) startHollowNodes(ctx context.Context, p *Printer, runID string) error {
	u, err := url.Parse(c.CP.APIServerURL())
	if err != nil {
		return err
	}
	ncfg := cluster.DefaultNetworkConfig(runID)
	ncfg.APIServer = u.Host
	if c.Net, err = cluster.NewNetwork(ncfg); err != nil {
		return err
	}
	var configs []cluster.NodeConfig
	var seed string
	for i := range c.cfg.Nodes {
		name := fmt.Sprintf("node-%d", i+1)
		nn, err := c.Net.AddNode(name)
		if err != nil {
			return err
		}
		if i == 0 {
			seed = net.JoinHostPort(nn.IP().String(), strconv.Itoa(cluster.AgentGossipPort))
		}
		// Of the fake kubelet's configuration only the name counts here.
		nc := cluster.NodeConfig{
			Kubelet: cluster.FakeKubeletConfig{NodeName: name},
			Net:     nn,
			Hollow:  &cluster.HollowKubeletConfig{Binary: c.cfg.kubemark()},
		}
		if c.cfg.Haagent != "" {
			ac := cluster.DefaultAgentConfig(c.cfg.Haagent)
			ac.Join = []string{seed}
			ac.ExtraArgs = append(ac.ExtraArgs, c.cfg.AgentArgs...)
			nc.Agent = &ac
		}
		configs = append(configs, nc)
	}
	started := make([]*cluster.Node, len(configs))
	errs := make([]error, len(configs))
	begin := time.Now()
	var mu sync.Mutex
	up := 0
	var wg sync.WaitGroup
	for i, nc := range configs {
		wg.Go(func() {
			started[i], errs[i] = cluster.StartNode(ctx, c.CP, nil, nc)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("start %s: %w", nc.Kubelet.NodeName, errs[i])
				return
			}
			mu.Lock()
			up++
			p.Printf("  %s registered and Ready after %s (%d of %d)", nc.Kubelet.NodeName, Round(time.Since(begin)), up, len(configs))
			mu.Unlock()
		})
	}
	// Say something while the kubelets register: it may take minutes.
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				mu.Lock()
				n := up
				mu.Unlock()
				p.Printf("  … %d of %d nodes up after %s (a hollow kubelet takes 10 s to 3 minutes to register on a busy machine)", n, len(configs), Round(time.Since(begin)))
			}
		}
	}()
	wg.Wait()
	close(done)
	for _, n := range started {
		if n != nil {
			c.Nodes = append(c.Nodes, n)
		}
	}
	return errors.Join(errs...)
}

// Faults are the network faults of the cluster's ground: the host's
// firewall (fake) or the namespaces' network (hollow).
func (c *Cluster) Faults() cluster.Faults {
	if c.Net != nil {
		return c.Net
	}
	return c.FW
}

// Ground is the cluster's ground.
func (c *Cluster) Ground() Ground { return c.cfg.Ground.orFake() }
