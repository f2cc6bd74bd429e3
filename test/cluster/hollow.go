package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubemarkBinary is the name of the hollow kubelet's executable in the
// directory hack/build-control-plane.sh builds.
const KubemarkBinary = "kubemark"

// HollowKubeletConfig describes one `kubemark --morph=kubelet` process: the
// real kubelet code (node status and Lease, pod workers, graceful
// termination, its server on the kubelet port) over a fake container
// runtime, a stub container manager and a fake cAdvisor.
type HollowKubeletConfig struct {
	// NodeName is the Node object's name (--name).
	NodeName string
	// Binary is the kubemark executable (KubemarkBinary in the directory of
	// the control-plane binaries).
	Binary string
	// Dir receives the process's log (kubemark.log), its kubeconfig and
	// tmp/ ($TMPDIR, emptied at each boot). Created if missing. The
	// kubelet's root directory and the fake runtime's socket are not
	// there: kubemark puts them at /tmp/hollow-kubelet.<random> and
	// /tmp/kubelet_remote_<random>.sock whatever $TMPDIR says (see
	// CRISocket); both are removed once the process is dead.
	Dir string
	// RESTConfig is how the kubelet reaches the API server, written to its
	// kubeconfig as given: server URL, TLS server name, CA, and credentials
	// (client certificate, bearer token or basic auth, inline or as files).
	// The caller decides the route: from inside Netns the URL must be
	// reachable from that namespace.
	RESTConfig *rest.Config
	// APIClient is the harness's own view of the API, used to see the Node
	// register and turn Ready (Start). Nil: a client built from RESTConfig,
	// which then has to reach the API from the test process too.
	APIClient kubernetes.Interface
	// Netns is the network namespace (a name of `ip netns`) the kubelet
	// runs in: it binds 0.0.0.0 and reports the address of the default
	// interface as the node's, so each node needs a stack of its own. Empty
	// runs it in the test process's namespace, where each hollow kubelet
	// needs a KubeletPort of its own.
	Netns string
	// NodeLabels are added to the Node (--node-labels). The kubelet refuses
	// labels under kubernetes.io and k8s.io outside its own allowed set.
	NodeLabels map[string]string
	// KubeletPort is the kubelet's port (--kubelet-port), on every address
	// of the namespace. kubemark serves it in plain HTTP (it gives the
	// kubelet no TLS options), /healthz included. The read-only port is
	// off, and there is no healthz port 10248: the real kubelet starts that
	// one outside the code kubemark runs.
	KubeletPort int
	// FenceFile, an absolute path, is the node's power switch for haagent's
	// fence command (like FakeKubeletConfig.FenceFile): the harness looks
	// for it every 50 ms and, once it exists, SIGKILLs the kubelet and
	// records when (Fenced). A stale file is removed at Start: a new boot is
	// not fenced. Empty: no switch.
	FenceFile string
	// ExtraArgs are appended to the kubemark flags after the harness's own;
	// the last value of a repeated flag wins.
	ExtraArgs []string
	// Logger receives the harness's actions; the kubelet logs to its file.
	// Nil: no logging.
	Logger *zap.Logger
}

// DefaultHollowKubeletConfig returns a hollow kubelet on the real kubelet
// port, in the test's own network namespace.
func DefaultHollowKubeletConfig(nodeName, binary, dir string, restConfig *rest.Config) HollowKubeletConfig {
	return HollowKubeletConfig{
		NodeName:    nodeName,
		Binary:      binary,
		Dir:         dir,
		RESTConfig:  restConfig,
		KubeletPort: 10250,
	}
}

// Validate checks the configuration.
func (c HollowKubeletConfig) Validate() error {
	if errs := validation.IsDNS1123Subdomain(c.NodeName); len(errs) > 0 {
		return fmt.Errorf("cluster: hollow kubelet: NodeName (%q) is not a valid node name: %s", c.NodeName, strings.Join(errs, "; "))
	}
	if c.Binary == "" {
		return fmt.Errorf("cluster: hollow kubelet %s: Binary is empty; it must name the kubemark executable (hack/build-control-plane.sh builds it)", c.NodeName)
	}
	if !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("cluster: hollow kubelet %s: Dir (%q) must be an absolute path", c.NodeName, c.Dir)
	}
	if c.RESTConfig == nil || c.RESTConfig.Host == "" {
		return fmt.Errorf("cluster: hollow kubelet %s: RESTConfig must be set, with a Host", c.NodeName)
	}
	if c.RESTConfig.ExecProvider != nil || c.RESTConfig.AuthProvider != nil {
		return fmt.Errorf("cluster: hollow kubelet %s: RESTConfig must carry its credentials itself (certificate, token or basic auth), not an exec or auth provider", c.NodeName)
	}
	if c.KubeletPort < 1 || c.KubeletPort > 65535 {
		return fmt.Errorf("cluster: hollow kubelet %s: KubeletPort (%d) must be between 1 and 65535", c.NodeName, c.KubeletPort)
	}
	// `ip netns` keeps namespaces as files under /run/netns.
	if c.Netns != "" && (c.Netns == "." || c.Netns == ".." || strings.ContainsAny(c.Netns, "/\x00") || len(c.Netns) > 255) {
		return fmt.Errorf("cluster: hollow kubelet %s: Netns (%q) must be a file name of `ip netns` (no '/', not . or .., at most 255 bytes)", c.NodeName, c.Netns)
	}
	for k, v := range c.NodeLabels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("cluster: hollow kubelet %s: NodeLabels key %q: %s", c.NodeName, k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("cluster: hollow kubelet %s: NodeLabels[%q] (%q): %s", c.NodeName, k, v, strings.Join(errs, "; "))
		}
	}
	if c.FenceFile != "" && !filepath.IsAbs(c.FenceFile) {
		return fmt.Errorf("cluster: hollow kubelet %s: FenceFile (%q) must be an absolute path", c.NodeName, c.FenceFile)
	}
	for _, a := range c.ExtraArgs {
		if !strings.HasPrefix(a, "--") {
			return fmt.Errorf("cluster: hollow kubelet %s: ExtraArgs entry %q must start with --", c.NodeName, a)
		}
	}
	return nil
}

// kubeconfig renders RESTConfig as a kubeconfig file.
func (c HollowKubeletConfig) kubeconfig() clientcmdapi.Config {
	rc := c.RESTConfig
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{
		Server:                   rc.Host,
		TLSServerName:            rc.ServerName,
		CertificateAuthority:     rc.CAFile,
		CertificateAuthorityData: rc.CAData,
		InsecureSkipTLSVerify:    rc.Insecure,
	}
	cfg.AuthInfos[c.NodeName] = &clientcmdapi.AuthInfo{
		ClientCertificate:     rc.CertFile,
		ClientCertificateData: rc.CertData,
		ClientKey:             rc.KeyFile,
		ClientKeyData:         rc.KeyData,
		Token:                 rc.BearerToken,
		TokenFile:             rc.BearerTokenFile,
		Username:              rc.Username,
		Password:              rc.Password,
	}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: c.NodeName}
	cfg.CurrentContext = "e2e"
	return *cfg
}

// args is the command line: kubemark, behind `ip netns exec` when Netns is
// set (which execs it: the PID is kubemark's).
func (c HollowKubeletConfig) args(kubeconfig string) (bin string, args []string) {
	kubemark := []string{
		c.Binary,
		"--morph=kubelet",
		"--name=" + c.NodeName,
		"--kubeconfig=" + kubeconfig,
		"--kubelet-port=" + strconv.Itoa(c.KubeletPort),
		"--kubelet-read-only-port=0",
		"--use-host-image-service=false",
	}
	if len(c.NodeLabels) > 0 {
		labels := make([]string, 0, len(c.NodeLabels))
		for k, v := range c.NodeLabels {
			labels = append(labels, k+"="+v)
		}
		slices.Sort(labels)
		kubemark = append(kubemark, "--node-labels="+strings.Join(labels, ","))
	}
	kubemark = append(kubemark, c.ExtraArgs...)
	if c.Netns != "" {
		kubemark = append([]string{"ip", "netns", "exec", c.Netns}, kubemark...)
	}
	return kubemark[0], kubemark[1:]
}

// HollowKubelet is one node's kubemark process. It can be killed (power
// loss) and started again (a new boot, with fresh temporary files); Stop
// ends it for good.
//
// Next to a FakeKubelet it is the heavier ground: the real kubelet's node
// status, Lease, pod workers and server, and a container runtime whose
// state (RuntimePods) shows where a pod's containers really run, at some
// 90 MB of memory per node. The FakeKubelet stays the tool for fast tests
// and large node counts.
type HollowKubelet struct {
	cfg        HollowKubeletConfig
	log        *zap.Logger
	client     kubernetes.Interface
	sp         *spawner
	logPath    string
	kubeconfig string
	tmpDir     string

	mu       sync.Mutex
	proc     *process
	starting bool   // between boot and the end of Start's wait
	socket   string // the fake runtime's socket of the current boot
	fencedAt time.Time
	closed   bool
}

// NewHollowKubelet checks cfg, creates Dir and writes the kubeconfig; it
// starts nothing.
func NewHollowKubelet(cfg HollowKubeletConfig) (*HollowKubelet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client := cfg.APIClient
	if client == nil {
		rc := rest.CopyConfig(cfg.RESTConfig)
		rc.UserAgent = "haagent-e2e-harness/" + cfg.NodeName
		var err error
		if client, err = kubernetes.NewForConfig(rc); err != nil {
			return nil, fmt.Errorf("cluster: hollow kubelet %s: API client: %w", cfg.NodeName, err)
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: hollow kubelet %s: %w", cfg.NodeName, err)
	}
	kubeconfig := filepath.Join(cfg.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(cfg.kubeconfig(), kubeconfig); err != nil {
		return nil, fmt.Errorf("cluster: hollow kubelet %s: kubeconfig: %w", cfg.NodeName, err)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &HollowKubelet{
		cfg:        cfg,
		log:        log.Named("hollowkubelet").With(zap.String("node", cfg.NodeName)),
		client:     client,
		sp:         newSpawner(),
		logPath:    filepath.Join(cfg.Dir, "kubemark.log"),
		kubeconfig: kubeconfig,
		tmpDir:     filepath.Join(cfg.Dir, "tmp"),
	}, nil
}

// NodeName is the node's name.
func (k *HollowKubelet) NodeName() string { return k.cfg.NodeName }

// Config is the configuration the kubelet was created with.
func (k *HollowKubelet) Config() HollowKubeletConfig { return k.cfg }

// Start boots the node: empty temporary files, no fence file, a new kubemark
// process. It returns once the Node is registered and Ready and its Lease
// renewed, both by this boot, and the fake runtime's socket is found, or with
// the end of the kubelet's log if the process exits first or ctx ends (the
// process is then killed).
func (k *HollowKubelet) Start(ctx context.Context) error {
	p, begin, err := k.boot()
	if err != nil {
		return err
	}
	socket, err := k.waitReady(ctx, p, begin)
	if err != nil {
		_ = p.kill(10 * time.Second)
		k.mu.Lock()
		k.starting = false
		k.mu.Unlock()
		return fmt.Errorf("cluster: hollow kubelet %s: %w; last log lines:\n%s", k.cfg.NodeName, err, k.LogTail(20))
	}
	k.mu.Lock()
	k.socket = socket
	k.starting = false
	k.mu.Unlock()
	k.log.Info("node ready", zap.Duration("took", time.Since(begin)), zap.String("criSocket", socket))
	return nil
}

// boot prepares the node's files and starts the process.
func (k *HollowKubelet) boot() (*process, time.Time, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, time.Time{}, fmt.Errorf("cluster: hollow kubelet %s is stopped", k.cfg.NodeName)
	}
	if k.starting {
		return nil, time.Time{}, fmt.Errorf("cluster: hollow kubelet %s is starting already", k.cfg.NodeName)
	}
	if k.proc != nil {
		if done, _ := k.proc.exited(); !done {
			return nil, time.Time{}, fmt.Errorf("cluster: hollow kubelet %s is already running (pid %d)", k.cfg.NodeName, k.proc.pid())
		}
	}
	if k.cfg.FenceFile != "" {
		if err := os.Remove(k.cfg.FenceFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, time.Time{}, fmt.Errorf("cluster: hollow kubelet %s: remove a stale fence file: %w", k.cfg.NodeName, err)
		}
	}
	// A reboot empties the node's temporary files: the last boot's root
	// directory and its fake runtime's socket go.
	if k.socket != "" {
		if err := os.Remove(k.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, time.Time{}, fmt.Errorf("cluster: hollow kubelet %s: %w", k.cfg.NodeName, err)
		}
	}
	if err := os.RemoveAll(k.tmpDir); err != nil {
		return nil, time.Time{}, fmt.Errorf("cluster: hollow kubelet %s: %w", k.cfg.NodeName, err)
	}
	if err := os.Mkdir(k.tmpDir, 0o755); err != nil {
		return nil, time.Time{}, fmt.Errorf("cluster: hollow kubelet %s: %w", k.cfg.NodeName, err)
	}
	k.fencedAt = time.Time{}
	k.socket = ""

	bin, args := k.cfg.args(k.kubeconfig)
	// The kubelet makes its root directory under $TMPDIR.
	env := append(os.Environ(), "TMPDIR="+k.tmpDir)
	begin := time.Now()
	p, err := startProcessAs(k.sp, "kubemark "+k.cfg.NodeName, bin, args, k.logPath, nil, env)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("cluster: %w", err)
	}
	k.proc = p
	k.starting = true
	if k.cfg.FenceFile != "" {
		go k.watchFence(p)
	}
	k.log.Info("kubelet started", zap.Int("pid", p.pid()), zap.String("netns", k.cfg.Netns))
	return p, begin, nil
}

// waitReady waits for the fake runtime's socket and for a Ready heartbeat
// of the Node posted after begin (a Node left Ready by the last boot does
// not count).
func (k *HollowKubelet) waitReady(ctx context.Context, p *process, begin time.Time) (string, error) {
	var socket string
	var lastErr error
	// Heartbeat times have whole seconds: compare with the second of begin.
	since := begin.Truncate(time.Second)
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if done, err := p.exited(); done {
			return false, fmt.Errorf("kubemark exited (%v)", err)
		}
		if socket == "" {
			s, err := findCRISocket(criSocketDir, p.pid())
			if err != nil {
				lastErr = err
				return false, nil
			}
			socket = s
		}
		node, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			if !apierrors.IsNotFound(err) {
				lastErr = err
			} else {
				lastErr = errors.New("node not registered yet")
			}
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type != corev1.NodeReady {
				continue
			}
			if c.Status == corev1.ConditionTrue && !c.LastHeartbeatTime.Time.Before(since) {
				return k.leaseRenewedSince(ctx, since, &lastErr), nil
			}
			lastErr = fmt.Errorf("node Ready=%s (%s), heartbeat %s", c.Status, c.Reason, c.LastHeartbeatTime.Format(time.RFC3339))
			return false, nil
		}
		lastErr = errors.New("node has no Ready condition yet")
		return false, nil
	})
	if err != nil && lastErr != nil && ctx.Err() != nil {
		return "", fmt.Errorf("waiting for the node to be Ready: %w (last: %v)", err, lastErr)
	}
	if err != nil {
		return "", err
	}
	return socket, nil
}

// criSocketDir is where kubemark's fake runtime listens, in every mount
// namespace the harness starts it in (`ip netns exec` keeps the host's /tmp).
const criSocketDir = "/tmp"

// leaseRenewedSince reports whether the node Lease was renewed at or after
// since, the kubelet's other heartbeat; why not goes to lastErr.
func (k *HollowKubelet) leaseRenewedSince(ctx context.Context, since time.Time, lastErr *error) bool {
	l, err := k.client.CoordinationV1().Leases(nodeLeaseNamespace).Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		*lastErr = errors.New("node Ready, its Lease not created yet")
		return false
	case err != nil:
		*lastErr = err
		return false
	case l.Spec.RenewTime == nil || l.Spec.RenewTime.Time.Before(since):
		*lastErr = errors.New("node Ready, its Lease not renewed by this boot yet")
		return false
	}
	return true
}

// findCRISocket returns the fake runtime socket in dir that process pid
// listens on. Each kubemark picks a random name there, so the socket is
// told from other kubelets' by asking the kernel who listens on it.
func findCRISocket(dir string, pid int) (string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "kubelet_remote_*.sock"))
	if err != nil {
		return "", err
	}
	for _, m := range matches {
		// Sockets of other kubelets, alive or dead, are skipped.
		if owner, err := socketOwner(m, time.Second); err == nil && owner == pid {
			return m, nil
		}
	}
	return "", fmt.Errorf("none of the %d fake runtime sockets in %s is process %d's yet", len(matches), dir, pid)
}

// watchFence kills the kubelet once FenceFile exists, and returns when the
// process ends either way.
func (k *HollowKubelet) watchFence(p *process) {
	t := time.NewTicker(fencePollInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		if _, err := os.Stat(k.cfg.FenceFile); err != nil {
			continue
		}
		// The fence command ran up to one poll earlier: the time recorded
		// is late, never early.
		at := time.Now()
		k.mu.Lock()
		if k.proc == p {
			k.fencedAt = at
		}
		k.mu.Unlock()
		k.log.Warn("node fenced: powering off", zap.String("fenceFile", k.cfg.FenceFile))
		if err := p.kill(10 * time.Second); err != nil {
			k.log.Error("fence: kill failed", zap.Error(err))
		}
		k.removeSocket(p)
		return
	}
}

// Fenced returns when the harness found the FenceFile of the current boot
// and killed the kubelet, and false if it has not.
func (k *HollowKubelet) Fenced() (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fencedAt, !k.fencedAt.IsZero()
}

func (k *HollowKubelet) current() (*process, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.proc == nil {
		return nil, fmt.Errorf("cluster: hollow kubelet %s never started", k.cfg.NodeName)
	}
	return k.proc, nil
}

// Kill is power loss: SIGKILL to the kubelet's process group, nothing
// stopped gracefully, the Node, its Lease and its pods left in the API as
// they were. It waits until the process is reaped. Start boots it again.
func (k *HollowKubelet) Kill() error {
	p, err := k.current()
	if err != nil {
		return err
	}
	if err := p.kill(10 * time.Second); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	k.removeSocket(p)
	k.removeRootDirs()
	k.log.Info("kubelet killed")
	return nil
}

// removeSocket removes the socket file that boot p's runtime left in /tmp,
// once p is dead.
func (k *HollowKubelet) removeSocket(p *process) {
	k.mu.Lock()
	socket := ""
	if k.proc == p {
		socket = k.socket
	}
	k.mu.Unlock()
	if socket != "" {
		if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			k.log.Warn("fake runtime socket left behind", zap.String("socket", socket), zap.Error(err))
		}
	}
}

// rootDirLine is kubemark's log line naming the root directory it made.
var rootDirLine = regexp.MustCompile(`Using (/tmp/hollow-kubelet\.[0-9]+) as root dir`)

// removeRootDirs removes the root directories the log says this node's
// boots made under /tmp, where kubemark makes them whatever $TMPDIR says.
// Only called with the kubelet dead: a running one's directory stays.
func (k *HollowKubelet) removeRootDirs() {
	log, err := os.ReadFile(k.logPath)
	if err != nil {
		k.log.Warn("kubelet root directory not found", zap.Error(err))
		return
	}
	for _, m := range rootDirLine.FindAllSubmatch(log, -1) {
		if err := os.RemoveAll(string(m[1])); err != nil {
			k.log.Warn("kubelet root directory left behind", zap.String("dir", string(m[1])), zap.Error(err))
		}
	}
}

// Stop ends the kubelet for good: SIGTERM, then SIGKILL after timeout, and
// the process's spawner is released. Safe to call more than once.
func (k *HollowKubelet) Stop(timeout time.Duration) error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	p := k.proc
	k.mu.Unlock()
	var err error
	if p != nil {
		if done, _ := p.exited(); !done {
			if serr := syscall.Kill(p.pid(), syscall.SIGTERM); serr != nil && !errors.Is(serr, syscall.ESRCH) {
				err = serr
			}
			select {
			case <-p.done:
			case <-time.After(timeout):
			}
		}
		// The process group too: whatever the kubelet left behind.
		if kerr := p.kill(10 * time.Second); kerr != nil {
			err = errors.Join(err, kerr)
		}
		k.removeSocket(p)
		k.removeRootDirs()
	}
	k.sp.close()
	if err != nil {
		return fmt.Errorf("cluster: hollow kubelet %s: stop: %w", k.cfg.NodeName, err)
	}
	return nil
}

// Running reports whether the current boot's process is alive.
func (k *HollowKubelet) Running() bool {
	k.mu.Lock()
	p := k.proc
	k.mu.Unlock()
	if p == nil {
		return false
	}
	done, _ := p.exited()
	return !done
}

// PID is the kubemark process of the current boot, 0 if it never started.
func (k *HollowKubelet) PID() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.proc == nil {
		return 0
	}
	return k.proc.pid()
}

// LogPath is the kubelet's log, shared by all its boots.
func (k *HollowKubelet) LogPath() string { return k.logPath }

// LogTail returns the last n lines of the kubelet's log.
func (k *HollowKubelet) LogTail(n int) string {
	tail, err := tailFile(k.logPath, n)
	if err != nil {
		return err.Error()
	}
	return tail
}

// CRISocket is the fake runtime's socket of the current boot,
// /tmp/kubelet_remote_<random>.sock; empty before Start has returned. Start
// of the next boot removes it.
func (k *HollowKubelet) CRISocket() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.socket
}

// RuntimePods lists the pod sandboxes of the node's fake runtime with their
// containers: where a pod's containers really run, as the kubelet left
// them. A node whose kubelet is not running runs nothing: that is an error,
// not an empty list, so that a dead node is never read as an idle one.
func (k *HollowKubelet) RuntimePods(ctx context.Context) ([]RuntimePod, error) {
	k.mu.Lock()
	p, socket := k.proc, k.socket
	k.mu.Unlock()
	if p == nil || socket == "" {
		return nil, fmt.Errorf("cluster: hollow kubelet %s: not started", k.cfg.NodeName)
	}
	if done, err := p.exited(); done {
		return nil, fmt.Errorf("cluster: hollow kubelet %s is not running (%v): a powered-off node runs no containers", k.cfg.NodeName, err)
	}
	pods, err := listRuntimePods(ctx, socket, p.pid(), criCallTimeout)
	if err != nil {
		return nil, fmt.Errorf("cluster: hollow kubelet %s: fake runtime: %w", k.cfg.NodeName, err)
	}
	return pods, nil
}

// Containers is RuntimePods flattened: every container of every sandbox,
// each with its pod's identity.
func (k *HollowKubelet) Containers(ctx context.Context) ([]RuntimeContainer, error) {
	pods, err := k.RuntimePods(ctx)
	if err != nil {
		return nil, err
	}
	var out []RuntimeContainer
	for _, p := range pods {
		out = append(out, p.Containers...)
	}
	return out, nil
}
