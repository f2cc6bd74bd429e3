package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/test/cluster"
)

// hollowLeaseRenewInterval is how often a kubelet renews its node Lease with
// the default 40 s Lease duration (a quarter of it), kubemark included.
const hollowLeaseRenewInterval = 10 * time.Second

// startHollowKubelet creates a hollow kubelet in the test's own network
// namespace on a free kubelet port, stopped when the test ends. It is not
// started.
func startHollowKubelet(t *testing.T, cp *cluster.ControlPlane, name string, adjust func(*cluster.HollowKubeletConfig)) *cluster.HollowKubelet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("hollow kubelets need root (a mount namespace of their own): run hack/e2e.sh as root")
	}
	bin := filepath.Join(os.Getenv(binDirEnv), cluster.KubemarkBinary)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no kubemark in %s=%s (%v): hack/e2e.sh builds it with hack/build-control-plane.sh", binDirEnv, os.Getenv(binDirEnv), err)
	}
	// The kubelet listens on every address of its namespace.
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	cfg := cluster.DefaultHollowKubeletConfig(name, bin, filepath.Join(cp.Dir(), "nodes", name), cp.RESTConfig())
	cfg.APIClient = cp.Client()
	cfg.KubeletPort = port
	cfg.Logger = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	if adjust != nil {
		adjust(&cfg)
	}
	k, err := cluster.NewHollowKubelet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubemark log of %s (%s):\n%s", name, k.LogPath(), k.LogTail(40))
		}
		pid := k.PID()
		if err := k.Stop(10 * time.Second); err != nil {
			t.Errorf("stop hollow kubelet: %v", err)
		}
		if pid != 0 {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("kubemark %d still exists after Stop (kill -0: %v)", pid, err)
			}
		}
	})
	return k
}

// TestHollowKubelet runs one real kubelet (kubemark, fake runtime) against
// the control plane: it registers Ready and renews its Lease, runs a pod
// whose container the fake runtime shows running, stops renewing when
// killed (its runtime then answers nothing), boots again and runs the pod
// again, and dies when its fence file appears.
func TestHollowKubelet(t *testing.T) {
	cp := startControlPlane(t, stock)
	client := cp.Client()
	ctx := context.Background()
	const name = "hollow-1"
	fenceFile := filepath.Join(cp.Dir(), "nodes", name+".fence")
	k := startHollowKubelet(t, cp, name, func(cfg *cluster.HollowKubeletConfig) {
		cfg.NodeLabels = map[string]string{"haagent.io/ground": "hollow"}
		cfg.FenceFile = fenceFile
	})

	begin := time.Now()
	startCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	err := k.Start(startCtx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node Ready and its Lease renewed %s after start (pid %d)", time.Since(begin).Round(time.Millisecond), k.PID())

	node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := node.Status.NodeInfo.KubeletVersion; got != "v1.37.2" {
		t.Errorf("Node reports kubelet %q, want v1.37.2 (the real kubelet of the pinned release)", got)
	}
	if got := node.Status.DaemonEndpoints.KubeletEndpoint.Port; int(got) != k.Config().KubeletPort {
		t.Errorf("Node publishes kubelet port %d, want %d", got, k.Config().KubeletPort)
	}
	if got := node.Labels["haagent.io/ground"]; got != "hollow" {
		t.Errorf("Node label haagent.io/ground = %q, want hollow (NodeLabels)", got)
	}
	if got := node.Labels["kubernetes.io/hostname"]; got != name {
		t.Errorf("Node label kubernetes.io/hostname = %q, want %s", got, name)
	}

	// What haagent's kubelet check can look at: the kubelet port, which
	// serves /healthz (kubemark has no healthz port 10248).
	if status, err := kubeletHealthz(k.Config().KubeletPort); err != nil {
		t.Error(err)
	} else {
		t.Logf("kubelet port: GET /healthz: %s", status)
	}

	// The Lease is the heartbeat the node lifecycle controller watches.
	renew0 := leaseRenewTime(t, cp, name)
	d := eventually(t, hollowLeaseRenewInterval+5*time.Second, "the node Lease renewed", func(ctx context.Context) (bool, error) {
		return leaseRenewTime(t, cp, name).After(renew0), nil
	})
	t.Logf("Lease renewed %s after the first look", d.Round(time.Millisecond))

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hollow-app", Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"kubernetes.io/hostname": name},
			Containers:   []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	pod, err = client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d = eventually(t, time.Minute, "the pod Running and Ready with an IP on the hollow node", func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Spec.NodeName != name || p.Status.Phase != corev1.PodRunning || !podReady(p) || p.Status.PodIP == "" {
			return false, fmt.Errorf("node %q, phase %s, ready %t, IP %q", p.Spec.NodeName, p.Status.Phase, podReady(p), p.Status.PodIP)
		}
		return true, nil
	})
	t.Logf("pod Running and Ready %s after creation", d.Round(time.Millisecond))

	first := runningContainer(t, k, pod)
	t.Logf("fake runtime: %s/%s container %s running since %s", first.Namespace, first.Pod, first.Name, first.Started.Format(time.RFC3339Nano))

	logIdleUsage(t, k.PID(), 10*time.Second)

	// Power loss.
	if err := k.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	if k.Running() {
		t.Fatal("Running() is true after Kill")
	}
	if _, err := k.Containers(ctx); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("Containers() after Kill: error %v, want one saying the kubelet is not running", err)
	}
	if status, err := kubeletHealthz(k.Config().KubeletPort); err == nil {
		t.Errorf("the kubelet port still answers after Kill: %s", status)
	}
	// A renewal the kubelet sent just before it died may still land.
	time.Sleep(500 * time.Millisecond)
	renewKilled := leaseRenewTime(t, cp, name)
	// The stock grace period is 50 s: the Node stays Ready for now.
	node, err = client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := nodeReadyStatus(node); s != corev1.ConditionTrue {
		t.Errorf("Node Ready=%s %s after the kill, want True until the grace period ends", s, time.Since(killedAt).Round(time.Millisecond))
	}
	// Longer than a renewal interval and its jitter: a live kubelet renews.
	time.Sleep(hollowLeaseRenewInterval + 2*time.Second - time.Since(killedAt))
	if got := leaseRenewTime(t, cp, name); !got.Equal(renewKilled) {
		t.Errorf("Lease renewed at %s, %s after the kill", got.Format(time.RFC3339Nano), got.Sub(killedAt))
	}

	// A new boot: the pod bound to the node runs again, in a new runtime.
	begin = time.Now()
	startCtx, cancel = context.WithTimeout(ctx, 90*time.Second)
	err = k.Start(startCtx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node Ready again %s after the second start", time.Since(begin).Round(time.Millisecond))
	var again cluster.RuntimeContainer
	eventually(t, time.Minute, "the pod's container running again after the reboot", func(ctx context.Context) (bool, error) {
		c, err := findContainer(ctx, k, pod)
		if err != nil {
			return false, err
		}
		again = c
		return true, nil
	})
	if !again.Started.After(first.Started) || again.ID == "" {
		t.Errorf("container after the reboot started %s (id %s), want a new one after %s", again.Started, again.ID, first.Started)
	}

	// The fence: the harness kills the kubelet once the file exists.
	if _, ok := k.Fenced(); ok {
		t.Fatal("Fenced() is true before the fence file exists")
	}
	touched := time.Now()
	if err := os.WriteFile(fenceFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the kubelet fenced", func(context.Context) (bool, error) {
		_, ok := k.Fenced()
		return ok && !k.Running(), nil
	})
	at, _ := k.Fenced()
	if at.Before(touched) || at.Sub(touched) > time.Second {
		t.Errorf("Fenced() at %s, want within 1 s after the file was written at %s", at.Format(time.RFC3339Nano), touched.Format(time.RFC3339Nano))
	}
	t.Logf("fenced %s after the fence file was written", at.Sub(touched).Round(time.Millisecond))
	if _, err := k.Containers(ctx); err == nil {
		t.Error("Containers() after the fence: no error, want one saying the kubelet is not running")
	}
}

// kubeletHealthz does GET http://127.0.0.1:port/healthz and returns the
// status; anything but 200 "ok" is an error. kubemark's kubelet server has
// no TLS (it runs the kubelet without TLS options), so this is the plain
// HTTP check haagent's kubelet check can make of a hollow node.
func kubeletHealthz(port int) (string, error) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + "/healthz")
	if err != nil {
		return "", fmt.Errorf("kubelet port: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	status := fmt.Sprintf("%s %q", resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		return status, fmt.Errorf("kubelet port: GET /healthz: %s, want 200 ok", status)
	}
	return status, nil
}

// leaseRenewTime reads the node Lease's renew time.
func leaseRenewTime(t *testing.T, cp *cluster.ControlPlane, node string) time.Time {
	t.Helper()
	l, err := cp.Client().CoordinationV1().Leases("kube-node-lease").Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.RenewTime == nil {
		t.Fatalf("Lease %s has no renew time", node)
	}
	return l.Spec.RenewTime.Time
}

// findContainer returns the pod's running container "app" in the node's
// fake runtime, in a ready sandbox.
func findContainer(ctx context.Context, k *cluster.HollowKubelet, pod *corev1.Pod) (cluster.RuntimeContainer, error) {
	pods, err := k.RuntimePods(ctx)
	if err != nil {
		return cluster.RuntimeContainer{}, err
	}
	var seen []string
	for _, p := range pods {
		for _, c := range p.Containers {
			seen = append(seen, fmt.Sprintf("%s/%s(%s) %s %s ready=%t", c.Namespace, c.Pod, c.UID, c.Name, c.State, p.Ready))
			if c.UID == string(pod.UID) && c.Namespace == pod.Namespace && c.Pod == pod.Name && c.Name == "app" && c.Running() && p.Ready {
				return c, nil
			}
		}
	}
	return cluster.RuntimeContainer{}, fmt.Errorf("no running container app of pod %s/%s (%s) in a ready sandbox; runtime has %d sandboxes: %v", pod.Namespace, pod.Name, pod.UID, len(pods), seen)
}

func runningContainer(t *testing.T, k *cluster.HollowKubelet, pod *corev1.Pod) cluster.RuntimeContainer {
	t.Helper()
	var c cluster.RuntimeContainer
	eventually(t, 10*time.Second, "the pod's container running in the fake runtime", func(ctx context.Context) (bool, error) {
		var err error
		c, err = findContainer(ctx, k, pod)
		return err == nil, err
	})
	if c.Started.IsZero() || c.Started.Before(c.Created) {
		t.Errorf("container created %s, started %s: want a start after the creation", c.Created, c.Started)
	}
	return c
}

// logIdleUsage logs the resident memory and the CPU of a process over window,
// from /proc as ps reads it: what one idle hollow kubelet costs.
func logIdleUsage(t *testing.T, pid int, window time.Duration) {
	t.Helper()
	cpu0, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	time.Sleep(window)
	cpu1, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	rss, err := procRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("idle hollow kubelet (one pod): RSS %d MiB, CPU %.1f %% of a core over %s",
		rss>>20, 100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), elapsed.Round(time.Millisecond))
}

// procCPU is a process's user and system CPU time so far.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += v
	}
	// USER_HZ is 100 on every Linux this runs on.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// procRSS is a process's resident set size in bytes.
func procRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status VmRSS: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}
