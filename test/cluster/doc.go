// Package cluster runs a real, disposable Kubernetes control plane and fake
// nodes for the end-to-end tests of haagent.
//
// A ControlPlane starts etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler as child processes on 127.0.0.1, each on a free port, in a
// temporary directory of its own with a PKI generated for that run. Nothing is
// shared between runs, so several can go on at once on one machine. The
// binaries come from a directory built by hack/build-control-plane.sh.
//
// A FakeKubelet plays the part of a node's kubelet as far as the control plane
// can tell: it registers the Node, renews the node Lease, reports the pods bound
// to it Running and Ready, and accepts TCP connections on the kubelet port. It
// runs no containers. Stopping it is a crash: the Node and its pods are left as
// they were, which is what the node lifecycle controller and haagent must cope
// with.
//
// Node addresses are loopback addresses (all of 127.0.0.0/8 reaches this host
// on Linux), handed out by a NodeAddresses allocator. Pod IPs are drawn from
// 198.18.0.0/15, a range reserved for benchmarking: EndpointSlices reject
// loopback addresses, and these pod IPs are only ever data, never dialled.
//
// Timing matters when reading results. The node lifecycle controller counts
// a node's Lease renewals as its heartbeat, so a FakeKubelet must renew well
// within --node-monitor-grace-period: every 10 s against the stock 50 s, every
// 2 s against the tuned 8 s (TunedControllerManagerFlags). And when every node
// in every zone is NotReady the controller assumes the control plane is cut off
// ("master disruption mode") and taints nothing: a test that crashes nodes
// must keep some of them healthy.
//
// Child processes are put in their own process groups and get SIGKILL when the
// test process dies, so an aborted test run leaves nothing running; Stop kills
// them and removes the run directory.
package cluster
