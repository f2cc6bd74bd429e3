// Package availability turns failover records into reliability figures
// (time to detect, time to repair, time between failures, availability) and
// answers what replication buys: the chance that at least one, or at least
// k, of n independent replicas are up.
//
// Everything here is a pure function of its arguments. The package does no
// I/O, reads no clock, keeps no state and starts no goroutines, so it has no
// lifecycle: callers (the failover recorder, the metrics exporter, reports)
// pass in records and a measurement window and get numbers back. Monotonic
// clock readings carried by time.Time values are ignored; all arithmetic is
// on wall-clock time, because records come from different processes.
//
// # Definitions
//
// A failover's outage runs from LastHeard (the last time peers heard from the
// node) to Recovered (every affected workload back to its desired ready
// replicas); an outage that has not recovered lasts until the end of the
// window. Time to detect is Confirmed − LastHeard and time to repair is
// Recovered − LastHeard.
//
// For one node and a window W = [Start, End):
//
//	failures     F = failovers whose LastHeard lies in W
//	downtime     D = length of the union of the node's outages, clipped to W
//	MTTD, MTTR     = mean time to detect / repair over the F failures that
//	                 reached that phase (unrecovered ones are not in MTTR)
//	MTBF           = (|W| − D) / F, the mean up time between failures;
//	                 undefined when F = 0
//	availability A = MTBF / (MTBF + MTTR), 1 when F = 0
//	measured       = 1 − D / |W|
//
// For the cluster, failures and repair times are pooled over all nodes, and
// up time and downtime are counted in node-time: MTBF is the node-time up
// per failure, and the measured availability is the mean of the per-node
// figures (the expected fraction of nodes up at a random instant). AllUp is
// the fraction of the window during which no node was down.
//
// Replication assumes replicas fail independently with the same
// availability; correlated failures (a shared rack, a bad rollout) make the
// real figure worse than these numbers.
package availability
