// Package gossip keeps this node's view of the haagent cluster: who is alive,
// suspect, dead or gone, and what each member says about itself.
//
// It runs hashicorp/memberlist (SWIM with the Lifeguard extensions) and adds
// what the failover path needs on top of it:
//
//   - tuning profiles with explicit overrides, validated before start;
//   - versioned node metadata (node name, zone, agent version, readiness
//     verdict, start epoch) that fits memberlist's 512-byte limit;
//   - a typed, timestamped stream of membership changes (alive, suspect, dead,
//     left, metadata changed) that other components subscribe to;
//   - small application messages (kind-tagged broadcasts) for the votes of
//     the failover agreement;
//   - graceful leave, periodic rejoin with jitter, gossip encryption from a
//     keyring file and a cluster label so two clusters never merge.
//
// Lifecycle: New validates and builds everything but starts nothing; Run
// creates the memberlist, joins the seeds, keeps rejoining, and on context end
// leaves the group within Config.LeaveTimeout and shuts down. Run returns only
// after its goroutines have exited.
//
// memberlist reports alive, dead and left through its event delegate, but it
// has no hook for suspicion. This package learns that the local node
// suspects a peer from memberlist's own log line for a failed probe and
// clears the suspicion when the peer answers a probe again or when the
// longest suspicion timeout has passed without a death. A member that leaves
// gracefully first publishes a "leaving" flag in its metadata, so that peers
// can tell left from dead even though memberlist's notification is the same.
// The update is given a few gossip rounds before the leave; a peer that
// still gets the leave first records the member dead, and its kubelet
// check then finds the node alive (agent-down, no failover).
//
// The package touches only the network (through a memberlist transport) and
// the Prometheus registerer it is given; it never talks to the Kubernetes API.
package gossip
