// Package api serves the agent's HTTP endpoints: /metrics for Prometheus,
// /healthz and /readyz for the kubelet's probes of the agent itself, and
// /members, the membership table as JSON (what `haagent members` prints).
// /metrics and /members may be guarded by access checks (package
// httpauth); the probes' paths never are.
//
// New starts nothing; Run listens until its context ends, then shuts down
// gracefully. It only reads from the components it is given.
package api
