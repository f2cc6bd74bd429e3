// Package scenario builds the clusters that the demo and the benchmark
// crash nodes in, and measures what happens.
//
// A Cluster is a control plane from the end-to-end harness (test/cluster)
// with simulated nodes, each a fake kubelet and, when the scenario runs
// haagent, a real haagent process. Start brings it up and waits until the
// nodes are Ready and the agents agree on the membership; StartWorkload adds
// the sample workload (Deployment, Service and PodDisruptionBudget web, one
// pod per node); Stop ends everything, the firewall rules included.
//
// Config.Ground chooses what a node is: Fake (a fake kubelet in this
// process, on an address of the host's loopback; a crash is an iptables
// rule on the host) or Hollow (the real kubelet code, kubemark, and the
// agent in a network namespace of the node's own; a crash sets its link
// down). Both crash through cluster.Node.Crash and cause network faults
// through cluster.Faults; Validate rejects on Hollow what cannot run there.
//
// StartStatefulWorkload adds StatefulSet db, one pod per node, so that a
// crash also shows when a stateful pod runs elsewhere; Rebalance spreads
// both one pod per node again between crashes.
//
// A Crash records one node's crash: a Timeline of the API (from the
// harness), the agents' views of the crashed node, and the pods it had.
// Phases turns that into the times the demo and the benchmark report,
// relative to the crash. Nothing here estimates a time: a phase that was
// not observed is absent.
//
// Chaos runs trouble that must not look like a crash (packet loss, agent
// stalls and restarts) and counts the wrong actions seen; MeasureCost
// samples every agent's memory, CPU time and gossip traffic; Summarize gives
// nearest-rank percentiles.
//
// The package prints nothing itself except through a Printer, which
// stamps each progress line with the time since the program started.
package scenario
