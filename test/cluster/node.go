package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// apiServerName is a name in the apiserver's certificate, checked by clients
// that reach it through a node's proxy.
const apiServerName = "kubernetes"

// NodeConfig describes one simulated node: a fake kubelet and, optionally,
// a haagent process.
type NodeConfig struct {
	// Kubelet is the node's fake kubelet; its NodeName and Address name the node.
	Kubelet FakeKubeletConfig
	// Agent is the node's haagent. Nil runs no agent. The node fills in
	// NodeName, IP, Dir, GID and, when empty, Kubeconfig (a token of the
	// ServiceAccount AgentServiceAccount, through the node's API proxy).
	Agent *AgentConfig
	// AgentServiceAccount is namespace/name of the ServiceAccount the agent
	// runs as; default haagent/haagent, installed by ApplyDeploy.
	AgentServiceAccount [2]string
	// Hollow, when set, puts the node on the hollow ground: its kubelet is
	// the real kubelet code (a kubemark HollowKubelet of Hollow.Binary) in
	// the network namespace Net, beside its agent, with its API proxy in
	// Net's hub. The node fills in Hollow's NodeName, Dir, RESTConfig,
	// APIClient, Netns and, from Kubelet, FenceFile and Logger; of Kubelet
	// only NodeName, Journal, FenceFile and Logger count, and the node's
	// address is Net's. Faults between such nodes are Net's Network's.
	Hollow *HollowKubeletConfig
	// Net is the hollow node's namespace; required with Hollow, unused
	// without.
	Net *NetNode
}

// Node is a simulated node: its fake kubelet, its agent, and its API proxy,
// on an address of its own. Its methods are the faults that happen to a node.
type Node struct {
	cfg  NodeConfig
	cp   *ControlPlane
	fw   *Firewall
	log  *zap.Logger
	dir  string
	rest *rest.Config // the kubelet's, through the proxy

	proxy *apiProxy
	snat  *Fault
	// credID is the credential ID of the agent's token, as the audit log
	// names it (CredentialIDKey).
	credID string

	mu      sync.Mutex
	kubelet *FakeKubelet
	hollow  *hollowGround // the hollow ground's kubelet; nil on the fake ground
	agent   *Agent
	down    *Fault // the crash's isolation, until Return
	stopped bool
}

// StartNode starts the node's API proxy, its kubelet (waiting until the Node
// is registered) and its agent (without waiting for it; see WaitAgentReady).
// fw may be nil when no network fault will be used; the agent's traffic then
// keeps 127.0.0.1 as its source. On error, the caller still calls Stop.
func StartNode(ctx context.Context, cp *ControlPlane, fw *Firewall, cfg NodeConfig) (*Node, error) {
	if cfg.Hollow != nil {
		return startHollowNode(ctx, cp, cfg)
	}
	if err := cfg.Kubelet.Validate(); err != nil {
		return nil, err
	}
	if cfg.AgentServiceAccount == [2]string{} {
		cfg.AgentServiceAccount = [2]string{"haagent", "haagent"}
	}
	log := cfg.Kubelet.Logger
	if log == nil {
		log = zap.NewNop()
	}
	n := &Node{
		cfg: cfg,
		cp:  cp,
		fw:  fw,
		log: log.Named("node").With(zap.String("node", cfg.Kubelet.NodeName)),
		dir: filepath.Join(cp.Dir(), "nodes", cfg.Kubelet.NodeName),
	}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return n, err
	}
	ip := cfg.Kubelet.Address.IP.String()
	u, err := url.Parse(cp.APIServerURL())
	if err != nil {
		return n, err
	}
	if n.proxy, err = startAPIProxy(net.JoinHostPort(ip, strconv.Itoa(APIProxyPort)), u.Host); err != nil {
		return n, fmt.Errorf("cluster: node %s: API proxy: %w", n.Name(), err)
	}
	n.rest = cp.RESTConfig()
	n.rest.Host = n.APIServerURL()
	n.rest.TLSClientConfig.ServerName = apiServerName

	if err := n.startKubelet(ctx); err != nil {
		return n, err
	}
	if cfg.Agent == nil {
		return n, nil
	}
	ac := *cfg.Agent
	if fw != nil {
		// A group per node and run, drawn at random so that runs going on at
		// the same time do not share one; group IDs need not exist.
		ac.GID = uint32(1_000_000 + rand.IntN(1_000_000_000))
		if n.snat, err = fw.SourceNAT(ac.GID, n.IP()); err != nil {
			return n, err
		}
	}
	return n, n.startAgent(ctx, ac)
}

// startAgent fills in the node's part of ac and starts the agent.
func (n *Node) startAgent(ctx context.Context, ac AgentConfig) error {
	ac.NodeName = n.Name()
	ac.IP = n.IP()
	ac.Dir = n.dir
	if ac.Kubeconfig == "" {
		ns, name := n.cfg.AgentServiceAccount[0], n.cfg.AgentServiceAccount[1]
		var err error
		if ac.Kubeconfig, err = n.serviceAccountKubeconfig(ctx, ns, name); err != nil {
			return err
		}
	}
	agent, err := NewAgent(ac)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.agent = agent
	n.mu.Unlock()
	if err := agent.Start(); err != nil {
		return err
	}
	n.log.Info("agent started", zap.Int("pid", agent.PID()), zap.String("url", agent.URL()))
	return nil
}

func (n *Node) startKubelet(ctx context.Context) error {
	if n.hollow != nil {
		return n.hollow.boot(ctx)
	}
	k, err := NewFakeKubelet(n.cfg.Kubelet, n.rest)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.kubelet = k
	n.mu.Unlock()
	return k.Start(ctx)
}

// serviceAccountKubeconfig writes a kubeconfig with a token of namespace/name
// that reaches the apiserver through this node's proxy.
func (n *Node) serviceAccountKubeconfig(ctx context.Context, namespace, name string) (string, error) {
	token, err := n.cp.ServiceAccountToken(ctx, namespace, name, 24*time.Hour)
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{
		Server:                   n.APIServerURL(),
		TLSServerName:            apiServerName,
		CertificateAuthorityData: n.cp.pki.caPEM,
	}
	if jti := tokenJTI(token); jti != "" {
		n.credID = "JTI=" + jti
	}
	user := "system:serviceaccount:" + namespace + ":" + name
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: user}
	cfg.CurrentContext = "e2e"
	path := filepath.Join(n.dir, "agent.kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// tokenJTI is the jti claim of a JWT, read without checking the signature
// (the harness minted it); "" if there is none.
func tokenJTI(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.JTI
}

// AgentCredentialID is the credential ID of the agent's ServiceAccount
// token as the apiserver's audit log gives it under CredentialIDKey
// ("JTI=<jti>"), so that requests of agents sharing one ServiceAccount can
// be told apart; "" when the harness did not mint the token.
func (n *Node) AgentCredentialID() string { return n.credID }

// APITraffic is what went through the node's API proxy so far. On the
// hollow ground the kubelet's traffic counts as the agent's: both have the
// node's address.
func (n *Node) APITraffic() APITraffic {
	if n.hollow != nil {
		return n.cfg.Net.APITraffic()
	}
	return n.proxy.traffic()
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Kubelet.NodeName }

// IP is the node's address.
func (n *Node) IP() netip.Addr {
	if n.cfg.Net != nil && n.cfg.Hollow != nil {
		return n.cfg.Net.IP()
	}
	return n.cfg.Kubelet.Address.IP
}

// Dir holds the agent's config, kubeconfig and log.
func (n *Node) Dir() string { return n.dir }

// APIServerURL is the apiserver as this node reaches it, through its proxy.
func (n *Node) APIServerURL() string {
	if n.hollow != nil {
		return n.cfg.Net.APIServerURL()
	}
	return "https://" + net.JoinHostPort(n.IP().String(), strconv.Itoa(APIProxyPort))
}

// RESTConfig is an admin client configuration that goes through this node's
// proxy, and so shares the node's network faults.
func (n *Node) RESTConfig() *rest.Config { return rest.CopyConfig(n.rest) }

// Kubelet is the node's current fake kubelet (a new one after Return); nil
// on the hollow ground (see HollowKubelet).
func (n *Node) Kubelet() *FakeKubelet {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kubelet
}

// Agent is the node's agent, nil if it has none.
func (n *Node) Agent() *Agent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.agent
}

// Crash powers the node off: its address drops every packet (peers see
// timeouts, not refused connections), its agent gets SIGKILL and its kubelet
// stops at once. Nothing is cleaned up in the API. It returns the instant of
// the crash, taken just before the first of these steps.
func (n *Node) Crash() (time.Time, error) {
	if n.hollow != nil {
		return n.crashHollow()
	}
	if n.fw == nil {
		return time.Time{}, fmt.Errorf("cluster: node %s: Crash needs a firewall", n.Name())
	}
	at := time.Now()
	f, err := n.fw.Isolate(n.IP())
	if err != nil {
		return at, err
	}
	n.mu.Lock()
	n.down = f
	k, a := n.kubelet, n.agent
	n.mu.Unlock()
	var errs []error
	if a != nil && a.Running() {
		errs = append(errs, a.Kill())
	}
	k.Stop()
	n.log.Info("node crashed")
	return at, errors.Join(errs...)
}

// Return brings a crashed node back, as after a reboot: the network first,
// then a new kubelet (a new boot ID; the Node keeps what others put on it),
// then the agent. It does not wait for the agent to be ready.
func (n *Node) Return(ctx context.Context) error {
	n.mu.Lock()
	down, k, a := n.down, n.kubelet, n.agent
	n.down = nil
	n.mu.Unlock()
	if down != nil {
		if err := down.Remove(); err != nil {
			return err
		}
	}
	if n.hollow != nil {
		if err := n.hollow.kill("crashed"); err != nil { // in case it was not crashed
			return err
		}
	} else {
		k.Stop() // in case it was not crashed
	}
	if err := n.startKubelet(ctx); err != nil {
		return err
	}
	if a != nil && !a.Running() {
		if err := a.Start(); err != nil {
			return err
		}
	}
	n.log.Info("node returned")
	return nil
}

// CrashAgent kills the agent alone (SIGKILL); the node lives on.
func (n *Node) CrashAgent() error { return n.needAgent().Kill() }

// StopAgent stops the agent gracefully (SIGTERM): it leaves the group.
func (n *Node) StopAgent(timeout time.Duration) error { return n.needAgent().Terminate(timeout) }

// StartAgent starts the agent again after CrashAgent or StopAgent.
func (n *Node) StartAgent() error { return n.needAgent().Start() }

// PauseAgent stops the agent process (SIGSTOP), as a long stall would.
func (n *Node) PauseAgent() error { return n.needAgent().Pause() }

// ResumeAgent continues a paused agent (SIGCONT).
func (n *Node) ResumeAgent() error { return n.needAgent().Resume() }

func (n *Node) needAgent() *Agent {
	if a := n.Agent(); a != nil {
		return a
	}
	// A test bug: make it loud rather than a nil dereference later.
	panic("cluster: node " + n.Name() + " has no agent")
}

// StopKubelet closes the kubelet's ports (10250 and healthz) while the node,
// its Lease and its agent go on: the kubelet process is down. On the
// hollow ground the kubelet process is killed, so its Lease stops too, as
// a real kubelet's would.
func (n *Node) StopKubelet() {
	if n.hollow != nil {
		if err := n.hollow.kill("crashed"); err != nil {
			n.log.Error("stop kubelet", zap.Error(err))
		}
		return
	}
	n.Kubelet().StopListener()
}

// StartKubelet opens the kubelet's ports again (on the hollow ground: boots
// a new kubelet process, and waits until its Node is Ready).
func (n *Node) StartKubelet() error {
	if n.hollow != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return n.hollow.boot(ctx)
	}
	return n.Kubelet().StartListener()
}

// Fenced returns when the node's fence switch (FenceFile) powered its
// kubelet off in this boot, on either ground, and false if it has not.
func (n *Node) Fenced() (time.Time, bool) {
	if n.hollow != nil {
		return n.hollow.k.Fenced()
	}
	return n.Kubelet().Fenced()
}

// IsolateFromAPI cuts the node (kubelet and agent) off from the control
// plane while its peers still reach it.
func (n *Node) IsolateFromAPI() (*Fault, error) {
	if n.hollow != nil {
		return n.cfg.Net.BlockAPI()
	}
	if n.fw == nil {
		return nil, fmt.Errorf("cluster: node %s: IsolateFromAPI needs a firewall", n.Name())
	}
	return n.fw.BlockPort(n.IP(), APIProxyPort)
}

// Stop ends the node for good: agent killed, kubelet stopped, proxy closed,
// its source NAT rule removed. Safe to call more than once.
func (n *Node) Stop() error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	k, a, down := n.kubelet, n.agent, n.down
	n.mu.Unlock()
	var errs []error
	if a != nil {
		errs = append(errs, a.Close())
	}
	if k != nil {
		k.Stop()
	}
	if n.hollow != nil {
		errs = append(errs, n.hollow.stop())
	}
	if n.proxy != nil {
		n.proxy.close()
	}
	if down != nil {
		errs = append(errs, down.Remove())
	}
	if n.snat != nil {
		errs = append(errs, n.snat.Remove())
	}
	return errors.Join(errs...)
}
