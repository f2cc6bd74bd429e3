package agreement

import (
	"fmt"
	"time"

	"github.com/haagent/haagent/agent/failover"
)

// invariants follows a scenario's events and the core's effects and notes
// every break of the rules the agreement keeps:
//
//   - rule 1 of docs/design.md: an opinion becomes dead (agent-down) only
//     from a kubelet check that got no answer (an answer), started within
//     RecheckInterval and after the member last came back; every dead or
//     agent-down vote agrees with the newest such check, and is about a
//     member gossip holds dead;
//   - no dead vote while a notice about the member's current life is
//     believed (NoticeTTL after it was heard or sent);
//   - a notice goes out at most once per NoticeInterval per member;
//   - "alive" is voted only to retract a non-alive opinion;
//   - sequence numbers of votes and of notices only grow;
//   - a repeat round sends at most RepeatMax votes;
//   - at most one check runs per member; checks start only while Run runs,
//     and the check of a member that comes back or leaves is cancelled.
type invariants struct {
	cfg       Config
	errs      []string
	running   bool
	ev        event
	opinion   map[string]failover.Opinion
	lastEvent map[string]peerState
	open      map[uint64]openCheck
	results   map[string]openCheck
	notices   map[string]belief
	sent      map[string]time.Time
	seq, nseq uint64
}

type openCheck struct {
	target    string
	start     time.Time
	reachable bool
}

type belief struct {
	until time.Time
	epoch int64
}

func newInvariants(cfg Config) invariants {
	return invariants{cfg: cfg, running: true, opinion: map[string]failover.Opinion{}, lastEvent: map[string]peerState{},
		open: map[uint64]openCheck{}, results: map[string]openCheck{}, notices: map[string]belief{}, sent: map[string]time.Time{}}
}

func (v *invariants) fail(format string, args ...any) {
	v.errs = append(v.errs, fmt.Sprintf(format, args...))
}

// observe notes the event the core is about to step.
func (v *invariants) observe(h *harness, ev event) {
	v.ev = ev
	switch ev := ev.(type) {
	case stopped:
		v.running = false
	case memberChanged:
		name := ev.Peer.Name
		v.lastEvent[name] = ev.Peer.State
		if ev.Change == changeAlive || ev.Change == changeLeft {
			delete(v.results, name)
		}
		if ev.Change == changeLeft {
			delete(v.opinion, name)
			delete(v.notices, name)
			delete(v.sent, name)
		}
	case checkDone:
		c, ok := v.open[ev.ID]
		if !ok || c.target != ev.Target {
			return // moot: cancelled, or not a check of this member
		}
		delete(v.open, ev.ID)
		if ev.Conclusive {
			c.reachable = ev.Reachable
			v.results[ev.Target] = c
		}
	}
}

// check notes the effects of the step and the rules they break.
func (v *invariants) check(h *harness, effs []effect) {
	now := h.now
	votes := 0
	retract := map[string]bool{}
	if mc, ok := v.ev.(memberChanged); ok && (mc.Change == changeAlive || mc.Change == changeLeft) {
		defer func(cancelled map[uint64]bool) {
			for id, c := range v.open {
				if c.target == mc.Peer.Name && !cancelled[id] {
					v.fail("check %d of %s still runs after it came back or left", id, c.target)
					delete(v.open, id)
				}
			}
		}(cancelledIn(effs))
	}
	for _, e := range effs {
		switch e := e.(type) {
		case logLine:
			if e.Msg != "opinion changed" || len(e.Fields) != 4 {
				continue
			}
			name := e.Fields[1]
			op, err := failover.ParseOpinion(e.Fields[3])
			if err != nil {
				v.fail("%v", err)
				continue
			}
			prev := v.opinion[name]
			v.opinion[name] = op
			switch op {
			case failover.OpinionAlive:
				retract[name] = prev != 0 && prev != failover.OpinionAlive
				delete(v.notices, name)
			case failover.OpinionDead, failover.OpinionAgentDown:
				r, ok := v.results[name]
				switch {
				case !ok:
					v.fail("%s held %s with no kubelet check since it was last alive", name, op)
				case now.Sub(r.start) > v.cfg.RecheckInterval:
					v.fail("%s held %s from a check started %s ago, more than RecheckInterval (%s)", name, op, now.Sub(r.start), v.cfg.RecheckInterval)
				case r.reachable != (op == failover.OpinionAgentDown):
					v.fail("%s held %s though its kubelet check said reachable=%v", name, op, r.reachable)
				}
			}
		case sendVote:
			votes++
			v.vote(h, e.Vote, retract)
		case sendNotice:
			n := e.Notice
			if n.Seq <= v.nseq {
				v.fail("notice seq %d after %d", n.Seq, v.nseq)
			}
			v.nseq = n.Seq
			if last, ok := v.sent[n.Target]; ok && now.Sub(last) < NoticeInterval {
				v.fail("notice about %s %s after the last, less than NoticeInterval", n.Target, now.Sub(last))
			}
			v.sent[n.Target] = now
			v.notices[n.Target] = belief{until: now.Add(NoticeTTL), epoch: n.TargetEpoch}
		case count:
			if nr, ok := v.ev.(noticeReceived); ok && e.Counter == counterNotices && e.Label == "fresh" {
				v.notices[nr.Notice.Target] = belief{until: now.Add(NoticeTTL), epoch: nr.Notice.TargetEpoch}
			}
		case startCheck:
			if !v.running {
				v.fail("check of %s started while Run is not running", e.Target)
			}
			for id, c := range v.open {
				if c.target == e.Target {
					v.fail("check %d of %s started while check %d runs", e.ID, e.Target, id)
				}
			}
			v.open[e.ID] = openCheck{target: e.Target, start: now}
		case cancelCheck:
			delete(v.open, e.ID)
		}
	}
	if _, ok := v.ev.(repeatTick); ok && votes > v.cfg.RepeatMax {
		v.fail("a repeat round sent %d votes, more than RepeatMax (%d)", votes, v.cfg.RepeatMax)
	}
}

func (v *invariants) vote(h *harness, vote failover.Vote, retract map[string]bool) {
	if vote.Seq <= v.seq {
		v.fail("vote seq %d after %d", vote.Seq, v.seq)
	}
	v.seq = vote.Seq
	name := vote.Target
	switch vote.Opinion {
	case failover.OpinionAlive:
		if !retract[name] {
			v.fail("alive vote about %s retracts nothing", name)
		}
	case failover.OpinionDead, failover.OpinionAgentDown:
		if r, ok := v.results[name]; !ok || r.reachable != (vote.Opinion == failover.OpinionAgentDown) {
			v.fail("%s vote about %s disagrees with its newest kubelet check", vote.Opinion, name)
		}
		if h.w.peers[name].State != peerDead && v.lastEvent[name] != peerDead {
			v.fail("%s vote about %s, which gossip does not hold dead", vote.Opinion, name)
		}
		b, ok := v.notices[name]
		epoch := h.w.peers[name].Epoch
		if vote.Opinion == failover.OpinionDead && ok && h.now.Before(b.until) && (b.epoch == 0 || epoch == 0 || b.epoch == epoch) {
			v.fail("dead vote about %s while its failover is said to be under way", name)
		}
	}
}

func cancelledIn(effs []effect) map[uint64]bool {
	out := map[uint64]bool{}
	for _, e := range effs {
		if c, ok := e.(cancelCheck); ok {
			out[c.ID] = true
		}
	}
	return out
}
