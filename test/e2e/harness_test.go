package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/haagent/haagent/test/cluster"
)

// binDirEnv names the directory of the control-plane binaries.
const binDirEnv = "HAAGENT_CONTROL_PLANE_BIN"

// timings selects stock Kubernetes timings or the tuned baseline.
type timings int

const (
	stock timings = iota
	tuned
)

// startControlPlane starts a control plane for one test and stops it when
// the test ends, printing the components' logs if the test failed and
// checking that no component process is left.
func startControlPlane(t *testing.T, tm timings, adjust ...func(*cluster.ControlPlaneConfig)) *cluster.ControlPlane {
	t.Helper()
	binDir := os.Getenv(binDirEnv)
	if binDir == "" {
		t.Skipf("%s is not set: run hack/e2e.sh, which builds the control-plane binaries and sets it", binDirEnv)
	}
	cfg := cluster.DefaultControlPlaneConfig()
	cfg.BinDir = binDir
	cfg.KeepDir = os.Getenv("HAAGENT_E2E_KEEP") == "1"
	cfg.Logger = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	if tm == tuned {
		cfg.APIServerFlags = cluster.TunedAPIServerFlags()
		cfg.ControllerManagerFlags = cluster.TunedControllerManagerFlags()
	}
	for _, f := range adjust {
		f(&cfg)
	}
	cp, err := cluster.NewControlPlane(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", cp.LogTails(40))
		}
		stopAndCheck(t, cp)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return cp
}

// stopAndCheck stops the control plane and fails the test if any of its
// processes still exists afterwards.
func stopAndCheck(t *testing.T, cp *cluster.ControlPlane) {
	t.Helper()
	pids := cp.PIDs()
	if err := cp.Stop(); err != nil {
		t.Errorf("stop control plane: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (kill -0: %v)", pid, err)
		}
	}
}

// startNodes starts n fake kubelets named node-1 ... node-n, stopped (crashed)
// when the test ends.
func startNodes(t *testing.T, cp *cluster.ControlPlane, n int, tm timings) []*cluster.FakeKubelet {
	t.Helper()
	addrs := cluster.NewNodeAddresses()
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	nodes := make([]*cluster.FakeKubelet, 0, n)
	for i := range n {
		addr, err := addrs.Next()
		if err != nil {
			t.Fatal(err)
		}
		cfg := cluster.DefaultFakeKubeletConfig(fmt.Sprintf("node-%d", i+1), addr)
		cfg.Logger = log
		if tm == tuned {
			// Well inside the tuned 8 s grace period.
			cfg.LeaseRenewInterval = 2 * time.Second
			cfg.StatusUpdateInterval = 2 * time.Second
		}
		k, err := cluster.NewFakeKubelet(cfg, cp.RESTConfig())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = k.Start(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(k.Stop)
		nodes = append(nodes, k)
	}
	return nodes
}

// eventually polls cond every 100 ms until it holds or timeout passes, and
// returns how long it took. The last error from cond is reported on timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s (last error: %v)", what, timeout, last)
	}
	return time.Since(start)
}

func nodeReadyStatus(node *corev1.Node) corev1.ConditionStatus {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// podReady reports whether the pod is Running and Ready. Ready alone is
// not enough: the real kubelet (kubemark v1.37.2, on the hollow ground)
// posts Ready=True on a new pod while it is still Pending, before its
// sandbox exists, some 0.2 to 1.5 s before the runtime starts its
// containers.
func podReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitContainersRun waits until the journal shows pod's containers
// running on node: on the hollow ground, until the container runtime
// has started them, which the kubelet may report before it has.
func waitContainersRun(t *testing.T, tc *testCluster, pod, node string) {
	t.Helper()
	eventually(t, time.Minute, pod+"'s containers running on "+node+" (container journal)", func(context.Context) (bool, error) {
		for _, r := range tc.journal.RunsOf(pod) {
			if r.Node == node && r.Running() {
				return true, nil
			}
		}
		return false, nil
	})
}
