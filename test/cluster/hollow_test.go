package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"go.uber.org/zap"
)

func validHollowConfig() HollowKubeletConfig {
	return DefaultHollowKubeletConfig("hollow-1", "/bin/kubemark", "/run/e2e/nodes/hollow-1",
		&rest.Config{Host: "https://10.1.0.1:6443"})
}

func TestHollowKubeletConfig_Validate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*HollowKubeletConfig)
		want   string
	}{
		{"default", func(*HollowKubeletConfig) {}, ""},
		{"netns, labels, fence file", func(c *HollowKubeletConfig) {
			c.Netns = "haagent-node-1"
			c.NodeLabels = map[string]string{"haagent.io/ground": "hollow", ZoneLabel: "zone-a"}
			c.FenceFile = "/run/e2e/fence"
			c.ExtraArgs = []string{"--max-pods=20"}
		}, ""},
		{"bad node name", func(c *HollowKubeletConfig) { c.NodeName = "Hollow_1" },
			`cluster: hollow kubelet: NodeName ("Hollow_1") is not a valid node name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"no binary", func(c *HollowKubeletConfig) { c.Binary = "" },
			"cluster: hollow kubelet hollow-1: Binary is empty; it must name the kubemark executable (hack/build-control-plane.sh builds it)"},
		{"relative dir", func(c *HollowKubeletConfig) { c.Dir = "nodes/hollow-1" },
			`cluster: hollow kubelet hollow-1: Dir ("nodes/hollow-1") must be an absolute path`},
		{"no rest config", func(c *HollowKubeletConfig) { c.RESTConfig = nil },
			"cluster: hollow kubelet hollow-1: RESTConfig must be set, with a Host"},
		{"no host", func(c *HollowKubeletConfig) { c.RESTConfig = &rest.Config{} },
			"cluster: hollow kubelet hollow-1: RESTConfig must be set, with a Host"},
		{"exec provider", func(c *HollowKubeletConfig) {
			c.RESTConfig = &rest.Config{Host: "https://x", ExecProvider: &clientcmdapi.ExecConfig{Command: "get-token"}}
		}, "cluster: hollow kubelet hollow-1: RESTConfig must carry its credentials itself (certificate, token or basic auth), not an exec or auth provider"},
		{"port 0", func(c *HollowKubeletConfig) { c.KubeletPort = 0 },
			"cluster: hollow kubelet hollow-1: KubeletPort (0) must be between 1 and 65535"},
		{"port too high", func(c *HollowKubeletConfig) { c.KubeletPort = 65536 },
			"cluster: hollow kubelet hollow-1: KubeletPort (65536) must be between 1 and 65535"},
		{"netns with slash", func(c *HollowKubeletConfig) { c.Netns = "a/b" },
			`cluster: hollow kubelet hollow-1: Netns ("a/b") must be a file name of ` + "`ip netns`" + ` (no '/', not . or .., at most 255 bytes)`},
		{"netns dot dot", func(c *HollowKubeletConfig) { c.Netns = ".." },
			`cluster: hollow kubelet hollow-1: Netns ("..") must be a file name of ` + "`ip netns`" + ` (no '/', not . or .., at most 255 bytes)`},
		{"bad label key", func(c *HollowKubeletConfig) { c.NodeLabels = map[string]string{"-x": "y"} },
			`cluster: hollow kubelet hollow-1: NodeLabels key "-x": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`},
		{"bad label value", func(c *HollowKubeletConfig) { c.NodeLabels = map[string]string{"a": "b c"} },
			`cluster: hollow kubelet hollow-1: NodeLabels["a"] ("b c"): a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`},
		{"relative fence file", func(c *HollowKubeletConfig) { c.FenceFile = "fence" },
			`cluster: hollow kubelet hollow-1: FenceFile ("fence") must be an absolute path`},
		{"extra arg not a flag", func(c *HollowKubeletConfig) { c.ExtraArgs = []string{"max-pods=20"} },
			`cluster: hollow kubelet hollow-1: ExtraArgs entry "max-pods=20" must start with --`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validHollowConfig()
			tc.modify(&c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() = %q\nwant        %q", got, tc.want)
			}
		})
	}
}

func TestHollowKubeletConfig_args(t *testing.T) {
	c := validHollowConfig()
	c.NodeLabels = map[string]string{"b": "2", "a": "1"}
	c.ExtraArgs = []string{"--max-pods=20"}
	kubemark := []string{"--morph=kubelet", "--name=hollow-1", "--kubeconfig=/d/kubeconfig",
		"--kubelet-port=10250", "--kubelet-read-only-port=0", "--use-host-image-service=false",
		"--node-labels=a=1,b=2", "--max-pods=20"}

	bin, args := c.args("/d/kubeconfig")
	if bin != "/bin/kubemark" || !slices.Equal(args, kubemark) {
		t.Errorf("own namespace: %s %q\nwant /bin/kubemark %q", bin, args, kubemark)
	}

	c.Netns = "node-1"
	bin, args = c.args("/d/kubeconfig")
	want := append([]string{"netns", "exec", "node-1", "/bin/kubemark"}, kubemark...)
	if bin != "ip" || !slices.Equal(args, want) {
		t.Errorf("in a netns: %s %q\nwant ip %q", bin, args, want)
	}
}

func TestNewHollowKubelet_kubeconfig(t *testing.T) {
	dir := t.TempDir()
	c := validHollowConfig()
	c.Dir = filepath.Join(dir, "node")
	c.RESTConfig = &rest.Config{
		Host:        "https://10.1.0.1:6443",
		BearerToken: "s3cret",
		TLSClientConfig: rest.TLSClientConfig{
			ServerName: "kubernetes.default.svc",
			CAData:     []byte("ca-pem"),
		},
	}
	c.APIClient = fake.NewClientset()
	k, err := NewHollowKubelet(c)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop(time.Second)
	got, err := clientcmd.BuildConfigFromFlags("", filepath.Join(c.Dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != c.RESTConfig.Host || got.BearerToken != "s3cret" || got.ServerName != "kubernetes.default.svc" || string(got.CAData) != "ca-pem" {
		t.Errorf("kubeconfig gives host %q, token %q, server name %q, CA %q; want what RESTConfig says",
			got.Host, got.BearerToken, got.ServerName, got.CAData)
	}
}

// TestHollowKubelet_bootFenceKill runs the harness's side of a hollow
// kubelet around a stand-in for kubemark (this test binary, see TestMain)
// that serves the same fake runtime: the socket search, the runtime
// listing, the fence, a reboot and Kill.
func TestHollowKubelet_bootFenceKill(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The Node is Ready with a heartbeat after any boot of this test.
	later := time.Now().Add(time.Hour)
	client := fake.NewClientset(&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "hollow-1"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue,
			LastHeartbeatTime: metav1.NewTime(later),
		}}},
	}, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "hollow-1", Namespace: "kube-node-lease"},
		Spec:       coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: later}},
	})
	fence := filepath.Join(dir, "fence")
	c := DefaultHollowKubeletConfig("hollow-1", self, filepath.Join(dir, "node"), &rest.Config{Host: "https://10.1.0.1:6443"})
	c.APIClient = client
	c.FenceFile = fence
	k, err := NewHollowKubelet(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(stubKubemarkEnv, "1")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stand-in log:\n%s", k.LogTail(20))
		}
		if err := k.Stop(time.Second); err != nil {
			t.Error(err)
		}
	})
	// A stale fence file from an earlier boot does not fence the new one.
	if err := os.WriteFile(fence, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	socket := k.CRISocket()
	if !strings.HasPrefix(socket, "/tmp/kubelet_remote_") {
		t.Errorf("CRISocket() = %q, want /tmp/kubelet_remote_*", socket)
	}
	tmp := filepath.Join(c.Dir, "tmp")
	args, err := os.ReadFile(filepath.Join(tmp, "args"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(args), "--morph=kubelet --name=hollow-1 --kubeconfig="+filepath.Join(c.Dir, "kubeconfig")+" ") {
		t.Errorf("kubemark arguments: %q", args)
	}
	containers, err := k.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(containers) != 1 || containers[0].Pod != "stub" || containers[0].Name != "app" || !containers[0].Running() {
		t.Errorf("Containers() = %+v, want the stand-in's running container stub/app", containers)
	}
	if _, ok := k.Fenced(); ok || !k.Running() {
		t.Fatalf("fenced at the start by a stale fence file (running: %t)", k.Running())
	}

	touched := time.Now()
	if err := os.WriteFile(fence, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for k.Running() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	at, ok := k.Fenced()
	if !ok || k.Running() {
		t.Fatalf("after the fence file: fenced %t, running %t", ok, k.Running())
	}
	if at.Before(touched) || at.Sub(touched) > time.Second {
		t.Errorf("fenced at %s, want within 1 s after %s", at, touched)
	}
	if _, err := k.RuntimePods(ctx); err == nil || !strings.Contains(err.Error(), "hollow kubelet hollow-1 is not running") {
		t.Errorf("RuntimePods() of a fenced node: %v, want an error saying it is not running", err)
	}
	if _, err := os.Stat(socket); err == nil {
		t.Errorf("the fenced boot's socket %s is still there", socket)
	}

	// A reboot: fresh temporary files, a new socket, not fenced, and Kill
	// powers it off.
	if err := os.WriteFile(filepath.Join(tmp, "leftover"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "leftover")); err == nil {
		t.Error("the last boot's temporary files survived the reboot")
	}
	if _, ok := k.Fenced(); ok {
		t.Error("Fenced() is true after a reboot")
	}
	if k.CRISocket() == socket || k.CRISocket() == "" {
		t.Errorf("socket of the second boot %q, want a new one (first: %q)", k.CRISocket(), socket)
	}
	if _, err := k.Containers(ctx); err != nil {
		t.Errorf("Containers() after the reboot: %v", err)
	}
	if err := k.Start(ctx); err == nil || !strings.Contains(err.Error(), "is already running") {
		t.Errorf("Start() while running: %v, want an error", err)
	}
	if err := k.Kill(); err != nil {
		t.Fatal(err)
	}
	if k.Running() {
		t.Error("Running() after Kill")
	}
	if _, err := k.Containers(ctx); err == nil || !strings.Contains(err.Error(), "a powered-off node runs no containers") {
		t.Errorf("Containers() after Kill: %v, want an error saying it is powered off", err)
	}
}

func TestFindCRISocket(t *testing.T) {
	dir := t.TempDir()
	if _, err := findCRISocket(dir, os.Getpid()); err == nil {
		t.Error("no socket: no error")
	}
	// A socket file whose process is gone, and a file that is no socket.
	stale, err := net.Listen("unix", filepath.Join(dir, "kubelet_remote_1.sock"))
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	if err := os.WriteFile(filepath.Join(dir, "kubelet_remote_2.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(dir, "kubelet_remote_3.sock")
	l, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if got, err := findCRISocket(dir, os.Getpid()); err != nil || got != live {
		t.Errorf("findCRISocket(this process) = %q, %v; want %q", got, err, live)
	}
	if _, err := findCRISocket(dir, 1); err == nil || !strings.Contains(err.Error(), "none of the 3 fake runtime sockets") {
		t.Errorf("findCRISocket(another process) = %v, want an error", err)
	}
}

// TestHollowKubelet_removeRootDirs checks that the root directories a
// kubemark log names go, and nothing else.
func TestHollowKubelet_removeRootDirs(t *testing.T) {
	var dirs []string
	for range 2 {
		d, err := os.MkdirTemp("/tmp", "hollow-kubelet.")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.MkdirAll(filepath.Join(d, "checkpoints"), 0o700); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	other, err := os.MkdirTemp("/tmp", "hollow-kubelet.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(other) })
	logPath := filepath.Join(t.TempDir(), "kubemark.log")
	log := fmt.Sprintf("I1204 hollow_kubelet.go:153] Using %s as root dir for hollow-kubelet\nI1204 other line\nI1204 hollow_kubelet.go:153] Using %s as root dir for hollow-kubelet\n", dirs[0], dirs[1])
	if err := os.WriteFile(logPath, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &HollowKubelet{logPath: logPath, log: zap.NewNop()}
	k.removeRootDirs()
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("root dir %s: %v, want it removed", d, err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a directory the log does not name: %v, want it kept", err)
	}
}
