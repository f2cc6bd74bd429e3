package agreement

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/failover"
)

type opinion struct {
	op failover.Opinion
	// sent is when it was last voted: repeat sends those waiting longest first.
	sent time.Time
}

// receive handles a vote from gossip, on memberlist's goroutine.
func (a *Agreement) receive(payload []byte) (bool, error) {
	v, err := failover.DecodeVote(payload)
	if err != nil {
		return false, err
	}
	if v.Voter == a.g.LocalName() {
		return false, nil // our own vote, relayed back
	}
	a.mu.Lock()
	fresh := a.ballots.Add(v, a.clock.Now())
	a.mu.Unlock()
	if !fresh {
		a.metrics.received.WithLabelValues("duplicate").Inc()
		return false, nil
	}
	a.metrics.received.WithLabelValues("fresh").Inc()
	if v.Opinion == failover.OpinionSuspect && a.precheckPeer(v.Target) {
		// A peer suspects a member this agent holds alive, and this is
		// the first it hears of it: check its kubelet now, so that the
		// answer is there when gossip declares it dead, and pass the vote
		// on so that every voter does. Old news (a check already made or
		// running, or the member already suspect or dead here) goes no
		// further: the suspect votes of the other probers, and those
		// voters send when gossip declares a member dead, are not flooded.
		return true, nil
	}
	// Votes go to the coordinator directly; only those about the
	// coordinator itself must reach every candidate.
	if h := a.coordinator(); h != "" && v.Target != h {
		return false, nil
	}
	return true, nil
}

// set changes an opinion and votes it when it changed.
func (a *Agreement) set(target string, op failover.Opinion) {
	a.mu.Lock()
	o := a.opinions[target]
	if o == nil {
		o = &opinion{}
		a.opinions[target] = o
	}
	changed := o.op != op
	// "alive" is what everybody assumes of a member: it is voted only to
	// retract an earlier suspect, dead or agent-down vote. Voting it for
	// every member that joins would send N² votes as a group forms.
	retract := o.op != 0 && o.op != failover.OpinionAlive
	if changed {
		if o.op != 0 { // a new entry has no opinion yet
			a.counts[o.op]--
		}
		a.counts[op]++
	}
	o.op = op
	if op == failover.OpinionAlive {
		// Back: a failover of this life of the node is over, and a later
		// death is a new question.
		delete(a.notices, target)
	}
	a.mu.Unlock()
	if changed {
		a.log.Info("opinion changed", zap.String("node", target), zap.String("opinion", op.String()))
		a.updateGauge()
		switch {
		case op == failover.OpinionDead && a.underWay(target):
			a.metrics.suppressed.Inc()
		case op != failover.OpinionAlive || retract:
			a.vote(target, op)
		}
	}
}

// repeat votes every non-alive opinion again, with a new sequence number
// so that peers pass it on, except dead opinions about nodes whose
// failover is under way: nobody reads those votes any more.
func (a *Agreement) repeat() {
	type pending struct {
		target string
		op     failover.Opinion
		sent   time.Time
	}
	var todo []pending
	now := a.clock.Now()
	a.mu.Lock()
	for target, n := range a.notices {
		if !now.Before(n.until) {
			delete(a.notices, target)
		}
	}
	for target, o := range a.opinions {
		if o.op != failover.OpinionAlive {
			todo = append(todo, pending{target, o.op, o.sent})
		}
	}
	a.mu.Unlock()
	// Dead and agent-down first: they make decisions; suspect votes only
	// inform. Then the longest waiting.
	slices.SortFunc(todo, func(x, y pending) int {
		if xs, ys := x.op == failover.OpinionSuspect, y.op == failover.OpinionSuspect; xs != ys {
			if xs {
				return 1
			}
			return -1
		}
		return x.sent.Compare(y.sent)
	})
	sent := 0
	for i, p := range todo {
		if p.op == failover.OpinionDead && a.underWay(p.target) {
			a.metrics.suppressed.Inc()
			continue
		}
		if sent == a.cfg.RepeatMax {
			a.metrics.deferred.Add(float64(len(todo) - i))
			return
		}
		a.vote(p.target, p.op)
		sent++
	}
}

func (a *Agreement) vote(target string, op failover.Opinion) {
	member, _ := a.g.Member(target)
	now := a.clock.Now()
	a.mu.Lock()
	a.seq++
	if o := a.opinions[target]; o != nil {
		o.sent = now
	}
	v := failover.Vote{
		Voter: a.g.LocalName(), Target: target, Opinion: op,
		VoterEpoch: a.epoch, Seq: a.seq, TargetEpoch: member.Meta.StartEpoch,
		LastAck: member.LastAck, At: now,
	}
	a.ballots.Add(v, now)
	a.mu.Unlock()
	key, payload := broadcastKey(v.Voter, v.Target), v.Encode()
	if err := a.g.Broadcast(VoteKind, key, payload); err != nil {
		a.log.Error("broadcast vote", zap.String("node", target), zap.Error(err))
		return
	}
	a.metrics.sent.WithLabelValues(opinionLabel(op)).Inc()
	if h := a.coordinator(); h != "" && h != v.Voter && h != target {
		if err := a.g.SendTo(h, VoteKind, key, payload); err != nil {
			a.metrics.direct.WithLabelValues("failure").Inc()
			a.log.Debug("send vote to the coordinator", zap.String("coordinator", h), zap.Error(err))
			return
		}
		a.metrics.direct.WithLabelValues("success").Inc()
	}
}

// broadcastKey names a voter's vote (or a coordinator's notice) about a
// target in the gossip queue, so a newer one replaces an older one still
// queued. The queue tells votes and notices apart by their kind. Names of
// up to 253 bytes each make keys longer than the 255 bytes gossip takes:
// those are hashed.
func broadcastKey(voter, target string) string {
	k := voter + "/" + target
	if len(k) > 255 {
		sum := sha256.Sum256([]byte(k))
		k = hex.EncodeToString(sum[:])
	}
	return k
}

func (a *Agreement) updateGauge() {
	a.mu.Lock()
	counts := a.counts
	a.mu.Unlock()
	for _, op := range []failover.Opinion{failover.OpinionAlive, failover.OpinionSuspect, failover.OpinionDead, failover.OpinionAgentDown} {
		a.metrics.opinions.WithLabelValues(opinionLabel(op)).Set(float64(counts[op]))
	}
}
