package cluster

// This file is over 500 lines: etcd, kube-apiserver, kube-controller-manager
// and kube-scheduler start, wait and stop as one sequence with shared
// certificates and ports.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Component names, also the names of the binaries and of the log files
// (<name>.log in the run directory).
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
)

// components in start order; Stop goes the other way.
var components = []string{Etcd, APIServer, ControllerManager, Scheduler}

// ControlPlaneConfig says where the binaries are and how to start them.
type ControlPlaneConfig struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager and
	// kube-scheduler, as built by hack/build-control-plane.sh.
	BinDir string
	// BaseDir is where the per-run directory is created; empty means the
	// system temporary directory.
	BaseDir string
	// KeepDir leaves the run directory (logs, PKI, etcd data, kubeconfigs)
	// in place after Stop, for looking into a failure by hand.
	KeepDir bool
	// ServiceCIDR is the Service ClusterIP range. Its addresses are only ever
	// data here: there is no kube-proxy, so nothing routes them.
	ServiceCIDR netip.Prefix
	// APIServerFlags, ControllerManagerFlags and SchedulerFlags are appended
	// to the flags the harness sets. The components parse flags with pflag,
	// where the last value of a repeated flag wins, so these also override.
	APIServerFlags         []string
	ControllerManagerFlags []string
	SchedulerFlags         []string
	// AuditLog turns on the apiserver's audit log (AuditLogPath): every
	// request at level Metadata, in JSON, one line per stage (ResponseStarted
	// of a watch, ResponseComplete of every request). It is what the
	// API-cost measurement reads (AnalyzeAudit). Off by default: it costs
	// the apiserver a write per request.
	AuditLog bool
	// StartTimeout bounds the whole start, from etcd to the default
	// ServiceAccount. A cold start takes about ten seconds on two cores;
	// the bound is generous because CI machines are often busier.
	StartTimeout time.Duration
	// Logger receives the harness's own progress; the components log to
	// files. Nil means no logging.
	Logger *zap.Logger
}

// DefaultControlPlaneConfig returns a configuration with stock Kubernetes
// timings; only BinDir must be set.
func DefaultControlPlaneConfig() ControlPlaneConfig {
	return ControlPlaneConfig{
		ServiceCIDR:  netip.MustParsePrefix("10.0.0.0/24"),
		StartTimeout: 2 * time.Minute,
	}
}

// TunedAPIServerFlags make pods tolerate a not-ready or unreachable node for
// 5 s instead of 300 s: the "tuned stock" baseline that haagent is compared with.
func TunedAPIServerFlags() []string {
	return []string{
		"--default-not-ready-toleration-seconds=5",
		"--default-unreachable-toleration-seconds=5",
	}
}

// TunedControllerManagerFlags make the node lifecycle controller look at
// nodes every second and give up on a silent one after 8 s instead of 50 s.
// Fake kubelets must then renew their Lease well within 8 s (every 2 s).
func TunedControllerManagerFlags() []string {
	return []string{
		"--node-monitor-period=1s",
		"--node-monitor-grace-period=8s",
	}
}

// Validate checks the configuration and that the binaries are there.
func (c ControlPlaneConfig) Validate() error {
	if c.BinDir == "" {
		return errors.New("cluster: BinDir is empty; it must name the directory of the control-plane binaries (hack/build-control-plane.sh --print-dir)")
	}
	for _, name := range components {
		path := filepath.Join(c.BinDir, name)
		info, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("cluster: BinDir (%s) has no %s: %w", c.BinDir, name, err)
		}
		if info.IsDir() || info.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("cluster: %s is not an executable file", path)
		}
	}
	if !c.ServiceCIDR.IsValid() || !c.ServiceCIDR.Addr().Is4() || c.ServiceCIDR.Bits() > 28 {
		return fmt.Errorf("cluster: ServiceCIDR (%s) must be an IPv4 prefix of /28 or larger", c.ServiceCIDR)
	}
	if c.StartTimeout <= 0 {
		return fmt.Errorf("cluster: StartTimeout (%s) must be positive", c.StartTimeout)
	}
	for _, fl := range []struct {
		field string
		flags []string
	}{
		{"APIServerFlags", c.APIServerFlags},
		{"ControllerManagerFlags", c.ControllerManagerFlags},
		{"SchedulerFlags", c.SchedulerFlags},
	} {
		for _, f := range fl.flags {
			if !strings.HasPrefix(f, "--") {
				return fmt.Errorf("cluster: %s entry %q must start with --", fl.field, f)
			}
		}
	}
	return nil
}

// ControlPlane is etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler running as child processes of the test.
type ControlPlane struct {
	cfg ControlPlaneConfig
	log *zap.Logger

	mu      sync.Mutex
	started bool
	stopped bool
	dir     string
	procs   []*process
	spawner *spawner

	pki             *pkiFiles
	apiserverURL    string
	restConfig      *rest.Config
	client          kubernetes.Interface
	adminKubeconfig string
}

// NewControlPlane checks cfg; it starts nothing.
func NewControlPlane(cfg ControlPlaneConfig) (*ControlPlane, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &ControlPlane{cfg: cfg, log: log.Named("controlplane")}, nil
}

// StartControlPlane is NewControlPlane followed by Start. On error the caller
// still calls Stop, which is safe on a nil or half-started ControlPlane.
func StartControlPlane(ctx context.Context, cfg ControlPlaneConfig) (*ControlPlane, error) {
	cp, err := NewControlPlane(cfg)
	if err != nil {
		return nil, err
	}
	return cp, cp.Start(ctx)
}

// Start creates the run directory and PKI, starts the components one after
// the other and returns once the apiserver is ready, the controller manager
// and scheduler are healthy and the default ServiceAccount exists (pods are
// refused until it does). ctx bounds only the start: the components run
// until Stop. If Start fails, the error ends with the last log lines of the
// components, and the processes are left for Stop to end.
func (cp *ControlPlane) Start(ctx context.Context) error {
	cp.mu.Lock()
	if cp.started {
		cp.mu.Unlock()
		return errors.New("cluster: control plane already started")
	}
	cp.started = true
	cp.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, cp.cfg.StartTimeout)
	defer cancel()
	begin := time.Now()
	if err := cp.start(ctx); err != nil {
		return fmt.Errorf("%w\n%s", err, cp.LogTails(20))
	}
	cp.log.Info("control plane ready",
		zap.String("dir", cp.dir),
		zap.String("apiserver", cp.apiserverURL),
		zap.Duration("took", time.Since(begin)))
	return nil
}

func (cp *ControlPlane) start(ctx context.Context) error {
	dir, err := os.MkdirTemp(cp.cfg.BaseDir, "haagent-e2e-")
	if err != nil {
		return fmt.Errorf("cluster: run directory: %w", err)
	}
	cp.mu.Lock()
	cp.dir = dir
	cp.spawner = newSpawner()
	cp.mu.Unlock()

	serviceIP := cp.cfg.ServiceCIDR.Masked().Addr().Next()
	if cp.pki, err = generatePKI(dir, net.IP(serviceIP.AsSlice())); err != nil {
		return fmt.Errorf("cluster: PKI: %w", err)
	}
	ports, err := freePorts(5)
	if err != nil {
		return fmt.Errorf("cluster: free ports: %w", err)
	}
	etcdClientPort, etcdPeerPort, apiserverPort, kcmPort, schedulerPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	cp.apiserverURL = "https://127.0.0.1:" + strconv.Itoa(apiserverPort)

	// etcd, plain HTTP: it listens on loopback only and holds throwaway data.
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeerPort)
	if err := cp.run(Etcd, []string{
		"--name=e2e",
		"--data-dir=" + filepath.Join(dir, "etcd-data"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=e2e=" + peerURL,
		// No fsync: a test cluster's data is worthless after the run, and
		// fsync latency on a busy disk would only add noise to the timings.
		"--unsafe-no-fsync=true",
	}, nil); err != nil {
		return err
	}
	if err := cp.waitHTTP(ctx, Etcd, etcdURL+"/health"); err != nil {
		return err
	}

	p := cp.pki
	var audit []string
	if cp.cfg.AuditLog {
		policy := filepath.Join(dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
			return fmt.Errorf("cluster: audit policy: %w", err)
		}
		audit = []string{
			"--audit-policy-file=" + policy,
			"--audit-log-path=" + cp.AuditLogPath(),
			"--audit-log-format=json",
			// Written as each request ends, not in batches: a window's
			// events are in the file when the window closes.
			"--audit-log-mode=blocking",
			// One file, never rotated: a measurement reads it whole.
			"--audit-log-maxsize=0",
		}
	}
	if err := cp.run(APIServer, append([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiserverPort),
		// Its default is under /var/run; keep everything in the run directory.
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file=" + p.serverCert,
		"--tls-private-key-file=" + p.serverKey,
		"--client-ca-file=" + p.caCert,
		// Without the request-header settings the apiserver looks for them
		// in a ConfigMap it cannot yet read and logs errors at every start.
		"--requestheader-client-ca-file=" + p.frontProxyCACert,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + p.frontProxyClientCrt,
		"--proxy-client-key-file=" + p.frontProxyClientKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--service-cluster-ip-range=" + cp.cfg.ServiceCIDR.Masked().String(),
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		// The default reconciler publishes the advertise address in the
		// kubernetes Endpoints, and a loopback address is invalid there.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}, audit...), cp.cfg.APIServerFlags); err != nil {
		return err
	}

	if err := cp.writeKubeconfigs(); err != nil {
		return err
	}
	if err := cp.waitAPIServerReady(ctx); err != nil {
		return err
	}

	kcmKubeconfig := filepath.Join(dir, "kubeconfigs", "controller-manager.kubeconfig")
	if err := cp.run(ControllerManager, []string{
		"--kubeconfig=" + kcmKubeconfig,
		"--authentication-kubeconfig=" + kcmKubeconfig,
		"--authorization-kubeconfig=" + kcmKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(kcmPort),
		"--cert-dir=" + filepath.Join(dir, "controller-manager-certs"),
		// Its default is under /usr/libexec, and it creates the directory.
		"--flex-volume-plugin-dir=" + filepath.Join(dir, "flexvolume"),
		// Under RBAC each controller needs its own service account token;
		// with the controller manager's identity alone most would be refused.
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + p.saKey,
		"--root-ca-file=" + p.caCert,
		"--cluster-signing-cert-file=" + p.caCert,
		"--cluster-signing-key-file=" + p.caKey,
		// One instance only: leader election would only delay the start.
		"--leader-elect=false",
		"--profiling=false",
	}, cp.cfg.ControllerManagerFlags); err != nil {
		return err
	}

	schedKubeconfig := filepath.Join(dir, "kubeconfigs", "scheduler.kubeconfig")
	if err := cp.run(Scheduler, []string{
		"--kubeconfig=" + schedKubeconfig,
		"--authentication-kubeconfig=" + schedKubeconfig,
		"--authorization-kubeconfig=" + schedKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(schedulerPort),
		"--cert-dir=" + filepath.Join(dir, "scheduler-certs"),
		"--leader-elect=false",
		"--profiling=false",
	}, cp.cfg.SchedulerFlags); err != nil {
		return err
	}

	if err := cp.waitHTTP(ctx, ControllerManager, "https://127.0.0.1:"+strconv.Itoa(kcmPort)+"/healthz"); err != nil {
		return err
	}
	if err := cp.waitHTTP(ctx, Scheduler, "https://127.0.0.1:"+strconv.Itoa(schedulerPort)+"/healthz"); err != nil {
		return err
	}
	return cp.waitDefaultServiceAccount(ctx)
}

// run starts one component with the harness's flags followed by extra.
func (cp *ControlPlane) run(name string, args, extra []string) error {
	args = append(args, extra...)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return errors.New("cluster: control plane stopped during start")
	}
	p, err := startProcess(cp.spawner, name, filepath.Join(cp.cfg.BinDir, name), args, filepath.Join(cp.dir, name+".log"))
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	cp.procs = append(cp.procs, p)
	cp.log.Info("component started", zap.String("component", name), zap.Int("pid", p.pid()))
	return nil
}

// poll runs cond until it is done, the context ends or a component dies;
// a dead component ends the wait at once instead of at the timeout.
func (cp *ControlPlane) poll(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	var lastErr error
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := cp.Err(); err != nil {
			return false, err
		}
		ok, err := cond(ctx)
		if err != nil {
			lastErr = err
		}
		return ok, nil
	})
	if err == nil {
		return nil
	}
	if lastErr != nil && ctx.Err() != nil {
		return fmt.Errorf("cluster: waiting for %s: %w (last error: %v)", what, err, lastErr)
	}
	return fmt.Errorf("cluster: waiting for %s: %w", what, err)
}

// waitHTTP waits for a 200 from a health endpoint. The controller manager and
// scheduler serve with self-signed certificates, and only their liveness
// matters here, so the certificate is not checked.
func (cp *ControlPlane) waitHTTP(ctx context.Context, what, url string) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // health probe of a loopback test server
	}
	defer client.CloseIdleConnections()
	return cp.poll(ctx, what+" health", func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("%s: %s", url, resp.Status)
		}
		return true, nil
	})
}

func (cp *ControlPlane) waitAPIServerReady(ctx context.Context) error {
	return cp.poll(ctx, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		body, err := cp.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return false, fmt.Errorf("%w: %s", err, body)
		}
		return true, nil
	})
}

// waitDefaultServiceAccount waits for the service account controller: until
// it has created "default", the ServiceAccount admission plugin rejects pods.
func (cp *ControlPlane) waitDefaultServiceAccount(ctx context.Context) error {
	return cp.poll(ctx, "ServiceAccount default/default", func(ctx context.Context) (bool, error) {
		_, err := cp.client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
}

// writeKubeconfigs writes the admin, controller-manager and scheduler
// kubeconfigs and builds the admin client.
func (cp *ControlPlane) writeKubeconfigs() error {
	dir := filepath.Join(cp.dir, "kubeconfigs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, kc := range []struct {
		file string
		user string
		cert clientCert
	}{
		{"admin.kubeconfig", "admin", cp.pki.admin},
		{"controller-manager.kubeconfig", "system:kube-controller-manager", cp.pki.controllerManager},
		{"scheduler.kubeconfig", "system:kube-scheduler", cp.pki.scheduler},
	} {
		auth := &clientcmdapi.AuthInfo{ClientCertificateData: kc.cert.certPEM, ClientKeyData: kc.cert.keyPEM}
		if err := cp.writeKubeconfig(filepath.Join(dir, kc.file), kc.user, auth); err != nil {
			return err
		}
	}
	cp.adminKubeconfig = filepath.Join(dir, "admin.kubeconfig")

	cp.restConfig = &rest.Config{
		Host: cp.apiserverURL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   cp.pki.caPEM,
			CertData: cp.pki.admin.certPEM,
			KeyData:  cp.pki.admin.keyPEM,
		},
		// Tests create and watch many objects at once; client-go's default
		// of 5 requests/s would make the harness the slowest part.
		QPS:   200,
		Burst: 400,
	}
	client, err := kubernetes.NewForConfig(cp.restConfig)
	if err != nil {
		return err
	}
	cp.client = client
	return nil
}

func (cp *ControlPlane) writeKubeconfig(path, user string, auth *clientcmdapi.AuthInfo) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cp.apiserverURL, CertificateAuthorityData: cp.pki.caPEM}
	cfg.AuthInfos[user] = auth
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: user}
	cfg.CurrentContext = "e2e"
	return clientcmd.WriteToFile(*cfg, path)
}

// ServiceAccountToken mints a token for an existing ServiceAccount through
// the TokenRequest API, valid for ttl (the apiserver's minimum is 10 minutes).
func (cp *ControlPlane) ServiceAccountToken(ctx context.Context, namespace, name string, ttl time.Duration) (string, error) {
	if ttl < 10*time.Minute {
		return "", fmt.Errorf("cluster: token ttl (%s) must be at least 10m, the apiserver's minimum", ttl)
	}
	secs := int64(ttl / time.Second)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}
	tr, err := cp.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("cluster: token for %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}

// TokenRESTConfig is a client configuration that authenticates with token
// and nothing else, for running agents under least-privilege RBAC.
func (cp *ControlPlane) TokenRESTConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            cp.apiserverURL,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.pki.caPEM},
		BearerToken:     token,
		QPS:             cp.restConfig.QPS,
		Burst:           cp.restConfig.Burst,
	}
}

// ServiceAccountKubeconfig mints a token for namespace/name and writes a
// kubeconfig using it into the run directory; it returns the file's path,
// to be passed to a process as --kubeconfig.
func (cp *ControlPlane) ServiceAccountKubeconfig(ctx context.Context, namespace, name string, ttl time.Duration) (string, error) {
	token, err := cp.ServiceAccountToken(ctx, namespace, name, ttl)
	if err != nil {
		return "", err
	}
	path := filepath.Join(cp.dir, "kubeconfigs", "sa-"+namespace+"-"+name+".kubeconfig")
	user := "system:serviceaccount:" + namespace + ":" + name
	if err := cp.writeKubeconfig(path, user, &clientcmdapi.AuthInfo{Token: token}); err != nil {
		return "", err
	}
	return path, nil
}

// Dir is the run directory: component logs (<component>.log), pki/,
// kubeconfigs/ and the etcd data.
func (cp *ControlPlane) Dir() string { return cp.dir }

// AuditLogPath is the apiserver's audit log (see ControlPlaneConfig.AuditLog).
func (cp *ControlPlane) AuditLogPath() string { return filepath.Join(cp.dir, "audit.log") }

// AuditLogEnabled reports whether the apiserver writes AuditLogPath.
func (cp *ControlPlane) AuditLogEnabled() bool { return cp.cfg.AuditLog }

// PID is the process ID of a component (Etcd, APIServer, ...), 0 if it was
// not started.
func (cp *ControlPlane) PID(component string) int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, p := range cp.procs {
		if p.name == component {
			return p.pid()
		}
	}
	return 0
}

// APIServerMetrics scrapes the apiserver's /metrics as the admin.
func (cp *ControlPlane) APIServerMetrics(ctx context.Context) (Metrics, error) {
	body, err := cp.client.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: apiserver /metrics: %w", err)
	}
	return parseMetrics(body)
}

// APIServerURL is the https URL of the apiserver.
func (cp *ControlPlane) APIServerURL() string { return cp.apiserverURL }

// AdminKubeconfig is the path of a kubeconfig for a system:masters user.
func (cp *ControlPlane) AdminKubeconfig() string { return cp.adminKubeconfig }

// RESTConfig returns a copy of the admin client configuration.
func (cp *ControlPlane) RESTConfig() *rest.Config { return rest.CopyConfig(cp.restConfig) }

// Client is an admin clientset.
func (cp *ControlPlane) Client() kubernetes.Interface { return cp.client }

// LogPath is the log file of a component (Etcd, APIServer, ...).
func (cp *ControlPlane) LogPath(component string) string {
	return filepath.Join(cp.dir, component+".log")
}

// PIDs are the process IDs of the components started so far.
func (cp *ControlPlane) PIDs() []int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	pids := make([]int, 0, len(cp.procs))
	for _, p := range cp.procs {
		pids = append(pids, p.pid())
	}
	return pids
}

// Err reports a component that exited on its own, with the end of its log.
func (cp *ControlPlane) Err() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return nil
	}
	for _, p := range cp.procs {
		if done, err := p.exited(); done {
			tail, _ := tailFile(p.logPath, 20)
			return fmt.Errorf("cluster: %s exited unexpectedly (%v); last log lines:\n%s", p.name, err, tail)
		}
	}
	return nil
}

// LogTails returns the last lines of every component's log, one block per
// component, for printing when a test fails.
func (cp *ControlPlane) LogTails(lines int) string {
	cp.mu.Lock()
	procs := append([]*process(nil), cp.procs...)
	cp.mu.Unlock()
	var b strings.Builder
	for _, p := range procs {
		tail, err := tailFile(p.logPath, lines)
		if err != nil {
			tail = err.Error()
		}
		fmt.Fprintf(&b, "----- %s (%s), last %d lines -----\n%s\n", p.name, p.logPath, lines, tail)
	}
	return b.String()
}

// Stop kills every component (SIGKILL to each process group, newest first),
// waits until each is reaped and removes the run directory unless KeepDir is
// set. It is safe to call more than once and on a nil ControlPlane.
func (cp *ControlPlane) Stop() error {
	if cp == nil {
		return nil
	}
	cp.mu.Lock()
	if cp.stopped {
		cp.mu.Unlock()
		return nil
	}
	cp.stopped = true
	procs := cp.procs
	sp := cp.spawner
	cp.mu.Unlock()

	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].kill(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if sp != nil {
		sp.close()
	}
	if cp.dir != "" && !cp.cfg.KeepDir {
		if err := os.RemoveAll(cp.dir); err != nil {
			errs = append(errs, err)
		}
	}
	cp.log.Info("control plane stopped", zap.String("dir", cp.dir), zap.Bool("kept", cp.cfg.KeepDir))
	return errors.Join(errs...)
}
