package scenario

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/test/cluster"
)

// Timings selects the control plane's node-failure timings.
type Timings int

const (
	// Stock leaves Kubernetes' defaults: the node lifecycle controller gives
	// up on a silent node after 50 s, pods tolerate an unreachable node for
	// 300 s; fake kubelets renew their Lease every 10 s, as real ones do.
	Stock Timings = iota
	// Tuned is the aggressive stock set-up haagent is also compared with:
	// cluster.TunedControllerManagerFlags and cluster.TunedAPIServerFlags
	// (8 s grace, 5 s tolerations), fake kubelets renewing every 2 s.
	Tuned
)

func (t Timings) String() string {
	if t == Tuned {
		return "tuned stock timings (node-monitor-grace-period 8s, period 1s, tolerations 5s, Lease renewed every 2s)"
	}
	return "stock default timings (node-monitor-grace-period 50s, tolerations 300s, Lease renewed every 10s)"
}

// Config describes a cluster.
type Config struct {
	// BinDir holds the control-plane binaries (hack/build-control-plane.sh).
	BinDir string
	// Nodes is how many nodes to start, node-1 ... node-N.
	Nodes int
	// Ground is what the nodes run on: Fake (the zero value too) or
	// Hollow (kubemark of BinDir, each node in a network namespace; needs
	// root and the stock timings).
	Ground Ground
	// Timings of the control plane and the fake kubelets (on the hollow
	// ground only Stock: real kubelets renew their Lease every 10 s).
	Timings Timings
	// Haagent is the haagent binary. Empty runs no agents and installs
	// nothing of deploy/.
	Haagent string
	// AgentArgs are extra flags of every agent.
	AgentArgs []string
	// Deploy is the deploy/ directory installed before the agents start.
	Deploy string
	// AuditLog turns on the apiserver's audit log, which MeasureAPICost
	// reads.
	AuditLog bool
	// PrometheusBin, with agents, runs a Prometheus (the directory of
	// hack/build-prometheus.sh) that scrapes every agent each second and
	// evaluates RuleFile, its `for:` durations divided by RuleDivisor.
	PrometheusBin string
	RuleFile      string
	RuleDivisor   int
}

// MaxNodes is the most nodes a Cluster starts. Past 50 nodes a zone is
// "large" to the node lifecycle controller, which then evicts at a slower
// rate from an unhealthy zone; the API-cost measurement crashes one node and
// does not care.
const MaxNodes = 200

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.BinDir == "" {
		return errors.New("scenario: no control-plane binaries: set --control-plane-bin or HAAGENT_CONTROL_PLANE_BIN (hack/build-control-plane.sh prints the directory)")
	}
	// A crash must leave a majority of agents, and node-1 (the gossip seed)
	// is never crashed.
	if c.Nodes < 3 || c.Nodes > MaxNodes {
		return fmt.Errorf("scenario: nodes (%d) must be between 3 and %d", c.Nodes, MaxNodes)
	}
	if c.Haagent != "" && c.Deploy == "" {
		return errors.New("scenario: a cluster with agents needs the deploy/ directory")
	}
	if c.PrometheusBin != "" && (c.Haagent == "" || c.RuleFile == "" || c.RuleDivisor < 1) {
		return fmt.Errorf("scenario: a Prometheus needs agents, a rule file and a rule divisor of at least 1 (agents %t, rule file %q, divisor %d)",
			c.Haagent != "", c.RuleFile, c.RuleDivisor)
	}
	return c.validateGround()
}

// Cluster is a running control plane and its nodes.
type Cluster struct {
	cfg Config
	CP  *cluster.ControlPlane
	// FW is the host's firewall, the fake ground's faults; nil on the
	// hollow ground.
	FW *cluster.Firewall
	// Net is the hollow ground's namespaces (and their faults); nil on the
	// fake ground.
	Net   *cluster.Network
	Nodes []*cluster.Node
	// Prom is the Prometheus of Config.PrometheusBin, nil without one.
	Prom *cluster.Prometheus

	stateful bool // StartStatefulWorkload ran
}

// Start brings a cluster up: control plane, deploy/ (with agents), firewall,
// nodes, and waits until every node is Ready and untainted and, with
// agents, every agent sees every member alive and ready. Progress goes to
// p. On error the returned cluster, if not nil, must still be stopped.
func Start(ctx context.Context, cfg Config, p *Printer) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hollow := cfg.Ground.orFake() == Hollow
	if hollow {
		if err := cfg.checkHollowHost(); err != nil {
			return nil, err
		}
	}
	cpCfg := cluster.DefaultControlPlaneConfig()
	cpCfg.BinDir = cfg.BinDir
	cpCfg.AuditLog = cfg.AuditLog
	if cfg.Timings == Tuned {
		cpCfg.APIServerFlags = cluster.TunedAPIServerFlags()
		cpCfg.ControllerManagerFlags = cluster.TunedControllerManagerFlags()
	}
	cp, err := cluster.NewControlPlane(cpCfg)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, CP: cp}

	step := p.Begin("starting a control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) with %s", cfg.Timings)
	// Each node takes a token, a proxy and a registration: give large
	// clusters the time.
	timeout := 3*time.Minute + time.Duration(cfg.Nodes)*3*time.Second
	if hollow {
		// Hollow kubelets register all at once, in 10 s to 3 minutes.
		timeout += 5 * time.Minute
	}
	startCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := cp.Start(startCtx); err != nil {
		return c, fmt.Errorf("control plane: %w", err)
	}
	step.Done("control plane ready")

	if cfg.Haagent != "" {
		step = p.Begin("installing deploy/ (namespace, RBAC, NodeFailover CRD, config; the agents run as local processes)")
		if err := cp.ApplyDeploy(startCtx, cfg.Deploy); err != nil {
			return c, fmt.Errorf("install deploy/: %w", err)
		}
		step.Done("deploy/ installed")
	}

	runID := strings.TrimPrefix(filepath.Base(cp.Dir()), cluster.RulePrefix+"-")
	what := "fake kubelet"
	if hollow {
		what = "hollow kubelet (kubemark: the real kubelet over a fake container runtime) in a network namespace of its own"
	}
	if cfg.Haagent != "" {
		what += " and a real haagent agent (fast gossip profile"
		if len(cfg.AgentArgs) > 0 {
			what += ", " + strings.Join(cfg.AgentArgs, " ")
		}
		what += ")"
	}
	if hollow {
		step = p.Begin("starting %d nodes at once, node-1 ... node-%d, each a %s", cfg.Nodes, cfg.Nodes, what)
		if err := c.startHollowNodes(startCtx, p, runID); err != nil {
			return c, err
		}
	} else {
		step = p.Begin("starting %d nodes, node-1 ... node-%d, each a %s", cfg.Nodes, cfg.Nodes, what)
		if err := c.startFakeNodes(startCtx, runID); err != nil {
			return c, err
		}
	}
	step.Done("%d nodes registered", cfg.Nodes)
	return c, c.waitStarted(startCtx, p)
}

// startFakeNodes starts the firewall and the fake nodes, one after the
// other.
func (c *Cluster) startFakeNodes(ctx context.Context, runID string) error {
	cfg := c.cfg
	var err error
	if c.FW, err = cluster.NewFirewall(runID); err != nil {
		return err
	}
	addrs := cluster.NewNodeAddresses()
	var seed string
	for i := range cfg.Nodes {
		addr, err := addrs.Next()
		if err != nil {
			return err
		}
		if i == 0 {
			seed = net.JoinHostPort(addr.IP.String(), strconv.Itoa(cluster.AgentGossipPort))
		}
		kc := cluster.DefaultFakeKubeletConfig(fmt.Sprintf("node-%d", i+1), addr)
		if cfg.Timings == Tuned {
			kc.LeaseRenewInterval = 2 * time.Second
			kc.StatusUpdateInterval = 2 * time.Second
		}
		nc := cluster.NodeConfig{Kubelet: kc}
		if cfg.Haagent != "" {
			ac := cluster.DefaultAgentConfig(cfg.Haagent)
			ac.Join = []string{seed}
			ac.ExtraArgs = append(ac.ExtraArgs, cfg.AgentArgs...)
			nc.Agent = &ac
		}
		n, err := cluster.StartNode(ctx, c.CP, c.FW, nc)
		if n != nil {
			c.Nodes = append(c.Nodes, n)
		}
		if err != nil {
			return fmt.Errorf("start node-%d: %w", i+1, err)
		}
	}
	return nil
}

// waitStarted waits until the nodes are Ready and the agents agree, and
// starts Prometheus.
func (c *Cluster) waitStarted(startCtx context.Context, p *Printer) error {
	cfg := c.cfg
	step := p.Begin("waiting until every node is Ready and untainted")
	if err := Poll(startCtx, 100*time.Millisecond, 2*time.Minute, "every node Ready and untainted", c.nodesReady); err != nil {
		return err
	}
	step.Done("%d nodes Ready", cfg.Nodes)

	if cfg.Haagent != "" {
		step = p.Begin("waiting until every agent sees all %d members alive and ready", cfg.Nodes)
		for _, n := range c.Nodes {
			if err := n.Agent().WaitReady(startCtx); err != nil {
				return err
			}
		}
		if err := Poll(startCtx, 100*time.Millisecond, 2*time.Minute, "every agent sees every member alive and ready", c.agentsAgree); err != nil {
			return err
		}
		step.Done("the %d agents agree", cfg.Nodes)
	}
	if cfg.PrometheusBin != "" {
		step = p.Begin("starting Prometheus: it scrapes every agent each second and evaluates the shipped alert rules, their `for:` divided by %d", cfg.RuleDivisor)
		if err := c.startPrometheus(startCtx); err != nil {
			return err
		}
		step.Done("Prometheus at %s scrapes %d agents", c.Prom.URL(), cfg.Nodes)
	}
	return nil
}

func (c *Cluster) startPrometheus(ctx context.Context) error {
	dir := filepath.Join(c.CP.Dir(), "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rules, err := cluster.WriteScaledRules(c.cfg.RuleFile, dir, c.cfg.RuleDivisor)
	if err != nil {
		return err
	}
	cfg := cluster.DefaultPrometheusConfig(c.cfg.PrometheusBin)
	cfg.RuleFiles = []string{rules}
	if c.Prom, err = cluster.StartPrometheus(ctx, dir, cfg); err != nil {
		return fmt.Errorf("prometheus: %w", err)
	}
	return c.Prom.ScrapeNodes(ctx, c.Nodes)
}

// nodesReady: every node Ready=True and without taints.
func (c *Cluster) nodesReady(ctx context.Context) (bool, error) {
	for _, n := range c.Nodes {
		node, err := c.CP.Client().CoreV1().Nodes().Get(ctx, n.Name(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if s := NodeReady(node); s != corev1.ConditionTrue || len(node.Spec.Taints) > 0 || node.Spec.Unschedulable {
			return false, fmt.Errorf("%s: Ready=%s, unschedulable=%v, taints %v", n.Name(), s, node.Spec.Unschedulable, node.Spec.Taints)
		}
	}
	return true, nil
}

// agentsAgree: every agent lists every node, alive and ready.
func (c *Cluster) agentsAgree(ctx context.Context) (bool, error) {
	for _, n := range c.Nodes {
		resp, err := n.Agent().Members(ctx)
		if err != nil {
			return false, err
		}
		for _, other := range c.Nodes {
			m, ok := cluster.Member(resp, other.Name())
			if !ok {
				return false, fmt.Errorf("%s does not list %s", n.Name(), other.Name())
			}
			if m.State.String() != "alive" || !m.Meta.Ready {
				return false, fmt.Errorf("%s sees %s %s, ready=%v (%s)", n.Name(), other.Name(), m.State, m.Meta.Ready, m.Meta.Reason)
			}
		}
	}
	return true, nil
}

// WaitHealthy waits until every node is Ready and untainted and, with
// agents, every agent sees every member alive and ready.
func (c *Cluster) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	if err := Poll(ctx, 100*time.Millisecond, timeout, "every node Ready and untainted", c.nodesReady); err != nil {
		return err
	}
	if c.cfg.Haagent == "" {
		return nil
	}
	return Poll(ctx, 100*time.Millisecond, timeout, "every agent sees every member alive and ready", c.agentsAgree)
}

// Client is an admin client of the control plane.
func (c *Cluster) Client() kubernetes.Interface { return c.CP.Client() }

// Node returns the node of that name.
func (c *Cluster) Node(name string) *cluster.Node {
	for _, n := range c.Nodes {
		if n.Name() == name {
			return n
		}
	}
	return nil
}

// Coordinator is the holder of haagent's coordinator Lease, "" if none.
func (c *Cluster) Coordinator(ctx context.Context) (string, error) {
	l, err := c.Client().CoordinationV1().Leases("haagent").Get(ctx, "haagent-coordinator", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}

// LatestRecord returns the newest NodeFailover record of node.
func (c *Cluster) LatestRecord(ctx context.Context, node string) (record.NodeFailover, bool, error) {
	dyn, err := dynamic.NewForConfig(c.CP.RESTConfig())
	if err != nil {
		return record.NodeFailover{}, false, err
	}
	store, err := record.NewStore(record.DefaultConfig(), record.Deps{Client: dyn})
	if err != nil {
		return record.NodeFailover{}, false, err
	}
	all, err := store.ListAll(ctx)
	if err != nil {
		return record.NodeFailover{}, false, err
	}
	var best record.NodeFailover
	found := false
	for _, r := range all {
		if r.Spec.Node != node {
			continue
		}
		if !found || best.CreationTimestamp.Before(&r.CreationTimestamp) ||
			(best.CreationTimestamp.Equal(&r.CreationTimestamp) && best.Name < r.Name) {
			best, found = r, true
		}
	}
	return best, found, nil
}

// Diagnostics are the last log lines of the control plane and the agents,
// for a failure message.
func (c *Cluster) Diagnostics(lines int) string {
	if c == nil || c.CP == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "----- control plane, last %d lines per component -----\n%s", lines, c.CP.LogTails(lines))
	for _, n := range c.Nodes {
		if a := n.Agent(); a != nil {
			fmt.Fprintf(&b, "----- haagent %s, last %d lines -----\n%s\n", n.Name(), lines, a.LogTail(lines))
		}
		if k := n.HollowKubelet(); k != nil {
			fmt.Fprintf(&b, "----- kubemark %s, last %d lines -----\n%s\n", n.Name(), lines, k.LogTail(lines))
		}
	}
	return b.String()
}

// Stop ends the nodes, removes the firewall rules or the network
// namespaces and stops the control plane. Safe on a nil or half-started cluster, and more than once.
func (c *Cluster) Stop() error {
	if c == nil {
		return nil
	}
	var errs []error
	if c.Prom != nil {
		if err := c.Prom.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop prometheus: %w", err))
		}
	}
	for _, n := range c.Nodes {
		if err := n.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", n.Name(), err))
		}
	}
	if c.FW != nil {
		if err := c.FW.Close(); err != nil {
			errs = append(errs, fmt.Errorf("remove firewall rules: %w", err))
		}
	}
	if c.Net != nil {
		// The nodes' processes are gone: the namespaces go with their
		// links and rules.
		if err := c.Net.Close(); err != nil {
			errs = append(errs, fmt.Errorf("remove network namespaces: %w", err))
		}
	}
	if err := c.CP.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("stop control plane: %w", err))
	}
	return errors.Join(errs...)
}

// NodeReady is the status of a Node's Ready condition, "" if it has none.
func NodeReady(node *corev1.Node) corev1.ConditionStatus {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// RemoveStaleRules removes the firewall rules that an earlier run, killed
// before it could clean up, left behind: those whose comment names a
// process that no longer exists. Rules of live processes (another run going
// on now) are left alone. It does nothing without root or iptables.
func RemoveStaleRules() (int, error) {
	if os.Geteuid() != 0 {
		return 0, nil
	}
	rules, err := cluster.RulesWithComment(cluster.RulePrefix + "-")
	if err != nil {
		return 0, nil // no usable iptables: NewFirewall says so later
	}
	dead := map[int]bool{}
	for _, r := range rules {
		i := strings.Index(r, "--comment ")
		if i < 0 {
			continue
		}
		c := strings.TrimPrefix(r[i+len("--comment "):], `"`)
		c = strings.TrimPrefix(c, cluster.RulePrefix+"-")
		pidText, _, _ := strings.Cut(c, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			dead[pid] = true
		}
	}
	var errs []error
	for pid := range dead {
		errs = append(errs, cluster.RemoveRulesWithComment(fmt.Sprintf("%s-%d-", cluster.RulePrefix, pid)))
	}
	return len(dead), errors.Join(errs...)
}
