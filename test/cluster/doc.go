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
// to it Running and Ready, accepts TCP connections on the kubelet port and
// answers GET /healthz on the kubelet's healthz port. It runs no containers,
// but a Journal shared by a cluster's kubelets records when each pod's
// containers would run and where, so that a test can check that a pod never
// ran on two nodes at once. Stopping it is a crash: the Node and its pods are
// left as they were, which is what the node lifecycle controller and haagent
// must cope with. A FenceFile is the node's power switch for haagent's fence
// command: once the file exists, the kubelet stops as in a crash.
//
// A Node is a simulated node as a whole: a FakeKubelet, a real `haagent run`
// process (an Agent, built from this checkout by BuildAgent) and an API proxy,
// all on the node's address. The agent runs with a token of the
// ServiceAccount that deploy/ installs (ApplyDeploy), so it has exactly the
// RBAC of a real install, and checks its node's kubelet healthz and the API
// server. The Node's methods are the faults that befall a node: Crash (network
// gone, agent SIGKILLed, kubelet stopped, all at once), Return, CrashAgent,
// StopAgent (SIGTERM), PauseAgent and ResumeAgent (SIGSTOP, SIGCONT),
// StopKubelet, IsolateFromAPI.
//
// Network faults are iptables rules on the host's loopback (a Firewall):
// isolation, partitions between sets of node addresses, random packet loss,
// a blocked port. Dropped packets vanish, so peers see timeouts as with a
// real dead host. The fake kubelets live inside the test process, so a
// Node stays on the loopback, where they and the control plane are simple.
// The price is that a process dialling another node gets 127.0.0.1 as its
// source address, so each agent runs with a group of its own and a source
// NAT rule gives its connections its node's address; see Firewall. Every
// rule carries a comment naming the test process and run, so that
// hack/e2e.sh can remove rules a killed run left behind.
//
// A Network gives nodes network stacks of their own, for processes that
// bind every address as a real node's do: a hub namespace holding a bridge,
// and per node a namespace (an `ip netns` name, so `ip netns exec` runs a
// process there) linked to the bridge by a veth, with an address from the
// network's prefix and a default route through the hub. Nothing is added
// to the host's namespace. The test process reaches the nodes from sockets
// it creates in the hub (Network.DialContext, an Agent's Dial); each node's
// API proxy listens in the hub on a port of the node's and dials the
// apiserver on the host's loopback. An agent with AgentConfig.NetNS is
// forked from a thread inside the node's namespace and checks the kubelet
// on the node's own 127.0.0.1, as a hostNetwork pod does. Faults
// (Fault) are DROP rules in the node namespaces' own iptables, with the
// run's comment (isolation, partitions, packet loss, a blocked API), or
// the node's link set down; closing the Network deletes the namespaces and
// all of it with them, and hack/e2e.sh deletes those a killed run left.
//
// A HollowKubelet is the real kubelet of the pinned release in place of a
// FakeKubelet: kubemark --morph=kubelet, with a fake container runtime
// behind a CRI socket, run inside a node's namespace. A Node with
// NodeConfig.Hollow and NodeConfig.Net stands on that ground (Node.Ground):
// its Crash sets the link down and kills the agent and the kubelet, its
// agent checks the kubelet port's /healthz (kubemark serves no 10248), and
// a runtime watch reads the fake runtime every 200 ms and records in the
// Journal when each pod's containers really started and stopped, so that
// "never two copies" is read from the runtime rather than from the
// harness. test/README.md says which test stands on which ground and why.
//
// A Prometheus (hack/build-prometheus.sh) scrapes the agents' /metrics from
// a targets file, evaluates alert rules (ScaleRuleDurations shortens their
// `for:` for a test) and answers queries; an AlertWatcher keeps every change
// of its alerts, so that a test can check which fired, how many instances,
// and that they resolved.
//
// A Timeline watches the API during a fault and records, relative to the
// fault, when the node was cordoned, tainted and marked not ready, when its
// pods turned NotReady, left the Service endpoints and were deleted, when
// replacements ran elsewhere, when every affected workload was whole again,
// and each NodeFailover record of haagent's.
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
// Child processes (the control plane and the agents) are put in their own
// process groups and get SIGKILL when the test process dies, so an aborted
// test run leaves nothing running; Stop kills them and removes the run
// directory, where each agent's config and log are kept under nodes/<name>/.
package cluster
