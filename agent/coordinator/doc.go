// Package coordinator is the one actor of a failover (rule 3 of
// docs/design.md). Every agent runs it; only the holder of the coordinator Lease
// acts, and an agent campaigns for the Lease only while it sees a majority
// of the gossip group.
//
// While it leads, a loop every Config.Tick reads the membership and the
// ballots, asks the failover.Decider what to start, creates a NodeFailover
// record for each new failover, and moves every active record one step
// along: cordon, node not ready and taints, pods not ready, evictions (PDB
// refusals retried), the fence wait and out-of-service for stateful pods,
// workload recovery (bounded by Config.RecoveryTimeout), and, once the node
// is back and stable, handing back what haagent took. A step that fails or
// is blocked is retried with a backoff of its own record, on the injected
// clock. Each step is idempotent and its result is written to
// the record, so a new coordinator resumes a half-done failover from the
// API: it neither repeats nor forgets a step. A coordinator that loses the
// Lease stops at once.
//
// While it leads it records Events (events.go): one per phase reached on
// the record, Warnings for failovers held back, paused or failed, and one
// on each pod a failover evicted or force-deleted.
package coordinator
