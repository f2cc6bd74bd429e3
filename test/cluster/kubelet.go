package cluster

// This file is over 500 lines: the fake kubelet's node status, Lease, pod
// lifecycle and container journal all work on the state of one Kubelet.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
)

// ZoneLabel is the well-known topology label the node lifecycle controller
// (and haagent's per-zone guard) groups nodes by.
const ZoneLabel = "topology.kubernetes.io/zone"

// nodeLeaseNamespace is where kubelets keep their heartbeat Leases.
const nodeLeaseNamespace = "kube-node-lease"

// fencePollInterval is how often a FakeKubelet looks for its FenceFile.
const fencePollInterval = 50 * time.Millisecond

// FakeKubeletConfig describes one simulated node.
type FakeKubeletConfig struct {
	// NodeName is the Node object's name.
	NodeName string
	// Address is the node's InternalIP (where the kubelet port listens) and
	// the range its pod IPs come from; see NodeAddresses.
	Address NodeAddress
	// Zone is the value of the topology.kubernetes.io/zone label.
	Zone string
	// Labels are added to the Node's labels.
	Labels map[string]string
	// KubeletPort is the TCP port listened on at Address.IP, and published
	// in the Node's daemon endpoints. Every node has an address of its own,
	// so the real default, 10250, works for many nodes on one machine.
	KubeletPort int
	// HealthzPort is the TCP port of the kubelet's healthz endpoint
	// (GET /healthz answers "ok"), at Address.IP like the kubelet port, where
	// a node's own agent checks its kubelet. 0 opens no healthz listener.
	HealthzPort int
	// LeaseDuration is written into the node Lease. The node lifecycle
	// controller ignores it (it uses its own grace period); it is there
	// because a real kubelet sets it.
	LeaseDuration time.Duration
	// LeaseRenewInterval is how often the node Lease is renewed; this is the
	// heartbeat the node lifecycle controller watches. A real kubelet renews
	// every 10 s; with a tuned --node-monitor-grace-period of 8 s, use 2 s.
	LeaseRenewInterval time.Duration
	// StatusUpdateInterval is how often the Node's Ready condition is
	// posted again with a fresh heartbeat time. It is also how fast the
	// node turns Ready again after the controller marked it Unknown while
	// this kubelet was alive (say, across a partition).
	StatusUpdateInterval time.Duration
	// CPU, Memory and MaxPods are the node's capacity, all allocatable.
	CPU     resource.Quantity
	Memory  resource.Quantity
	MaxPods int
	// KubeletVersion is reported in the Node's status.
	KubeletVersion string
	// Images are the container images the Node's status lists. A real
	// node lists every image it holds (the kubelet reports up to 50), and
	// they make most of a Node object's size: DefaultFakeKubeletConfig
	// gives RealisticImages, for Node objects of about 12 KB as JSON, as
	// large as a busy production node's, so that whatever reads Nodes pays
	// what it would in production. Nil lists none.
	Images []corev1.ContainerImage
	// Logger receives the fake kubelet's actions; nil means no logging.
	Logger *zap.Logger
	// Journal, if set, records when each pod's containers run on this node
	// (see Journal). Give every kubelet of a cluster the same one.
	Journal *Journal
	// FenceFile, an absolute path, is the node's power switch for a fence
	// action: the kubelet looks for it every 50 ms and, once it exists,
	// powers the node off as Stop does (containers stopped, Lease no longer
	// renewed, ports closed) and records when (Fenced). The agent lives in
	// another process, so its fence command is `touch FenceFile`. A stale
	// file is removed at Start: a new boot is not fenced. Empty: no switch.
	FenceFile string
}

// DefaultFakeKubeletConfig returns a node with a real kubelet's timings.
func DefaultFakeKubeletConfig(nodeName string, addr NodeAddress) FakeKubeletConfig {
	return FakeKubeletConfig{
		NodeName:             nodeName,
		Address:              addr,
		Zone:                 "zone-a",
		KubeletPort:          10250,
		HealthzPort:          10248,
		LeaseDuration:        40 * time.Second,
		LeaseRenewInterval:   10 * time.Second,
		StatusUpdateInterval: 10 * time.Second,
		CPU:                  resource.MustParse("4"),
		Memory:               resource.MustParse("8Gi"),
		MaxPods:              110,
		KubeletVersion:       "v1.37.2",
		Images:               RealisticImages(45),
	}
}

// RealisticImages returns n container images as a production node lists
// them: long registry paths, each by digest and by tag, with sizes from
// 5 MB to 1.2 GB. The list is the same on every call.
func RealisticImages(n int) []corev1.ContainerImage {
	registries := []string{
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com/platform",
		"europe-west4-docker.pkg.dev/acme-prod-7f3a/services",
		"registry.k8s.io",
		"quay.io/prometheus",
		"ghcr.io/acme-corp/payments",
		"docker.io/library",
	}
	apps := []string{
		"checkout-api", "ledger-writer", "fraud-scoring-model-server", "pause", "kube-proxy",
		"node-exporter", "fluent-bit", "envoy-distroless", "otel-collector-contrib", "coredns",
		"aws-node", "ebs-csi-driver", "csi-node-driver-registrar", "livenessprobe", "cluster-autoscaler",
		"search-indexer", "recommendation-batch", "image-resizer", "notification-fanout", "session-cache",
	}
	out := make([]corev1.ContainerImage, 0, n)
	for i := range n {
		repo := registries[i%len(registries)] + "/" + apps[i%len(apps)]
		if i >= len(apps) {
			repo += fmt.Sprintf("-v%d", i/len(apps)+1)
		}
		sum := sha256.Sum256([]byte(repo))
		tag := fmt.Sprintf("%d.%d.%d-%x", 1+i%4, (i*7)%23, (i*13)%41, sum[:4])
		out = append(out, corev1.ContainerImage{
			Names: []string{
				repo + "@sha256:" + hex.EncodeToString(sum[:]),
				repo + ":" + tag,
			},
			SizeBytes: 5_000_000 + int64(sum[5])<<22 + int64(i)*1_234_567,
		})
	}
	return out
}

// Validate checks the configuration.
func (c FakeKubeletConfig) Validate() error {
	if errs := validation.IsDNS1123Subdomain(c.NodeName); len(errs) > 0 {
		return fmt.Errorf("cluster: NodeName (%q) is not a valid node name: %s", c.NodeName, strings.Join(errs, "; "))
	}
	if !c.Address.IP.Is4() {
		return fmt.Errorf("cluster: node %s: Address.IP (%s) must be an IPv4 address", c.NodeName, c.Address.IP)
	}
	if !c.Address.PodCIDR.IsValid() || !c.Address.PodCIDR.Addr().Is4() || c.Address.PodCIDR.Bits() > 30 {
		return fmt.Errorf("cluster: node %s: Address.PodCIDR (%s) must be an IPv4 prefix of /30 or larger", c.NodeName, c.Address.PodCIDR)
	}
	if c.Address.PodCIDR.Addr().IsLoopback() {
		return fmt.Errorf("cluster: node %s: Address.PodCIDR (%s) must not be loopback: EndpointSlices reject loopback pod IPs", c.NodeName, c.Address.PodCIDR)
	}
	if c.KubeletPort < 1 || c.KubeletPort > 65535 {
		return fmt.Errorf("cluster: node %s: KubeletPort (%d) must be between 1 and 65535", c.NodeName, c.KubeletPort)
	}
	if c.HealthzPort < 0 || c.HealthzPort > 65535 || (c.HealthzPort != 0 && c.HealthzPort == c.KubeletPort) {
		return fmt.Errorf("cluster: node %s: HealthzPort (%d) must be 0 (none) or between 1 and 65535, and differ from KubeletPort", c.NodeName, c.HealthzPort)
	}
	if c.LeaseRenewInterval <= 0 {
		return fmt.Errorf("cluster: node %s: LeaseRenewInterval (%s) must be positive", c.NodeName, c.LeaseRenewInterval)
	}
	if c.LeaseDuration < time.Second || c.LeaseDuration <= c.LeaseRenewInterval {
		return fmt.Errorf("cluster: node %s: LeaseDuration (%s) must be at least 1s and more than LeaseRenewInterval (%s)", c.NodeName, c.LeaseDuration, c.LeaseRenewInterval)
	}
	if c.StatusUpdateInterval <= 0 {
		return fmt.Errorf("cluster: node %s: StatusUpdateInterval (%s) must be positive", c.NodeName, c.StatusUpdateInterval)
	}
	if c.MaxPods < 1 {
		return fmt.Errorf("cluster: node %s: MaxPods (%d) must be at least 1", c.NodeName, c.MaxPods)
	}
	if c.CPU.Sign() <= 0 || c.Memory.Sign() <= 0 {
		return fmt.Errorf("cluster: node %s: CPU (%s) and Memory (%s) must be positive", c.NodeName, c.CPU.String(), c.Memory.String())
	}
	if c.FenceFile != "" && !filepath.IsAbs(c.FenceFile) {
		return fmt.Errorf("cluster: node %s: FenceFile (%q) must be an absolute path", c.NodeName, c.FenceFile)
	}
	return nil
}

// FakeKubelet is a simulated node's kubelet. See the package documentation.
type FakeKubelet struct {
	cfg    FakeKubeletConfig
	log    *zap.Logger
	client kubernetes.Interface
	bootID string

	mu        sync.Mutex
	started   bool
	stopped   bool
	halted    chan struct{} // closed once stopped, by Stop or the fence
	fenceDone chan struct{} // closed when the fence watcher returns; nil without one
	fencedAt  time.Time
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	listener  net.Listener
	healthz   *http.Server
	acceptWG  sync.WaitGroup
	factory   informers.SharedInformerFactory
	queue     workqueue.TypedRateLimitingInterface[string]

	podLister corelisters.PodLister

	ipMu     sync.Mutex
	podIPs   map[netip.Addr]string // pod IP -> pod UID
	nextHost uint32                // index of the next pod IP to try, from 0
	lease    *coordinationv1.Lease // last written, only touched by the lease loop
}

// NewFakeKubelet checks cfg and builds the kubelet's own API client from
// restConfig; it starts nothing.
func NewFakeKubelet(cfg FakeKubeletConfig, restConfig *rest.Config) (*FakeKubelet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc := rest.CopyConfig(restConfig)
	rc.UserAgent = "haagent-fake-kubelet/" + cfg.NodeName
	// Connections of its own: client-go shares one transport among configs
	// that look alike, so a kubelet started after a crash would reuse the
	// crashed one's connection, cut off by the crash, and wait some 13 s for
	// it to time out, as a rebooted machine never does. A Proxy function
	// (here: none, a direct connection) makes the config uncacheable.
	rc.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	// A new boot ID per instance: starting a FakeKubelet again for the same
	// node looks like the node rebooted, as it would after a crash.
	bootID, err := randomID()
	if err != nil {
		return nil, err
	}
	return &FakeKubelet{
		cfg:    cfg,
		log:    log.Named("fakekubelet").With(zap.String("node", cfg.NodeName)),
		client: client,
		bootID: bootID,
		halted: make(chan struct{}),
		podIPs: map[netip.Addr]string{},
	}, nil
}

// NodeName is the name of the simulated node.
func (k *FakeKubelet) NodeName() string { return k.cfg.NodeName }

// Address is the simulated node's addresses.
func (k *FakeKubelet) Address() NodeAddress { return k.cfg.Address }

// KubeletAddr is host:port of the kubelet listener.
func (k *FakeKubelet) KubeletAddr() string {
	return net.JoinHostPort(k.cfg.Address.IP.String(), strconv.Itoa(k.cfg.KubeletPort))
}

// HealthzAddr is host:port of the healthz listener, empty without one.
func (k *FakeKubelet) HealthzAddr() string {
	if k.cfg.HealthzPort == 0 {
		return ""
	}
	return net.JoinHostPort(k.cfg.Address.IP.String(), strconv.Itoa(k.cfg.HealthzPort))
}

// Start opens the kubelet port, registers the Node (updating it if it exists,
// as after a reboot), writes the node Lease and begins serving pods. ctx bounds
// only the start; the node then runs until Stop.
func (k *FakeKubelet) Start(ctx context.Context) error {
	k.mu.Lock()
	if k.started {
		k.mu.Unlock()
		return errors.New("cluster: fake kubelet already started")
	}
	k.started = true
	runCtx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	k.queue = workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	k.factory = informers.NewSharedInformerFactoryWithOptions(k.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.cfg.NodeName).String()
		}))
	k.mu.Unlock()

	if k.cfg.FenceFile != "" {
		if err := os.Remove(k.cfg.FenceFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			k.Stop()
			return fmt.Errorf("cluster: node %s: remove a stale fence file: %w", k.cfg.NodeName, err)
		}
	}
	if err := k.StartListener(); err != nil {
		k.Stop()
		return err
	}
	node, err := k.registerNode(ctx)
	if err != nil {
		k.Stop()
		return fmt.Errorf("cluster: register node %s: %w", k.cfg.NodeName, err)
	}
	if err := k.writeLease(ctx, node); err != nil {
		k.Stop()
		return fmt.Errorf("cluster: node lease %s: %w", k.cfg.NodeName, err)
	}

	podInformer := k.factory.Core().V1().Pods()
	k.podLister = podInformer.Lister()
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    k.enqueue,
		UpdateFunc: func(_, obj any) { k.enqueue(obj) },
		DeleteFunc: k.forgetPod,
	}); err != nil {
		k.Stop()
		return err
	}
	k.factory.Start(runCtx.Done())
	for typ, ok := range k.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			k.Stop()
			return fmt.Errorf("cluster: node %s: %v cache did not sync: %w", k.cfg.NodeName, typ, ctx.Err())
		}
	}

	k.wg.Add(3)
	go func() { defer k.wg.Done(); k.leaseLoop(runCtx, node) }()
	go func() { defer k.wg.Done(); k.statusLoop(runCtx) }()
	go func() { defer k.wg.Done(); k.podWorker(runCtx) }()
	if k.cfg.FenceFile != "" {
		// Not in wg: the watcher stops the kubelet, which waits for wg.
		done := make(chan struct{})
		k.mu.Lock()
		k.fenceDone = done
		k.mu.Unlock()
		go func() { defer close(done); k.watchFence(runCtx) }()
	}
	k.log.Info("node started", zap.String("address", k.cfg.Address.IP.String()), zap.String("kubelet", k.KubeletAddr()))
	return nil
}

// Stop is a crash: every loop ends at once, the kubelet port closes, the
// containers stop (in the Journal), and the Node, its Lease and its pods
// stay in the API as they were. A FakeKubelet cannot be started again;
// start a new one for the same node to bring it back.
func (k *FakeKubelet) Stop() {
	k.halt("crashed", time.Now())
	<-k.halted
	k.mu.Lock()
	fenceDone := k.fenceDone
	k.mu.Unlock()
	if fenceDone != nil {
		<-fenceDone
	}
}

// halt powers the node off; the containers count as stopped at the
// instant at. Only the first call does anything.
func (k *FakeKubelet) halt(reason string, at time.Time) {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	k.stopped = true
	cancel := k.cancel
	queue := k.queue
	factory := k.factory
	k.mu.Unlock()
	defer close(k.halted)

	if cancel != nil {
		cancel()
	}
	k.StopListener()
	if queue != nil {
		queue.ShutDown()
	}
	if factory != nil {
		factory.Shutdown()
	}
	// The pod worker has returned: no container starts after this.
	k.wg.Wait()
	if k.cfg.Journal != nil {
		k.cfg.Journal.stopBoot(k.bootID, reason, at)
	}
	k.log.Info("node stopped", zap.String("reason", reason))
}

// watchFence powers the node off once FenceFile exists.
func (k *FakeKubelet) watchFence(ctx context.Context) {
	t := time.NewTicker(fencePollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := os.Stat(k.cfg.FenceFile); err != nil {
			continue
		}
		// The fence command ran up to one poll earlier: a stop recorded
		// now is late, never early.
		at := time.Now()
		k.mu.Lock()
		k.fencedAt = at
		k.mu.Unlock()
		k.log.Warn("node fenced: powering off", zap.String("fenceFile", k.cfg.FenceFile))
		k.halt("fenced", at)
		return
	}
}

// Fenced returns when the kubelet found its FenceFile and powered the node
// off, and false if it has not.
func (k *FakeKubelet) Fenced() (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fencedAt, !k.fencedAt.IsZero()
}

// BootID is this boot's ID, as in the Node's status and the Journal.
func (k *FakeKubelet) BootID() string { return k.bootID }

// StartListener opens the kubelet port and the healthz port again after
// StopListener. Start does this itself.
func (k *FakeKubelet) StartListener() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.listener != nil {
		return nil
	}
	l, err := net.Listen("tcp", k.KubeletAddr())
	if err != nil {
		return fmt.Errorf("cluster: node %s: kubelet port: %w", k.cfg.NodeName, err)
	}
	var hl net.Listener
	if k.cfg.HealthzPort != 0 {
		if hl, err = net.Listen("tcp", k.HealthzAddr()); err != nil {
			l.Close()
			return fmt.Errorf("cluster: node %s: healthz port: %w", k.cfg.NodeName, err)
		}
	}
	k.listener = l
	k.acceptWG.Add(1)
	go func() {
		defer k.acceptWG.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			// A peer's probe only needs the handshake to succeed.
			conn.Close()
		}
	}()
	if hl != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, "ok")
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		k.healthz = srv
		k.acceptWG.Add(1)
		go func() {
			defer k.acceptWG.Done()
			_ = srv.Serve(hl)
		}()
	}
	return nil
}

// StopListener closes the kubelet port and the healthz port while the rest
// of the node goes on: the node keeps its Lease and pods, but a TCP probe of
// its kubelet and a GET of its healthz fail, as when the kubelet process is
// down. Open healthz connections are cut too, so a client with keep-alive
// sees the failure at once.
func (k *FakeKubelet) StopListener() {
	k.mu.Lock()
	l, srv := k.listener, k.healthz
	k.listener, k.healthz = nil, nil
	k.mu.Unlock()
	if l != nil {
		l.Close()
	}
	if srv != nil {
		srv.Close()
	}
	k.acceptWG.Wait()
}

func (k *FakeKubelet) registerNode(ctx context.Context) (*corev1.Node, error) {
	labels := map[string]string{
		"kubernetes.io/hostname": k.cfg.NodeName,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
		ZoneLabel:                k.cfg.Zone,
	}
	for key, v := range k.cfg.Labels {
		labels[key] = v
	}
	cidr := k.cfg.Address.PodCIDR.Masked().String()
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Labels: labels},
		Spec:       corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
	}
	// Created with its status, Ready included: a Node that exists for a
	// moment without a Ready condition gets the not-ready NoSchedule taint,
	// and pods scheduled before the taint is lifted again pile up elsewhere.
	k.fillStatus(&want.Status, metav1.Now())

	var node *corev1.Node
	err := retryUntil(ctx, func(ctx context.Context) error {
		created, err := k.client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
		if err == nil {
			node = created
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		// The node comes back: keep what others put on it (haagent's taints,
		// a cordon), refresh only what the kubelet owns.
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cur.Labels == nil {
				cur.Labels = map[string]string{}
			}
			for key, v := range labels {
				cur.Labels[key] = v
			}
			node, err = k.client.CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	err = retryUntil(ctx, func(ctx context.Context) error {
		return k.postStatus(ctx)
	})
	return node, err
}

// postStatus writes the node's status with a fresh Ready heartbeat.
func (k *FakeKubelet) postStatus(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		k.fillStatus(&node.Status, metav1.Now())
		_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
}

func (k *FakeKubelet) fillStatus(st *corev1.NodeStatus, now metav1.Time) {
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    k.cfg.CPU,
		corev1.ResourceMemory: k.cfg.Memory,
		corev1.ResourcePods:   *resource.NewQuantity(int64(k.cfg.MaxPods), resource.DecimalSI),
	}
	if k.cfg.Images != nil {
		// What a real node reports besides; only with the realistic status.
		resources[corev1.ResourceEphemeralStorage] = resource.MustParse("101430960Ki")
		resources["hugepages-1Gi"] = resource.MustParse("0")
		resources["hugepages-2Mi"] = resource.MustParse("0")
		resources["attachable-volumes-aws-ebs"] = resource.MustParse("25")
	}
	st.Capacity = resources
	st.Allocatable = resources.DeepCopy()
	st.Phase = corev1.NodeRunning
	st.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: k.cfg.Address.IP.String()},
		{Type: corev1.NodeHostName, Address: k.cfg.NodeName},
	}
	st.DaemonEndpoints.KubeletEndpoint.Port = int32(k.cfg.KubeletPort)
	st.NodeInfo = corev1.NodeSystemInfo{
		MachineID:               k.cfg.NodeName,
		SystemUUID:              k.cfg.NodeName,
		BootID:                  k.bootID,
		KernelVersion:           "fake",
		OSImage:                 "haagent fake kubelet",
		ContainerRuntimeVersion: "fake://0",
		KubeletVersion:          k.cfg.KubeletVersion,
		OperatingSystem:         "linux",
		Architecture:            "amd64",
	}
	if k.cfg.Images != nil {
		st.Addresses = append(st.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: k.cfg.NodeName + ".eu-west-1.compute.internal"})
		id := sha256.Sum256([]byte(k.cfg.NodeName))
		st.NodeInfo.MachineID = hex.EncodeToString(id[:16])
		st.NodeInfo.SystemUUID = fmt.Sprintf("ec2%x-%x-%x-%x-%x", id[16:18], id[18:20], id[20:22], id[22:24], id[24:30])
		st.NodeInfo.KernelVersion = "6.8.0-1021-aws"
		st.NodeInfo.OSImage = "Ubuntu 24.04.2 LTS"
		st.NodeInfo.ContainerRuntimeVersion = "containerd://2.0.5"
		st.NodeInfo.KubeProxyVersion = k.cfg.KubeletVersion
		st.Images = k.cfg.Images
	}
	conds := []struct {
		typ    corev1.NodeConditionType
		status corev1.ConditionStatus
		reason string
		msg    string
	}{
		{corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
		{corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
		{corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
		{corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"},
	}
	for _, c := range conds {
		setNodeCondition(st, corev1.NodeCondition{
			Type:              c.typ,
			Status:            c.status,
			Reason:            c.reason,
			Message:           c.msg,
			LastHeartbeatTime: now,
		}, now)
	}
}

// setNodeCondition replaces or adds a condition, keeping its transition time
// unless the status changed.
func setNodeCondition(st *corev1.NodeStatus, c corev1.NodeCondition, now metav1.Time) {
	for i := range st.Conditions {
		if st.Conditions[i].Type != c.Type {
			continue
		}
		c.LastTransitionTime = st.Conditions[i].LastTransitionTime
		if st.Conditions[i].Status != c.Status || c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = now
		}
		st.Conditions[i] = c
		return
	}
	c.LastTransitionTime = now
	st.Conditions = append(st.Conditions, c)
}

func (k *FakeKubelet) statusLoop(ctx context.Context) {
	wait.JitterUntilWithContext(ctx, func(ctx context.Context) {
		if err := k.postStatus(ctx); err != nil && ctx.Err() == nil {
			k.log.Warn("node status update failed", zap.Error(err))
		}
	}, k.cfg.StatusUpdateInterval, 0.04, false)
}

// writeLease creates or takes over the node's Lease, owned by the Node so
// that deleting the Node removes it, as with a real kubelet.
func (k *FakeKubelet) writeLease(ctx context.Context, node *corev1.Node) error {
	holder := k.cfg.NodeName
	secs := int32(k.cfg.LeaseDuration / time.Second)
	spec := func(l *coordinationv1.Lease) {
		now := metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity = &holder
		l.Spec.LeaseDurationSeconds = &secs
		l.Spec.RenewTime = &now
		l.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "v1",
			Kind:       "Node",
			Name:       node.Name,
			UID:        node.UID,
		}}
	}
	leases := k.client.CoordinationV1().Leases(nodeLeaseNamespace)
	// The apiserver creates kube-node-lease shortly after it is ready, so a
	// first NotFound here is expected on a fresh control plane.
	return retryUntil(ctx, func(ctx context.Context) error {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Namespace: nodeLeaseNamespace}}
		spec(l)
		created, err := leases.Create(ctx, l, metav1.CreateOptions{})
		if err == nil {
			k.lease = created
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		cur, err := leases.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		spec(cur)
		updated, err := leases.Update(ctx, cur, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		k.lease = updated
		return nil
	})
}

// leaseLoop renews the Lease from the copy it last wrote, which costs one
// request per renewal; on any error it reads the Lease afresh next time.
func (k *FakeKubelet) leaseLoop(ctx context.Context, node *corev1.Node) {
	leases := k.client.CoordinationV1().Leases(nodeLeaseNamespace)
	wait.JitterUntilWithContext(ctx, func(ctx context.Context) {
		if k.lease == nil {
			if err := k.writeLease(ctx, node); err != nil && ctx.Err() == nil {
				k.log.Warn("node lease write failed", zap.Error(err))
			}
			return
		}
		l := k.lease.DeepCopy()
		now := metav1.NewMicroTime(time.Now())
		l.Spec.RenewTime = &now
		updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
		if err != nil {
			k.lease = nil
			if ctx.Err() == nil {
				k.log.Warn("node lease renewal failed", zap.Error(err))
			}
			return
		}
		k.lease = updated
	}, k.cfg.LeaseRenewInterval, 0, true)
}

func (k *FakeKubelet) enqueue(obj any) {
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	k.queue.Add(key)
}

// forgetPod frees the IP of a pod that is gone from the API.
func (k *FakeKubelet) forgetPod(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if k.cfg.Journal != nil {
		k.cfg.Journal.stop(string(pod.UID), k.bootID, "deleted", time.Now())
	}
	k.ipMu.Lock()
	defer k.ipMu.Unlock()
	for ip, uid := range k.podIPs {
		if uid == string(pod.UID) {
			delete(k.podIPs, ip)
		}
	}
}

func (k *FakeKubelet) podWorker(ctx context.Context) {
	for {
		key, shutdown := k.queue.Get()
		if shutdown {
			return
		}
		err := k.syncPod(ctx, key)
		switch {
		case err == nil:
			k.queue.Forget(key)
		case ctx.Err() != nil:
			// Crashed mid-request: nothing more to do.
		default:
			k.log.Warn("pod sync failed", zap.String("pod", key), zap.Error(err))
			k.queue.AddRateLimited(key)
		}
		k.queue.Done(key)
	}
}

// syncPod does what a kubelet would with one of its pods: finish deleting it
// once deletion was asked for, or report it running and ready.
func (k *FakeKubelet) syncPod(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := k.podLister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}

	if pod.DeletionTimestamp != nil {
		// The containers stop at once: the grace period is already over.
		// The UID precondition keeps a new pod of the same name safe.
		if k.cfg.Journal != nil {
			k.cfg.Journal.stop(string(pod.UID), k.bootID, "deleted", time.Now())
		}
		grace := int64(0)
		err := k.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: &grace,
			Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
		})
		if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			if err == nil {
				k.log.Debug("pod finalized", zap.String("pod", key))
			}
			return nil
		}
		return err
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	// The containers start before the pod is reported Running. A pod that
	// is Running already (reported by an earlier boot of this node) has
	// its containers started again, as after a reboot.
	if k.cfg.Journal != nil {
		k.cfg.Journal.start(key, string(pod.UID), k.cfg.NodeName, k.bootID, time.Now())
	}
	if podRunningAndReady(pod) {
		return nil
	}

	ip, err := k.podIP(pod)
	if err != nil {
		return err
	}
	now := metav1.Now()
	st := pod.Status.DeepCopy()
	st.Phase = corev1.PodRunning
	st.HostIP = k.cfg.Address.IP.String()
	st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	st.PodIP = ip.String()
	st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	for _, t := range []corev1.PodConditionType{
		corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled,
	} {
		setPodCondition(st, t, now)
	}
	started := true
	st.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, corev1.ContainerStatus{
			Name:        c.Name,
			Image:       c.Image,
			ImageID:     "fake://" + c.Image,
			ContainerID: "fake://" + string(pod.UID) + "/" + c.Name,
			Ready:       true,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				Reason: "Completed", StartedAt: now, FinishedAt: now,
			}},
		})
	}
	st.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name:        c.Name,
			Image:       c.Image,
			ImageID:     "fake://" + c.Image,
			ContainerID: "fake://" + string(pod.UID) + "/" + c.Name,
			Ready:       true,
			Started:     &started,
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	updated := pod.DeepCopy()
	updated.Status = *st
	_, err = k.client.CoreV1().Pods(ns).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		k.log.Debug("pod running", zap.String("pod", key), zap.String("ip", st.PodIP))
	}
	return err
}

func podRunningAndReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func setPodCondition(st *corev1.PodStatus, t corev1.PodConditionType, now metav1.Time) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != corev1.ConditionTrue {
				st.Conditions[i].Status = corev1.ConditionTrue
				st.Conditions[i].Reason = ""
				st.Conditions[i].Message = ""
				st.Conditions[i].LastTransitionTime = now
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
}

// podIP keeps a pod's IP once it has one (the node lifecycle controller may
// have marked it NotReady while this kubelet was unreachable), otherwise
// hands out the next free address of the node's pod range.
func (k *FakeKubelet) podIP(pod *corev1.Pod) (netip.Addr, error) {
	k.ipMu.Lock()
	defer k.ipMu.Unlock()
	if ip, err := netip.ParseAddr(pod.Status.PodIP); err == nil && k.cfg.Address.PodCIDR.Contains(ip) {
		k.podIPs[ip] = string(pod.UID)
		return ip, nil
	}
	for ip, uid := range k.podIPs {
		if uid == string(pod.UID) {
			return ip, nil
		}
	}
	// Hosts are numbered 1 .. size-2: neither the network nor the broadcast
	// address. The search starts after the last address handed out, so a
	// freed address is not reused at once.
	prefix := k.cfg.Address.PodCIDR.Masked()
	base := addrToUint32(prefix.Addr())
	hosts := uint32(1)<<(32-prefix.Bits()) - 2
	for i := range hosts {
		ip := uint32ToAddr(base + 1 + (k.nextHost+i)%hosts)
		if _, used := k.podIPs[ip]; !used {
			k.podIPs[ip] = string(pod.UID)
			k.nextHost = (k.nextHost + i + 1) % hosts
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("node %s: pod range %s is full", k.cfg.NodeName, prefix)
}

func addrToUint32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uint32ToAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// retryUntil runs f until it succeeds or ctx ends, backing off briefly.
func retryUntil(ctx context.Context, f func(context.Context) error) error {
	var lastErr error
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		lastErr = f(ctx)
		return lastErr == nil, nil
	})
	if err != nil && lastErr != nil {
		return lastErr
	}
	return err
}

func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}
