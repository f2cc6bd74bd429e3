package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/haagent/haagent/agent/probe"
)

// netnsDir is where `ip netns` keeps the bind mounts that name namespaces.
const netnsDir = "/run/netns"

// NetworkConfig describes a Network.
type NetworkConfig struct {
	// RunID names the run, as Firewall's does: every namespace is named
	// RulePrefix-<pid>-<RunID>-<node> (the hub's node being "hub") and every
	// iptables rule carries the comment RulePrefix-<pid>-<RunID>, so that
	// hack/e2e.sh can remove what a killed run left behind.
	RunID string
	// Prefix is where the addresses come from: the hub takes the first
	// address, the nodes the following ones in the order they are added.
	// It must be IPv4, with room for the hub and at least one node.
	Prefix netip.Prefix
	// APIServer is the apiserver's host:port as the test process reaches it
	// (ControlPlane.APIServerURL's host). Empty starts no API proxies.
	APIServer string
	// APIProxyBasePort is the port of the first node's API proxy on the
	// hub address; the node added i-th (from 0) gets APIProxyBasePort+i, so
	// that each node's API traffic can be counted and blocked on its own.
	APIProxyBasePort int
}

// DefaultNetworkConfig returns a configuration for the run runID with the
// prefix 10.213.0.0/16 and API proxies from port 6443.
func DefaultNetworkConfig(runID string) NetworkConfig {
	return NetworkConfig{
		RunID:            runID,
		Prefix:           netip.MustParsePrefix("10.213.0.0/16"),
		APIProxyBasePort: APIProxyPort,
	}
}

// Validate checks the configuration.
func (c NetworkConfig) Validate() error {
	if c.RunID == "" || !validRunID.MatchString(c.RunID) {
		return fmt.Errorf("cluster: network: RunID %q must be non-empty and made of letters, digits, '-' and '_'", c.RunID)
	}
	if len(c.RunID) > 64 {
		return fmt.Errorf("cluster: network: RunID %q is %d characters, at most 64", c.RunID, len(c.RunID))
	}
	if !c.Prefix.IsValid() || !c.Prefix.Addr().Is4() {
		return fmt.Errorf("cluster: network: Prefix (%s) must be an IPv4 prefix", c.Prefix)
	}
	if c.Prefix.Bits() > 30 {
		return fmt.Errorf("cluster: network: Prefix (%s) must be /30 or shorter, to hold the hub and a node", c.Prefix)
	}
	if c.Prefix.Masked() != c.Prefix {
		return fmt.Errorf("cluster: network: Prefix (%s) has host bits set; use %s", c.Prefix, c.Prefix.Masked())
	}
	if c.APIServer != "" {
		if _, _, err := net.SplitHostPort(c.APIServer); err != nil {
			return fmt.Errorf("cluster: network: APIServer (%q) must be host:port: %v", c.APIServer, err)
		}
	}
	if c.APIProxyBasePort < 1 || c.APIProxyBasePort > 65535 {
		return fmt.Errorf("cluster: network: APIProxyBasePort (%d) must be between 1 and 65535", c.APIProxyBasePort)
	}
	return nil
}

var (
	validRunID    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	validNodeName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
)

// Network is a set of network namespaces of the test's own: a hub holding a
// Linux bridge, and one namespace per node, each linked to the bridge by a
// veth pair. Every node has a network stack of its own (its own loopback,
// ports, routes and iptables), as a real node has, and nothing is added to
// the host's namespace: no address, route, link or rule.
//
// The test process reaches the nodes from the hub: DialContext and Listen
// create their sockets inside the hub namespace, and a socket keeps the
// namespace it was created in, whichever thread uses it later. Each node's
// API proxy listens in the hub, on the hub address and a port of the
// node's, and dials the apiserver on the host's loopback.
//
// It needs root and the ip command (iproute2), and iptables for faults.
type Network struct {
	cfg     NetworkConfig
	comment string
	hub     string // the hub namespace's name
	hubIP   netip.Addr

	mu     sync.Mutex
	nodes  []*NetNode
	next   netip.Addr // the next node address
	closed bool
}

// NetNode is one node's namespace in a Network.
type NetNode struct {
	net       *Network
	name      string
	ns        string // ip netns name
	ip        netip.Addr
	hubLink   string // the veth's peer in the hub, on the bridge
	proxyPort int
	proxy     *apiProxy
}

// Names of the links. The node's end is eth0, as on a real node; the hub's
// ends are numbered, which keeps them within the 15 characters Linux
// allows.
const (
	hubBridge = "br0"
	nodeLink  = "eth0"
)

// NewNetwork creates the hub namespace and its bridge. On error nothing is
// left behind.
func NewNetwork(cfg NetworkConfig) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("cluster: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("cluster: network namespaces need the ip command (iproute2): %w", err)
	}
	comment := fmt.Sprintf("%s-%d-%s", RulePrefix, os.Getpid(), cfg.RunID)
	n := &Network{
		cfg:     cfg,
		comment: comment,
		hub:     comment + "-hub",
		hubIP:   cfg.Prefix.Addr().Next(),
	}
	n.next = n.hubIP.Next()
	if err := runIP("netns", "add", n.hub); err != nil {
		return nil, err
	}
	bits := strconv.Itoa(cfg.Prefix.Bits())
	for _, args := range [][]string{
		{"-n", n.hub, "link", "set", "lo", "up"},
		{"-n", n.hub, "link", "add", hubBridge, "type", "bridge"},
		{"-n", n.hub, "addr", "add", n.hubIP.String() + "/" + bits, "dev", hubBridge},
		{"-n", n.hub, "link", "set", hubBridge, "up"},
	} {
		if err := runIP(args...); err != nil {
			_ = runIP("netns", "delete", n.hub)
			return nil, err
		}
	}
	return n, nil
}

// Comment is the comment of every iptables rule of this network, and the
// start of every namespace's name.
func (n *Network) Comment() string { return n.comment }

// HubNetNS is the `ip netns` name of the hub namespace.
func (n *Network) HubNetNS() string { return n.hub }

// HubIP is the hub's address, the nodes' default gateway and where their
// API proxies listen.
func (n *Network) HubIP() netip.Addr { return n.hubIP }

// Nodes lists the nodes in the order they were added.
func (n *Network) Nodes() []*NetNode {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*NetNode(nil), n.nodes...)
}

// AddNode creates the namespace of node name, links it to the bridge, gives
// it the next address with a default route through the hub, and starts its
// API proxy when the configuration names an apiserver. On error, what was
// created for the node is removed.
func (n *Network) AddNode(name string) (*NetNode, error) {
	if !validNodeName.MatchString(name) || len(name) > 63 {
		return nil, fmt.Errorf("cluster: network: node name %q must be a DNS label (lower-case letters, digits, '-'; at most 63)", name)
	}
	if name == "hub" {
		return nil, errors.New(`cluster: network: node name "hub" is the hub's`)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("cluster: network is closed")
	}
	for _, o := range n.nodes {
		if o.name == name {
			return nil, fmt.Errorf("cluster: network: node %s exists already", name)
		}
	}
	ip := n.next
	if !n.cfg.Prefix.Contains(ip) || !n.cfg.Prefix.Contains(ip.Next()) {
		// The last address of the prefix is its broadcast address.
		return nil, fmt.Errorf("cluster: network: Prefix (%s) has no address left for node %s (%d nodes)", n.cfg.Prefix, name, len(n.nodes))
	}
	idx := len(n.nodes)
	port := n.cfg.APIProxyBasePort + idx
	if port > 65535 {
		return nil, fmt.Errorf("cluster: network: node %s would get API proxy port %d, above 65535 (APIProxyBasePort %d)", name, port, n.cfg.APIProxyBasePort)
	}
	nn := &NetNode{
		net:       n,
		name:      name,
		ns:        n.comment + "-" + name,
		ip:        ip,
		hubLink:   "hv" + strconv.Itoa(idx),
		proxyPort: port,
	}
	if err := runIP("netns", "add", nn.ns); err != nil {
		return nil, err
	}
	bits := strconv.Itoa(n.cfg.Prefix.Bits())
	for _, args := range [][]string{
		// Created in the hub with its peer moved straight into the node, so
		// that no link ever appears in the host's namespace.
		{"-n", n.hub, "link", "add", nn.hubLink, "type", "veth", "peer", "name", nodeLink, "netns", nn.ns},
		{"-n", n.hub, "link", "set", nn.hubLink, "master", hubBridge},
		{"-n", n.hub, "link", "set", nn.hubLink, "up"},
		{"-n", nn.ns, "link", "set", "lo", "up"},
		{"-n", nn.ns, "addr", "add", ip.String() + "/" + bits, "dev", nodeLink},
		{"-n", nn.ns, "link", "set", nodeLink, "up"},
		{"-n", nn.ns, "route", "add", "default", "via", n.hubIP.String()},
	} {
		if err := runIP(args...); err != nil {
			nn.destroy()
			return nil, err
		}
	}
	if n.cfg.APIServer != "" {
		ln, err := n.Listen("tcp4", net.JoinHostPort(n.hubIP.String(), strconv.Itoa(port)))
		if err != nil {
			nn.destroy()
			return nil, fmt.Errorf("cluster: network: node %s: API proxy: %w", name, err)
		}
		nn.proxy = startAPIProxyOn(ln, ip, n.cfg.APIServer)
	}
	n.nodes = append(n.nodes, nn)
	n.next = ip.Next()
	return nn, nil
}

// destroy deletes the node's namespace (its veth goes with it, the hub's
// end too) and closes its proxy.
func (nn *NetNode) destroy() error {
	if nn.proxy != nil {
		nn.proxy.close()
	}
	_ = runIP("-n", nn.net.hub, "link", "delete", nn.hubLink)
	return runIP("netns", "delete", nn.ns)
}

// Do runs fn on a thread inside the hub namespace; see NetNode.Do.
func (n *Network) Do(fn func() error) error { return doInNetns(filepath.Join(netnsDir, n.hub), fn) }

// DialContext dials from the hub namespace, where every node's address is
// reachable: a dial function for the harness's HTTP clients
// (AgentConfig.Dial). addr must be an IP address and port; a name would be
// resolved in the hub, which has no resolver.
func (n *Network) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		// One address, so the dialer tries it from this goroutine and thread.
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen listens in the hub namespace, typically on HubIP.
func (n *Network) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Close closes the API proxies and deletes every namespace; their links and
// iptables rules go with them. Processes still running in a namespace are
// their owners' to end (a namespace lives on, nameless, while a process is
// in it); Close does not wait for them. Safe to call more than once.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	nodes := n.nodes
	n.mu.Unlock()
	var errs []error
	for _, nn := range nodes {
		if err := nn.destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := runIP("netns", "delete", n.hub); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Name is the node's name.
func (nn *NetNode) Name() string { return nn.name }

// NetNS is the namespace's `ip netns` name: `ip netns exec <NetNS> cmd`
// runs cmd on the node.
func (nn *NetNode) NetNS() string { return nn.ns }

// NetNSPath is the namespace's file, for setns(2) (AgentConfig.NetNS).
func (nn *NetNode) NetNSPath() string { return filepath.Join(netnsDir, nn.ns) }

// IP is the node's address on eth0.
func (nn *NetNode) IP() netip.Addr { return nn.ip }

// APIProxyAddr is where the node's API proxy listens, in the hub.
func (nn *NetNode) APIProxyAddr() netip.AddrPort {
	return netip.AddrPortFrom(nn.net.hubIP, uint16(nn.proxyPort))
}

// APIServerURL is the apiserver as the node reaches it, through its proxy;
// clients check the certificate for the name "kubernetes".
func (nn *NetNode) APIServerURL() string { return "https://" + nn.APIProxyAddr().String() }

// APITraffic is what went through the node's API proxy so far. Every
// process of the node shares its address, so all of it counts as the
// agent's (AgentReceived, AgentSent); the Other fields count connections
// from elsewhere, such as the harness's.
func (nn *NetNode) APITraffic() APITraffic {
	if nn.proxy == nil {
		return APITraffic{}
	}
	return nn.proxy.traffic()
}

// Do runs fn on a thread inside the node's namespace: sockets fn creates
// stay in the namespace, whichever goroutine uses them afterwards. fn must
// not rely on goroutines it starts, which run elsewhere.
func (nn *NetNode) Do(fn func() error) error { return doInNetns(nn.NetNSPath(), fn) }

// ConfigureAgent makes cfg an agent of this node: its address, its
// namespace, and the hub's dialer for the harness's HTTP client. Checks
// left nil become NamespaceAgentChecks.
func (nn *NetNode) ConfigureAgent(cfg *AgentConfig) {
	cfg.IP = nn.ip
	cfg.NetNS = nn.NetNSPath()
	cfg.Dial = nn.net.DialContext
	if cfg.Checks == nil {
		cfg.Checks = NamespaceAgentChecks()
	}
}

// ServiceAccountKubeconfig writes to path a kubeconfig with a token of the
// ServiceAccount namespace/name that reaches the apiserver through the
// node's proxy.
func (nn *NetNode) ServiceAccountKubeconfig(ctx context.Context, cp *ControlPlane, namespace, name, path string) error {
	if nn.proxy == nil {
		return fmt.Errorf("cluster: network: node %s has no API proxy (NetworkConfig.APIServer is empty)", nn.name)
	}
	token, err := cp.ServiceAccountToken(ctx, namespace, name, 24*time.Hour)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{
		Server:                   nn.APIServerURL(),
		TLSServerName:            apiServerName,
		CertificateAuthorityData: cp.pki.caPEM,
	}
	user := "system:serviceaccount:" + namespace + ":" + name
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: user}
	cfg.CurrentContext = "e2e"
	return clientcmd.WriteToFile(*cfg, path)
}

// NamespaceAgentChecks are DefaultAgentChecks for an agent in a node
// namespace, beside a hollow kubelet: the kubelet's /healthz on the node's
// own 127.0.0.1, as a hostNetwork DaemonSet pod checks it, then the API
// server's /readyz. kubemark serves no healthz port (10248, which the real
// kubelet opens outside the code kubemark runs), so the check asks the
// kubelet port, where it answers /healthz too.
func NamespaceAgentChecks() []probe.Check {
	checks := DefaultAgentChecks(netip.MustParseAddr("127.0.0.1"))
	for i := range checks {
		if h := checks[i].HTTPGet; h != nil {
			hc := *h
			hc.Port = hollowKubeletPort
			checks[i].HTTPGet = &hc
		}
	}
	return checks
}

// hollowKubeletPort is the kubelet port of a hollow node (the real
// default).
const hollowKubeletPort = 10250

// doInNetns runs fn on a locked thread moved into the network namespace at
// path, then moves the thread back. Should that fail, the thread is never
// unlocked, so it ends with the goroutine rather than serve others from the
// wrong namespace.
func doInNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("cluster: own network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := setns(path); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("cluster: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("cluster: back from network namespace %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// setns moves the calling thread into the network namespace at path.
func setns(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", path, err)
	}
	return nil
}

// newSpawnerInNetns is a spawner whose thread lives in the network
// namespace at path, so that every child it forks starts there. The thread
// is never unlocked, as newSpawner's, and never returns to the host's
// namespace: Pdeathsig still follows it.
func newSpawnerInNetns(path string) (*spawner, error) {
	s := &spawner{reqs: make(chan func()), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer close(s.done)
		if err := setns(path); err != nil {
			errc <- err
			return
		}
		errc <- nil
		for f := range s.reqs {
			f()
		}
	}()
	if err := <-errc; err != nil {
		<-s.done
		return nil, err
	}
	return s, nil
}

// runIP runs the ip command with args.
func runIP(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cluster: ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
