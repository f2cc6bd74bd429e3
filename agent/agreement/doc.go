// Package agreement forms this agent's opinion of every other node and
// exchanges those opinions with the group as votes.
//
// An opinion follows gossip: alive, suspect, and, when gossip declares a
// member dead, a check of the node itself (a TCP connect to its kubelet
// port): no answer makes the opinion "dead", an answer makes it
// "agent-down" — the agent died, the node did not (rule 1 of
// docs/design.md).
//
// The check is made early, while gossip only suspects the member: when
// this agent's own probe fails, or when a peer's suspect vote tells of a
// member this agent holds alive (the first such vote an agent hears is
// passed on, so every voter hears of the suspicion). Its result changes no
// opinion then; it waits for the death, and a death within
// RecheckInterval of the check's start is voted at once from it. A node
// that is gone does not answer, so the check runs into its timeout; made
// early, that timeout is spent during gossip's suspicion instead of after
// it. An older result is not used: the death is checked anew. A check of
// a member that comes back or leaves is cancelled.
//
// Opinions are broadcast as failover.Vote messages; non-alive opinions are
// repeated every RepeatInterval, so a vote that stops coming (its voter
// died or changed its mind) ages out at the coordinator, and the kubelet of
// a dead or agent-down node is checked again every RecheckInterval. A round
// repeats at most RepeatMax opinions, dead and agent-down first, then those
// sent longest ago: an agent that suspects hundreds of peers at once (it is
// overloaded or cut off) sends a bounded stream, not hundreds of votes a
// round.
//
// Votes received from peers, and this agent's own, are kept in a
// failover.Ballots that the coordinator reads. With DeliveryCoordinator,
// a vote is sent straight to the holder of the coordinator Lease as well
// as gossiped, and peers pass a gossiped vote on only when it is about the
// holder: only the coordinator counts votes, except those about itself,
// which every candidate counts to take the Lease from a dead holder. A
// death then costs the group O(N) packets instead of O(N²).
//
// Once the coordinator has started a node's failover it reads no vote
// about that node again, and says so: UnderWay gossips a failover.Notice
// (at most once per NoticeInterval per node), and voters that heard one
// within NoticeTTL stop repeating their dead votes about the node. Without
// it, the repeats of every survivor about a node that stays dead would cost
// the group O(N²) messages every RepeatInterval for as long as the node is
// down.
//
// # Core and driver
//
// The rules above live in a deterministic core (machine, core*.go), shaped
// after etcd's raft: it is stepped with one event at a time — a membership
// change, a vote or notice received, the end of a kubelet check, a tick of
// the repeat or recheck timer, the coordinator's wish to say a failover is
// under way, Run's start and end — and the time, and answers with effects:
// votes and notices to send, kubelet checks to start or cancel, whether to
// pass a message on, counter deltas and log lines, all as data. It starts
// no goroutine, takes no lock, reads no clock and does no I/O; it reads
// the gossip table and the Lease holder through a small interface, as
// raft's core reads its Storage. A restarted agent starts a new core with
// its new start epoch: the epoch and sequence numbers of its votes and
// notices order them across its lives.
//
// Agreement is the driver (agreement.go, apply.go): it owns the lock that
// serialises the steps, the timers, the goroutines that run the kubelet
// checks (their results come back as events), the metrics and the log, and
// carries out the effects after each step. The scenario files in testdata
// replay the core, printing its effects; every step there also runs on a
// twin core and is checked against the rules (scenario_test.go,
// invariants_test.go).
//
// Lifecycle: New registers the vote handler with gossip (so it must be
// called before gossip runs); Run follows the membership until its context
// ends and returns after its goroutines have exited. It never writes to the
// Kubernetes API.
package agreement
