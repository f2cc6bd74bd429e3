package agreement

import (
	"slices"
	"strings"
	"time"

	"github.com/haagent/haagent/agent/failover"
)

// receiveVote keeps a peer's vote and says whether to pass it on.
func (m *machine) receiveVote(out *effects, v failover.Vote, now time.Time) {
	if v.Voter == m.self {
		return // our own vote, relayed back
	}
	if !m.ballots.Add(v, now) {
		out.count(counterReceived, "duplicate", 1)
		return
	}
	out.count(counterReceived, "fresh", 1)
	if v.Opinion == failover.OpinionSuspect && m.precheckPeer(out, v.Target, now) {
		// A peer suspects a member this agent holds alive, and this is
		// the first it hears of it: check its kubelet now, so that the
		// answer is there when gossip declares it dead, and pass the vote
		// on so that every voter does. Old news (a check already made or
		// running, or the member already suspect or dead here) goes no
		// further: the suspect votes of the other probers, and those
		// voters send when gossip declares a member dead, are not flooded.
		out.add(relay{})
		return
	}
	// Votes go to the coordinator directly; only those about the
	// coordinator itself must reach every candidate.
	if h := m.coordinator(); h != "" && v.Target != h {
		return
	}
	out.add(relay{})
}

// set changes an opinion and votes it when it changed.
func (m *machine) set(out *effects, target string, op failover.Opinion, now time.Time) {
	o := m.opinions[target]
	if o == nil {
		o = &opinion{}
		m.opinions[target] = o
	}
	changed := o.op != op
	// "alive" is what everybody assumes of a member: it is voted only to
	// retract an earlier suspect, dead or agent-down vote. Voting it for
	// every member that joins would send N² votes as a group forms.
	retract := o.op != 0 && o.op != failover.OpinionAlive
	if changed {
		if o.op != 0 { // a new entry has no opinion yet
			m.counts[o.op]--
		}
		m.counts[op]++
	}
	o.op = op
	if op == failover.OpinionAlive {
		// Back: a failover of this life of the node is over, and a later
		// death is a new question.
		delete(m.notices, target)
	}
	if !changed {
		return
	}
	out.add(logLine{Msg: "opinion changed", Fields: []string{"node", target, "opinion", op.String()}})
	switch {
	case op == failover.OpinionDead && m.underWay(target, now):
		out.count(counterSuppressed, "", 1)
	case op != failover.OpinionAlive || retract:
		m.vote(out, target, op, now)
	}
}

// repeat votes every non-alive opinion again, with a new sequence number
// so that peers pass it on, except dead opinions about nodes whose
// failover is under way: nobody reads those votes any more.
func (m *machine) repeat(out *effects, now time.Time) {
	type pending struct {
		target string
		op     failover.Opinion
		sent   time.Time
	}
	for target, n := range m.notices {
		if !now.Before(n.until) {
			delete(m.notices, target)
		}
	}
	var todo []pending
	for target, o := range m.opinions {
		if o.op != failover.OpinionAlive {
			todo = append(todo, pending{target, o.op, o.sent})
		}
	}
	// Dead and agent-down first: they make decisions; suspect votes only
	// inform. Then the longest waiting, and by name among equals, so that
	// the order does not depend on the map's.
	slices.SortFunc(todo, func(x, y pending) int {
		if xs, ys := x.op == failover.OpinionSuspect, y.op == failover.OpinionSuspect; xs != ys {
			if xs {
				return 1
			}
			return -1
		}
		if c := x.sent.Compare(y.sent); c != 0 {
			return c
		}
		return strings.Compare(x.target, y.target)
	})
	sent := 0
	for i, p := range todo {
		if p.op == failover.OpinionDead && m.underWay(p.target, now) {
			out.count(counterSuppressed, "", 1)
			continue
		}
		if sent == m.cfg.RepeatMax {
			out.count(counterDeferred, "", len(todo)-i)
			return
		}
		m.vote(out, p.target, p.op, now)
		sent++
	}
}

// vote records this agent's vote in the ballots and sends it.
func (m *machine) vote(out *effects, target string, op failover.Opinion, now time.Time) {
	member, _ := m.world.peer(target)
	m.seq++
	if o := m.opinions[target]; o != nil {
		o.sent = now
	}
	v := failover.Vote{
		Voter: m.self, Target: target, Opinion: op,
		VoterEpoch: m.epoch, Seq: m.seq, TargetEpoch: member.Epoch,
		LastAck: member.LastAck, At: now,
	}
	m.ballots.Add(v, now)
	e := sendVote{Vote: v}
	if h := m.coordinator(); h != "" && h != v.Voter && h != target {
		e.To = h
	}
	out.add(e)
}
