package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	fakeremote "k8s.io/cri-client/pkg/fake"
)

func TestListRuntimePods(t *testing.T) {
	// Deeper than a socket address holds, as run directories can be.
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "kubelet_remote_1.sock")
	if len(socket) < 108 {
		t.Fatalf("socket path %d bytes long, want more than a socket address holds", len(socket))
	}
	// The server binds through the same kind of short path.
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rt := fakeremote.NewFakeRemoteRuntime()
	if err := rt.Start(fmt.Sprintf("unix:///proc/self/fd/%d/kubelet_remote_1.sock", d.Fd())); err != nil {
		t.Fatal(err)
	}
	defer rt.Stop()

	ctx := context.Background()
	run := func(ns, name, uid string, containers ...string) string {
		t.Helper()
		sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Namespace: ns, Name: name, Uid: uid},
		}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range containers {
			cr, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
				PodSandboxId: sb.PodSandboxId,
				Config: &runtimeapi.ContainerConfig{
					Metadata: &runtimeapi.ContainerMetadata{Name: c},
					Image:    &runtimeapi.ImageSpec{Image: "pause"},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
				t.Fatal(err)
			}
			if c == "sidecar" {
				if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: cr.ContainerId}); err != nil {
					t.Fatal(err)
				}
			}
		}
		return sb.PodSandboxId
	}
	run("default", "web-1", "uid-1", "app", "sidecar")
	stopped := run("kube-system", "old", "uid-2")
	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: stopped}); err != nil {
		t.Fatal(err)
	}

	pods, err := listRuntimePods(ctx, socket, os.Getpid(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pods {
		got = append(got, fmt.Sprintf("%s/%s %s ready=%t", p.Namespace, p.Name, p.UID, p.Ready))
		for _, c := range p.Containers {
			got = append(got, fmt.Sprintf("  %s/%s %s %s %s started=%t finished=%t",
				c.Namespace, c.Pod, c.UID, c.Name, c.State, !c.Started.IsZero(), !c.Finished.IsZero()))
		}
	}
	want := []string{
		"default/web-1 uid-1 ready=true",
		"  default/web-1 uid-1 app RUNNING started=true finished=false",
		"  default/web-1 uid-1 sidecar EXITED started=true finished=true",
		"kube-system/old uid-2 ready=false",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("runtime pods:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !pods[0].Containers[0].Running() || pods[0].Containers[1].Running() {
		t.Error("Running() does not follow the state")
	}

	// A runtime that is gone answers nothing, within the bound.
	rt.Stop()
	start := time.Now()
	if _, err := listRuntimePods(ctx, socket, os.Getpid(), time.Second); err == nil {
		t.Error("listing a stopped runtime: no error")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("listing a stopped runtime took %s, want at most the 1 s bound", took)
	}
}

func TestListRuntimePods_otherProcess(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "kubelet_remote_1.sock")
	rt := fakeremote.NewFakeRemoteRuntime()
	if err := rt.Start("unix://" + socket); err != nil {
		t.Fatal(err)
	}
	defer rt.Stop()
	// The runtime is this process's: asking for another one's must fail.
	_, err := listRuntimePods(context.Background(), socket, 1, time.Second)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("is served by process %d", os.Getpid())) {
		t.Errorf("listRuntimePods(pid 1) = %v, want an error naming this process", err)
	}
}

// stubKubemarkEnv makes the test binary a stand-in for kubemark (TestMain).
const stubKubemarkEnv = "HAAGENT_TEST_STUB_KUBEMARK"

// TestMain turns the test binary into a stand-in for kubemark when
// stubKubemarkEnv is set: it writes its arguments to $TMPDIR/args and
// serves kubemark's fake runtime at a socket of the same kind, with one
// running container, until it is killed.
func TestMain(m *testing.M) {
	if os.Getenv(stubKubemarkEnv) == "" {
		os.Exit(m.Run())
	}
	if err := runStubKubemark(); err != nil {
		fmt.Fprintln(os.Stderr, "stand-in kubemark:", err)
		os.Exit(1)
	}
	select {}
}

func runStubKubemark() error {
	if err := os.WriteFile(filepath.Join(os.Getenv("TMPDIR"), "args"), []byte(strings.Join(os.Args[1:], " ")), 0o644); err != nil {
		return err
	}
	endpoint, err := fakeremote.GenerateEndpoint()
	if err != nil {
		return err
	}
	rt := fakeremote.NewFakeRemoteRuntime()
	ctx := context.Background()
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Namespace: "default", Name: "stub", Uid: "uid-stub"},
	}})
	if err != nil {
		return err
	}
	cr, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sb.PodSandboxId,
		Config:       &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Image: &runtimeapi.ImageSpec{Image: "pause"}},
	})
	if err != nil {
		return err
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		return err
	}
	return rt.Start(endpoint)
}
