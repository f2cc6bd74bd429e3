// Package probe decides whether this node is ready and whether a peer node is reachable.
//
// Two roles:
//
//   - Node readiness. A Runner runs the node's own checks (by default: the kubelet's healthz,
//     the container runtime socket, the API server's /readyz) and keeps a Verdict: ready only
//     when every check passes, otherwise the name of the first failing check and a short
//     reason. The verdict goes into this node's gossip metadata, so it must never wait for a
//     check: Verdict and Subscribe return at once, and a hung check is a failure after its
//     timeout.
//   - Peer reachability. A PeerChecker opens a TCP connection to a suspect peer's kubelet
//     port. The failover code asks it (from several peers) before it votes a node dead: a
//     reachable kubelet means the agent is down, not the node.
//
// Checks follow Kubernetes probe semantics (corev1.Probe field names and defaults, 2xx/3xx
// for httpGet, SERVING for grpc, exit 0 for exec, consecutive success and failure
// thresholds) with three extensions: unixSocket and apiServer check types, and
// periodMilliseconds/timeoutMilliseconds for sub-second timing. A timeout may equal the
// period, never exceed it. Named ports are not supported (there is no container).
//
// Lifecycle: NewRunner and NewPeerChecker validate their config (a bad config is an error at
// start, with the check, field and bound named) and start nothing. Runner.Run blocks until
// its context ends and returns after every check it started has returned. Each check runs
// after its initial delay plus a random stagger within its period, then once per period, with
// at most Config.MaxConcurrent checks in flight across the node. A check that cannot run
// (missing binary, unknown host, absent socket) is a failing check with a reason, never an
// error of the Runner.
//
// What it may touch: network connections to this node (loopback by default) and to peers'
// kubelet ports, processes started by exec checks (each in its own process group, killed as
// a group on timeout), and the API server through the client the caller gives, read-only.
// It writes nothing to the Kubernetes API; the caller turns the verdict into gossip metadata
// and a Node condition. Time comes from an injected k8s.io/utils/clock, so tests step a fake
// clock; metrics go to the prometheus.Registerer passed in.
package probe
