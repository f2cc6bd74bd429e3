// Package e2e holds the end-to-end tests: a real control plane started by
// package cluster, deploy/ installed in it, and simulated nodes, each a fake
// kubelet and a real haagent process built from this checkout.
//
// The tests need the control-plane binaries. hack/e2e.sh builds them and
// sets HAAGENT_CONTROL_PLANE_BIN; without it every test here is skipped.
// Tests with network faults need root and iptables (hack/e2e.sh installs
// it); without root they are skipped. HAAGENT_E2E_KEEP=1 keeps each run
// directory (component and agent logs, kubeconfigs) after the test.
//
// The alert tests (alerts_test.go) also run a real Prometheus, built by
// hack/build-prometheus.sh (hack/e2e.sh sets HAAGENT_PROMETHEUS_BIN), that
// scrapes every agent and evaluates the chart's alert rules with their
// `for:` durations divided by 5; they fail without it.
package e2e
