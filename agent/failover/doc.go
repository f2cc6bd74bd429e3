// Package failover decides when a node is dead enough to fail over, and
// never on one voice.
//
// Every agent forms an opinion of every other member: alive, suspect, dead
// (gossip says dead and the node's kubelet port does not answer) or
// agent-down (gossip says dead but the kubelet answers: the agent died, not
// the node). Opinions travel as small versioned Vote messages over gossip.
// The coordinator keeps the latest vote of each voter about each target in
// Ballots, and Decider turns members, ballots and the time into decisions:
//
//   - a node is confirmed dead only when a strict majority of all known
//     members (alive, suspect and dead; not those that left) votes dead, so
//     the minority side of a partition never acts and an even split acts on
//     nobody;
//   - agent-down never fails a node over; it is reported for alerting;
//   - guards pause automatic failover when too many nodes are dead at once,
//     cluster-wide or in one zone, rate-limit failovers, and respect nodes
//     opted out for maintenance.
//
// This package is the deterministic core: no I/O, no goroutines, time comes
// in as an argument, and it imports the standard library only (a test
// holds it to that). It has its own member State; the coordinator
// converts its gossip view at the boundary. The same inputs give the same
// decisions: the scenario files in testdata/ replay them with
// cockroachdb/datadriven, and every decide they make is checked again by
// invariants (member order, repetition, a naive recount of the quorum).
package failover
