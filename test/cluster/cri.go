package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criCallTimeout bounds a whole listing of a fake runtime, dial included. The
// runtime answers from memory in milliseconds; a runtime that does not answer
// within this is as good as gone.
const criCallTimeout = 5 * time.Second

// RuntimePod is one pod sandbox of a container runtime, as the CRI reports it.
type RuntimePod struct {
	// Namespace, Name and UID identify the pod, from the sandbox's metadata.
	Namespace string
	Name      string
	UID       string
	// Attempt counts the sandboxes of this pod, from 0.
	Attempt uint32
	// SandboxID is the runtime's ID of the sandbox.
	SandboxID string
	// Ready is whether the sandbox is SANDBOX_READY (else SANDBOX_NOTREADY:
	// stopped).
	Ready bool
	// Created is when the sandbox was created.
	Created time.Time
	// Containers are the sandbox's containers, in creation order.
	Containers []RuntimeContainer
}

// RuntimeContainer is one container of a pod sandbox.
type RuntimeContainer struct {
	// Namespace, Name and UID are the pod's.
	Namespace string
	Pod       string
	UID       string
	// Name is the container's name in the pod spec; Attempt counts its
	// restarts, from 0.
	Name    string
	Attempt uint32
	// ID and SandboxID are the runtime's IDs.
	ID        string
	SandboxID string
	// State is CREATED, RUNNING, EXITED or UNKNOWN.
	State string
	// Created, Started and Finished are zero where they have not happened.
	Created  time.Time
	Started  time.Time
	Finished time.Time
}

// Running reports whether the container is RUNNING.
func (c RuntimeContainer) Running() bool { return c.State == "RUNNING" }

// listRuntimePods lists the sandboxes and containers behind a CRI socket
// that process pid listens on (0: any). timeout bounds the whole listing.
func listRuntimePods(ctx context.Context, socket string, pid int, timeout time.Duration) ([]RuntimePod, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := grpc.NewClient("passthrough:///cri",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			conn, err := dialUnixLong(ctx, socket)
			if err != nil || pid == 0 {
				return conn, err
			}
			// A socket file outlives its process: make sure the runtime
			// answering is the one asked about.
			owner, err := peerPID(conn)
			if err != nil || owner != pid {
				conn.Close()
				return nil, fmt.Errorf("%s is served by process %d (%v), not %d", socket, owner, err, pid)
			}
			return conn, nil
		}))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)

	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("ListPodSandbox on %s: %w", socket, err)
	}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("ListContainers on %s: %w", socket, err)
	}

	pods := make([]RuntimePod, 0, len(sandboxes.Items))
	index := map[string]int{} // sandbox ID -> index in pods
	for _, s := range sandboxes.Items {
		md := s.GetMetadata()
		index[s.Id] = len(pods)
		pods = append(pods, RuntimePod{
			Namespace: md.GetNamespace(),
			Name:      md.GetName(),
			UID:       md.GetUid(),
			Attempt:   md.GetAttempt(),
			SandboxID: s.Id,
			Ready:     s.State == runtimeapi.PodSandboxState_SANDBOX_READY,
			Created:   unixNano(s.CreatedAt),
		})
	}
	for _, c := range containers.Containers {
		i, ok := index[c.PodSandboxId]
		if !ok {
			// A container whose sandbox is gone: the listing raced a removal.
			continue
		}
		// The listing carries no start or finish time; the status does.
		st, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil {
			return nil, fmt.Errorf("ContainerStatus %s on %s: %w", c.Id, socket, err)
		}
		status := st.GetStatus()
		pod := &pods[i]
		pod.Containers = append(pod.Containers, RuntimeContainer{
			Namespace: pod.Namespace,
			Pod:       pod.Name,
			UID:       pod.UID,
			Name:      c.GetMetadata().GetName(),
			Attempt:   c.GetMetadata().GetAttempt(),
			ID:        c.Id,
			SandboxID: c.PodSandboxId,
			State:     strings.TrimPrefix(status.GetState().String(), "CONTAINER_"),
			Created:   unixNano(status.GetCreatedAt()),
			Started:   unixNano(status.GetStartedAt()),
			Finished:  unixNano(status.GetFinishedAt()),
		})
	}
	for i := range pods {
		slices.SortFunc(pods[i].Containers, func(a, b RuntimeContainer) int { return a.Created.Compare(b.Created) })
	}
	slices.SortFunc(pods, func(a, b RuntimePod) int {
		if c := strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name); c != 0 {
			return c
		}
		return a.Created.Compare(b.Created)
	})
	return pods, nil
}

// dialUnixLong connects to a unix socket whose path may be longer than a
// socket address holds (108 bytes, and run directories are deep): it opens
// the socket's directory and dials through /proc/self/fd, a short path to
// the same file.
func dialUnixLong(ctx context.Context, path string) (net.Conn, error) {
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	short := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", short)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", path, err)
	}
	return conn, nil
}

// socketOwner returns the process listening on a unix socket.
func socketOwner(path string, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := dialUnixLong(ctx, path)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return peerPID(conn)
}

// peerPID is the process at the other end of a unix socket connection: for a
// connecting client, the process that called listen (SO_PEERCRED).
func peerPID(conn net.Conn) (int, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("not a unix socket connection: %T", conn)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	return int(cred.Pid), nil
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
