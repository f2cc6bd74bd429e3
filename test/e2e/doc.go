// Package e2e holds the end-to-end tests: a real control plane started by
// package cluster, fake nodes, and (later) real haagent processes.
//
// The tests need the control-plane binaries. hack/e2e.sh builds them and
// sets HAAGENT_CONTROL_PLANE_BIN; without it every test here is skipped.
// HAAGENT_E2E_KEEP=1 keeps each run directory (logs, kubeconfigs) after
// the test.
package e2e
