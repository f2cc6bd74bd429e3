package cluster

// This file is over 500 lines: one agent process, from its flags to its
// teardown, and every look the tests take at it (metrics, members, logs):
// the whole surface of Agent.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/probe"
)

// Default ports of the agent, as in deploy/daemonset.yaml. Every node has an
// address of its own, so the real ports work for many agents on one host.
const (
	AgentGossipPort = 7946
	AgentHTTPPort   = 9750
)

// AgentConfig describes one `haagent run` process.
type AgentConfig struct {
	// Binary is the haagent executable (see BuildAgent).
	Binary string
	// NodeName is --node-name. A Node fills it in.
	NodeName string
	// IP is the node's address: --bind-addr, --advertise-addr and the host
	// of --http-addr. A Node fills it in.
	IP netip.Addr
	// GossipPort and HTTPPort are the ports at IP.
	GossipPort int
	HTTPPort   int
	// Join lists the seed peers, host:port (--join).
	Join []string
	// GossipProfile is --gossip-profile; empty leaves the agent's default
	// (auto).
	GossipProfile string
	// Namespace is --namespace, where the agent looks for its peer pods and
	// keeps its coordinator Lease.
	Namespace string
	// Kubeconfig is --kubeconfig; empty runs the agent without an API. A Node
	// fills in a ServiceAccount token kubeconfig, so the agent has exactly the
	// RBAC of deploy/.
	Kubeconfig string
	// Checks is the checks: list of the config file. Nil means
	// DefaultAgentChecks for IP; an empty, non-nil list turns checks off.
	Checks []probe.Check
	// ExtraConfig is merged into the config file after the harness's own
	// settings (its keys are flag names), and so overrides them; a "checks"
	// key replaces Checks.
	ExtraConfig map[string]any
	// ExtraArgs are appended to the command line after the harness's flags.
	// The agent parses flags with the standard flag package, where the last
	// value of a repeated flag wins, so these also override.
	ExtraArgs []string
	// Dir receives config.yaml and the log, agent.log. A Node fills it in.
	Dir string
	// GID, when not zero, is the process's group ID. The harness gives each
	// node's agent a group of its own, so that a firewall rule can rewrite the
	// source address of its connections to the node's (see Firewall.SourceNAT).
	GID uint32
	// NetNS, when set, is the file of a network namespace
	// (NetNode.NetNSPath) the agent runs in, sharing the node's network
	// stack as a hostNetwork pod does. The process is forked from a thread
	// inside it, so Pdeathsig works as for other agents. No GID is needed:
	// the agent's connections have the node's address as their source.
	NetNS string
	// Dial, when set, dials the agent's HTTP API for the harness (Members,
	// Metrics, WaitReady), for an agent that the test process cannot reach
	// from its own namespace: Network.DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Env holds KEY=value entries added to the test process's environment
	// for the agent (a later entry of the same key wins). See Agent.SetEnv
	// to change it between runs.
	Env []string
}

// DefaultAgentConfig returns the harness's settings: the agent's default
// gossip profile (auto, which at the harness's sizes is the fast
// profile's timings), namespace haagent, the default ports.
func DefaultAgentConfig(binary string) AgentConfig {
	return AgentConfig{
		Binary:     binary,
		GossipPort: AgentGossipPort,
		HTTPPort:   AgentHTTPPort,
		Namespace:  "haagent",
	}
}

// Check timings of DefaultAgentChecks. A node whose kubelet stops answering
// is not ready after KubeletCheckFailureThreshold failed checks, that is
// within KubeletCheckPeriod × KubeletCheckFailureThreshold + KubeletCheckTimeout.
const (
	KubeletCheckPeriod           = time.Second
	KubeletCheckTimeout          = time.Second
	KubeletCheckFailureThreshold = 2
)

// DefaultAgentChecks are the checks of a fake node: the kubelet's healthz on
// the node's address (a FakeKubelet's healthz listener), then the API
// server's /readyz.
func DefaultAgentChecks(ip netip.Addr) []probe.Check {
	return []probe.Check{
		{
			Name:             "kubelet",
			HTTPGet:          &probe.HTTPGetAction{Host: ip.String(), Port: 10248, Path: "/healthz"},
			PeriodSeconds:    int32(KubeletCheckPeriod / time.Second),
			TimeoutSeconds:   int32(KubeletCheckTimeout / time.Second),
			FailureThreshold: KubeletCheckFailureThreshold,
		},
		{
			Name:      "apiserver",
			APIServer: &probe.APIServerAction{Path: "/readyz"},
			// A fast check: it is a term of the fence bound (a cut-off
			// node counts itself isolated only once it fails), 3 s here.
			PeriodSeconds:    2,
			TimeoutSeconds:   1,
			FailureThreshold: 3,
		},
	}
}

// Validate checks the configuration.
func (c AgentConfig) Validate() error {
	if c.Binary == "" {
		return errors.New("cluster: agent: Binary is empty (see BuildAgent)")
	}
	if c.NodeName == "" {
		return errors.New("cluster: agent: NodeName is empty")
	}
	if !c.IP.Is4() {
		return fmt.Errorf("cluster: agent %s: IP (%s) must be an IPv4 address", c.NodeName, c.IP)
	}
	for _, p := range []struct {
		field string
		port  int
	}{{"GossipPort", c.GossipPort}, {"HTTPPort", c.HTTPPort}} {
		if p.port < 1 || p.port > 65535 {
			return fmt.Errorf("cluster: agent %s: %s (%d) must be between 1 and 65535", c.NodeName, p.field, p.port)
		}
	}
	if c.Dir == "" {
		return fmt.Errorf("cluster: agent %s: Dir is empty", c.NodeName)
	}
	if c.NetNS != "" && c.GID != 0 {
		return fmt.Errorf("cluster: agent %s: GID (%d) must be 0 with NetNS: an agent in a namespace needs no source NAT", c.NodeName, c.GID)
	}
	for _, a := range c.ExtraArgs {
		if !strings.HasPrefix(a, "-") {
			return fmt.Errorf("cluster: agent %s: ExtraArgs entry %q must be a flag", c.NodeName, a)
		}
	}
	return nil
}

// args is the command line after the binary.
func (c AgentConfig) args(configPath string) []string {
	ip := c.IP.String()
	args := []string{
		"run",
		"--config=" + configPath,
		"--node-name=" + c.NodeName,
		"--bind-addr=" + ip,
		"--advertise-addr=" + ip,
		"--gossip-port=" + strconv.Itoa(c.GossipPort),
		"--http-addr=" + net.JoinHostPort(ip, strconv.Itoa(c.HTTPPort)),
		"--log-format=console",
	}
	if c.GossipProfile != "" {
		args = append(args, "--gossip-profile="+c.GossipProfile)
	}
	if c.Namespace != "" {
		args = append(args, "--namespace="+c.Namespace)
	}
	if c.Kubeconfig != "" {
		args = append(args, "--kubeconfig="+c.Kubeconfig)
	}
	if len(c.Join) > 0 {
		args = append(args, "--join="+strings.Join(c.Join, ","))
	}
	return append(args, c.ExtraArgs...)
}

// configFile is the content of config.yaml.
func (c AgentConfig) configFile() ([]byte, error) {
	checks := c.Checks
	if checks == nil {
		checks = DefaultAgentChecks(c.IP)
	}
	doc := map[string]any{"checks": checks}
	for k, v := range c.ExtraConfig {
		doc[k] = v
	}
	return yaml.Marshal(doc)
}

// Agent is one node's haagent. The process can be stopped and started again;
// every run appends to the same log.
type Agent struct {
	cfg     AgentConfig
	sp      *spawner
	http    *http.Client
	logPath string

	mu     sync.Mutex
	proc   *process
	closed bool
	env    []string // cfg.Env until SetEnv
}

// NewAgent checks cfg and writes the config file; it starts nothing.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	data, err := cfg.configFile()
	if err != nil {
		return nil, fmt.Errorf("cluster: agent %s: config file: %w", cfg.NodeName, err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "config.yaml"), data, 0o644); err != nil {
		return nil, err
	}
	var s *spawner
	if cfg.NetNS == "" {
		s = newSpawner()
	} else if s, err = newSpawnerInNetns(cfg.NetNS); err != nil {
		return nil, fmt.Errorf("cluster: agent %s: %w", cfg.NodeName, err)
	}
	return &Agent{
		cfg:     cfg,
		env:     slices.Clone(cfg.Env),
		sp:      s,
		logPath: filepath.Join(cfg.Dir, "agent.log"),
		// Short: a peer that is partitioned or stopped must not hold a
		// poll for long, and a healthy agent answers in milliseconds.
		http: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: cfg.Dial}},
	}, nil
}

// Start runs the agent process. It returns once the process has started,
// not once the agent is up: see WaitReady.
func (a *Agent) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("cluster: agent %s is closed", a.cfg.NodeName)
	}
	if a.proc != nil {
		if done, _ := a.proc.exited(); !done {
			return fmt.Errorf("cluster: agent %s is already running (pid %d)", a.cfg.NodeName, a.proc.pid())
		}
	}
	var cred *syscall.Credential
	if a.cfg.GID != 0 {
		cred = &syscall.Credential{Uid: uint32(os.Geteuid()), Gid: a.cfg.GID, NoSetGroups: true}
	}
	var env []string
	if len(a.env) > 0 {
		env = append(os.Environ(), a.env...)
	}
	p, err := startProcessAs(a.sp, "haagent "+a.cfg.NodeName, a.cfg.Binary,
		a.cfg.args(filepath.Join(a.cfg.Dir, "config.yaml")), a.logPath, cred, env)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	a.proc = p
	return nil
}

// Config is the agent's configuration as it was created; SetEnv does not
// change it.
func (a *Agent) Config() AgentConfig { return a.cfg }

// SetEnv replaces AgentConfig.Env for the runs started after it, as a
// redeploy with a changed environment would; the running process keeps its
// own.
func (a *Agent) SetEnv(env []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.env = slices.Clone(env)
}

// NodeName is the agent's node.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// URL is the base URL of the agent's HTTP API.
func (a *Agent) URL() string {
	return "http://" + net.JoinHostPort(a.cfg.IP.String(), strconv.Itoa(a.cfg.HTTPPort))
}

// GossipAddr is host:port of the agent's gossip listeners.
func (a *Agent) GossipAddr() string {
	return net.JoinHostPort(a.cfg.IP.String(), strconv.Itoa(a.cfg.GossipPort))
}

// LogPath is the agent's log file, shared by all its runs.
func (a *Agent) LogPath() string { return a.logPath }

// LogTail returns the last n lines of the agent's log.
func (a *Agent) LogTail(n int) string {
	tail, err := tailFile(a.logPath, n)
	if err != nil {
		return err.Error()
	}
	return tail
}

// PID is the process ID of the current run, 0 if it never started.
func (a *Agent) PID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.proc == nil {
		return 0
	}
	return a.proc.pid()
}

// Running reports whether the current run's process is alive (a stopped
// process counts as running).
func (a *Agent) Running() bool {
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	if p == nil {
		return false
	}
	done, _ := p.exited()
	return !done
}

// Err reports how the current run ended; nil while it runs.
func (a *Agent) Err() error {
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	if p == nil {
		return nil
	}
	if done, err := p.exited(); done {
		if err == nil {
			err = errors.New("exited with status 0")
		}
		return fmt.Errorf("cluster: agent %s: %w", a.cfg.NodeName, err)
	}
	return nil
}

func (a *Agent) current() (*process, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.proc == nil {
		return nil, fmt.Errorf("cluster: agent %s never started", a.cfg.NodeName)
	}
	return a.proc, nil
}

// Signal sends sig to the agent process (not its group).
func (a *Agent) Signal(sig syscall.Signal) error {
	p, err := a.current()
	if err != nil {
		return err
	}
	if done, _ := p.exited(); done {
		return fmt.Errorf("cluster: agent %s: signal %s: process has exited", a.cfg.NodeName, sig)
	}
	return syscall.Kill(p.pid(), sig)
}

// Kill is a crash of the agent alone: SIGKILL, no graceful leave. It waits
// until the process is reaped.
func (a *Agent) Kill() error {
	p, err := a.current()
	if err != nil {
		return err
	}
	// A stopped process dies of SIGKILL too.
	return p.kill(10 * time.Second)
}

// Terminate sends SIGTERM (a graceful stop: the agent leaves the gossip
// group) and waits up to timeout for the process to exit. It returns the
// process's exit error, nil for status 0. After the timeout it kills it.
func (a *Agent) Terminate(timeout time.Duration) error {
	p, err := a.current()
	if err != nil {
		return err
	}
	if done, err := p.exited(); done {
		return err
	}
	if err := syscall.Kill(p.pid(), syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	// A stopped process would keep SIGTERM pending forever.
	_ = syscall.Kill(p.pid(), syscall.SIGCONT)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(timeout):
		_ = p.kill(10 * time.Second)
		return fmt.Errorf("cluster: agent %s did not exit within %s of SIGTERM; killed", a.cfg.NodeName, timeout)
	}
}

// Pause stops the agent (SIGSTOP), as a long stall of the process would.
func (a *Agent) Pause() error { return a.Signal(syscall.SIGSTOP) }

// Resume continues a paused agent (SIGCONT).
func (a *Agent) Resume() error { return a.Signal(syscall.SIGCONT) }

// Close kills the agent if it runs and releases the spawner. The agent cannot
// start again. Safe to call more than once.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	p := a.proc
	a.mu.Unlock()
	var err error
	if p != nil {
		err = p.kill(10 * time.Second)
	}
	a.sp.close()
	a.http.CloseIdleConnections()
	return err
}

func (a *Agent) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL()+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", a.cfg.NodeName, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("agent %s: GET %s: %w", a.cfg.NodeName, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("agent %s: GET %s: %s: %s", a.cfg.NodeName, path, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// WaitReady waits until the agent answers /readyz (it has made its first
// join attempt), failing at once if the process exits.
func (a *Agent) WaitReady(ctx context.Context) error {
	var last error
	for {
		if err := a.Err(); err != nil {
			return fmt.Errorf("%w; last log lines:\n%s", err, a.LogTail(20))
		}
		if _, last = a.get(ctx, "/readyz"); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: agent %s not ready: %w (last error: %v)", a.cfg.NodeName, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Members reads the agent's membership table (/members).
func (a *Agent) Members(ctx context.Context) (*api.MembersResponse, error) {
	body, err := a.get(ctx, "/members")
	if err != nil {
		return nil, err
	}
	var resp api.MembersResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("agent %s: /members: %w", a.cfg.NodeName, err)
	}
	return &resp, nil
}

// RawMetrics returns the agent's /metrics as it was served (text format).
func (a *Agent) RawMetrics(ctx context.Context) ([]byte, error) {
	return a.get(ctx, "/metrics")
}

// Metrics reads and parses the agent's /metrics.
func (a *Agent) Metrics(ctx context.Context) (Metrics, error) {
	body, err := a.get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	m, err := parseMetrics(body)
	if err != nil {
		return nil, fmt.Errorf("agent %s: /metrics: %w", a.cfg.NodeName, err)
	}
	return m, nil
}

func parseMetrics(body []byte) (Metrics, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	return Metrics(families), nil
}

// Sum adds up the samples of name whose labels include every pair of labels
// (name, value, ...), as Value reads each; false when there is none.
func (m Metrics) Sum(name string, labels ...string) (float64, bool) {
	mf, ok := m[name]
	if !ok {
		return 0, false
	}
	var sum float64
	found := false
next:
	for _, s := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(s.GetLabel(), func(lp *dto.LabelPair) bool {
				return lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}) {
				continue next
			}
		}
		found = true
		switch {
		case s.Counter != nil:
			sum += s.Counter.GetValue()
		case s.Gauge != nil:
			sum += s.Gauge.GetValue()
		case s.Untyped != nil:
			sum += s.Untyped.GetValue()
		case s.Histogram != nil:
			sum += float64(s.Histogram.GetSampleCount())
		case s.Summary != nil:
			sum += float64(s.Summary.GetSampleCount())
		}
	}
	return sum, found
}

// Metrics are the metric families of one scrape, by name.
type Metrics map[string]*dto.MetricFamily

// Value returns the value of the sample of name whose labels include every
// pair of labels (given as name, value, name, value, ...): the counter,
// gauge or untyped value, or a histogram's or summary's sample count. It is
// false when there is no such sample.
func (m Metrics) Value(name string, labels ...string) (float64, bool) {
	mf, ok := m[name]
	if !ok {
		return 0, false
	}
next:
	for _, s := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range s.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
					break
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case s.Counter != nil:
			return s.Counter.GetValue(), true
		case s.Gauge != nil:
			return s.Gauge.GetValue(), true
		case s.Untyped != nil:
			return s.Untyped.GetValue(), true
		case s.Histogram != nil:
			return float64(s.Histogram.GetSampleCount()), true
		case s.Summary != nil:
			return float64(s.Summary.GetSampleCount()), true
		}
	}
	return 0, false
}

// Member returns the entry of name in a membership table.
func Member(resp *api.MembersResponse, name string) (gossip.Member, bool) {
	for _, m := range resp.Members {
		if m.Name == name {
			return m, true
		}
	}
	return gossip.Member{}, false
}

// RepoRoot finds the root of the haagent checkout: the nearest directory, from
// the working directory up, whose go.mod declares module
// github.com/haagent/haagent. Tests run in their package directory, inside
// test/, so this is test/'s parent.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if strings.TrimSpace(line) == "module github.com/haagent/haagent" {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cluster: no go.mod of module github.com/haagent/haagent above the working directory")
		}
		dir = parent
	}
}

// AgentBinaryEnv names a prebuilt haagent binary for BuildAgent to use.
const AgentBinaryEnv = "HAAGENT_AGENT_BINARY"

// BuildAgent compiles cmd/haagent of the checkout at root into dir/haagent
// and returns the binary's path. It is built as the image ships it, static
// (CGO_ENABLED=0): a cgo build links and maps far more of its dependencies
// (kubectl's drain package reaches Go's plugin package, which makes the
// binary export every symbol), and its resident memory is about 24 MiB larger.
//
// When the environment variable AgentBinaryEnv names a file, that prebuilt
// binary is returned instead and nothing is built: a way to measure another
// commit's agent (say, a baseline) with this checkout's harness.
func BuildAgent(ctx context.Context, root, dir string) (string, error) {
	if bin := os.Getenv(AgentBinaryEnv); bin != "" {
		info, err := os.Stat(bin)
		if err != nil {
			return "", fmt.Errorf("cluster: %s: %w", AgentBinaryEnv, err)
		}
		if info.IsDir() || info.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("cluster: %s (%s) is not an executable file", AgentBinaryEnv, bin)
		}
		return filepath.Abs(bin)
	}
	out := filepath.Join(dir, "haagent")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/haagent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cluster: go build ./cmd/haagent in %s: %w\n%s", root, err, msg)
	}
	return out, nil
}
