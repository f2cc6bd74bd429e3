package failover

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// shuffleSeeds are the member orders every decide is replayed in.
var shuffleSeeds = []uint64{1, 2, 3, 4, 5}

// checkDecide re-checks one decide, as raft's quorum tests check each case
// a second way. before is the decider's state before the call, in its
// input, decisions and out what it returned, pos where the decide was
// asked for. It reports:
//
//   - an input that Decide changed;
//   - a different output when the same decide is made again from the
//     same state: a Decide that depends on anything but its input;
//   - a different output with the members in another order;
//   - a start or hold of a dead member that no strict majority of the
//     known members votes dead, counted again from the ballots by a
//     naive tally; a tally that differs from that count; an agent-down
//     without agent-down votes or with a majority for dead;
//   - a not-ready decision against the rule, and a confirmed death or a
//     node not ready beyond the bound that gets no decision;
//   - any decision about a member the input holds alive and ready, or
//     about a name that is no member.
func (s *scenario) checkDecide(t *testing.T, pos string, before Decider, in Input, decisions []Decision, out string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: decide: "+format, append([]any{pos}, args...)...)
	}

	// The input is left as it was given.
	if want := s.input(); !reflect.DeepEqual(in, want) {
		fail("Decide changed its input; members after:\n%+v\nbefore:\n%+v", in.Members, want.Members)
	}

	// The same decide again, from the same state, says the same.
	again := before
	if got := render(again.Decide(in)); got != out {
		fail("repeated from the same state, the output differs:\n%s\nthen\n%s", out, got)
	}

	// The order of the members does not matter.
	for _, seed := range shuffleSeeds {
		shuffled := in
		shuffled.Members = slices.Clone(in.Members)
		r := rand.New(rand.NewPCG(seed, 0))
		r.Shuffle(len(shuffled.Members), func(i, j int) {
			shuffled.Members[i], shuffled.Members[j] = shuffled.Members[j], shuffled.Members[i]
		})
		d := before
		if got := render(d.Decide(shuffled)); got != out {
			fail("with the members shuffled (seed %d), the output differs:\n%s\nthen\n%s", seed, out, got)
		}
	}

	byName := map[string]Member{}
	for _, m := range in.Members {
		byName[m.Name] = m
	}
	decided := map[string]Decision{}
	for _, d := range decisions {
		m, ok := byName[d.Target]
		switch {
		case !ok:
			fail("decision about %s, which is no member: %s", d.Target, d)
			continue
		case m.State == StateAlive && m.NotReadySince.IsZero():
			fail("decision about %s, alive and ready: %s", d.Target, d)
		}
		if _, dup := decided[d.Target]; dup {
			fail("two decisions about %s", d.Target)
		}
		decided[d.Target] = d

		if d.NotReady {
			readiness := "ready"
			if !m.NotReadySince.IsZero() {
				readiness = "not ready for " + in.Now.Sub(m.NotReadySince).String()
			}
			if d.Action == ActionAgentDown || m.State != StateAlive || m.NotReadySince.IsZero() ||
				s.cfg.NotReadyAfter == 0 || in.Now.Sub(m.NotReadySince) < s.cfg.NotReadyAfter || in.Active[d.Target] {
				fail("not-ready decision about %s (%s, %s, active %v) against --not-ready-failover-after %s: %s",
					d.Target, m.State, readiness, in.Active[d.Target], s.cfg.NotReadyAfter, d)
			}
			continue
		}
		ref := naiveTally(s.cfg, in, m)
		if !slices.Equal(d.Tally.Dead, ref.dead) || d.Tally.Known != ref.known {
			fail("tally of %s is %d dead of %d known %v; counted again: %d of %d %v",
				d.Target, len(d.Tally.Dead), d.Tally.Known, d.Tally.Dead, len(ref.dead), ref.known, ref.dead)
		}
		switch d.Action {
		case ActionStart, ActionHold:
			if 2*len(ref.dead) <= ref.known {
				fail("%s of %s on %d dead votes of %d known members, no strict majority", d.Action, d.Target, len(ref.dead), ref.known)
			}
			if m.State != StateDead {
				fail("%s of %s, which is %s", d.Action, d.Target, m.State)
			}
			if in.Active[d.Target] && !in.Draining[d.Target] {
				fail("%s of %s, whose failover is already under way", d.Action, d.Target)
			}
			if d.Action == ActionStart && in.Paused {
				fail("start of %s while the operator pauses failover", d.Target)
			}
		case ActionAgentDown:
			if m.State != StateDead || len(ref.agentDown) == 0 || 2*len(ref.dead) > ref.known {
				fail("agent-down for %s (%s, %d agent-down and %d dead votes of %d known)",
					d.Target, m.State, len(ref.agentDown), len(ref.dead), ref.known)
			}
		}
	}

	// Every death a strict majority confirms, and every node not ready
	// for longer than the bound, that nobody fails over yet, gets a
	// decision.
	for _, m := range in.Members {
		if s.cfg.NotReadyAfter > 0 && m.State == StateAlive && !m.NotReadySince.IsZero() &&
			in.Now.Sub(m.NotReadySince) >= s.cfg.NotReadyAfter && !in.Active[m.Name] {
			if d, ok := decided[m.Name]; !ok || !d.NotReady {
				fail("%s is not ready for %s, but gets no not-ready decision", m.Name, in.Now.Sub(m.NotReadySince))
			}
		}
		if m.State != StateDead || (in.Active[m.Name] && !in.Draining[m.Name]) {
			continue
		}
		if ref := naiveTally(s.cfg, in, m); 2*len(ref.dead) > ref.known {
			if d, ok := decided[m.Name]; !ok || (d.Action != ActionStart && d.Action != ActionHold) {
				fail("%s is dead with %d dead votes of %d known members, but no start or hold", m.Name, len(ref.dead), ref.known)
			}
		}
	}
}

// refTally is a tally of the votes about one member, counted from scratch.
type refTally struct {
	known     int
	dead      []string
	agentDown []string
}

// naiveTally counts the votes about target the slow way, straight from
// the ballot box: the members that have not left are known; a vote counts
// when it was received within VoteMaxAge, its voter is another member
// that is alive or suspect, and it is about the target's current life.
func naiveTally(cfg Config, in Input, target Member) refTally {
	var t refTally
	canVote := func(name string) bool {
		if name == target.Name {
			return false
		}
		for _, m := range in.Members {
			if m.Name == name {
				return m.State == StateAlive || m.State == StateSuspect
			}
		}
		return false
	}
	for _, m := range in.Members {
		if m.State != StateLeft {
			t.known++
		}
	}
	oldest := in.Now.Add(-cfg.VoteMaxAge)
	for key, r := range in.Ballots.votes {
		v := r.Vote
		if key[1] != target.Name || r.At.Before(oldest) || !canVote(v.Voter) {
			continue
		}
		if v.TargetEpoch != 0 && target.Epoch != 0 && v.TargetEpoch != target.Epoch {
			continue
		}
		switch v.Opinion {
		case OpinionDead:
			t.dead = append(t.dead, v.Voter)
		case OpinionAgentDown:
			t.agentDown = append(t.agentDown, v.Voter)
		}
	}
	slices.Sort(t.dead)
	slices.Sort(t.agentDown)
	return t
}

// TestDecide_invariantsOnRandomInputs holds checkDecide to inputs no
// scenario file spells out: random memberships of up to 11 members in
// three zones, in every state, with opt-outs, restarts, not-ready spells,
// votes of every opinion about current and past lives, some stale,
// records of failovers under way and the operator's pause, decided over
// and over as the clock moves.
func TestDecide_invariantsOnRandomInputs(t *testing.T) {
	const seeds, rounds = 300, 12
	states := []State{StateAlive, StateAlive, StateAlive, StateAlive, StateSuspect, StateDead, StateDead, StateLeft}
	opinions := []Opinion{OpinionAlive, OpinionSuspect, OpinionDead, OpinionDead, OpinionAgentDown}
	for seed := uint64(1); seed <= seeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		s := newScenario()
		s.cfg.Burst = 1 + r.IntN(3)
		s.cfg.MaxDeadFraction = []float64{0.3, 0.55, 0.55, 1}[r.IntN(4)]
		if r.IntN(2) == 0 {
			s.cfg.NotReadyAfter = 10 * time.Second
		}
		d, err := NewDecider(s.cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.dec = d
		n := 1 + r.IntN(11)
		for i := range n {
			name := fmt.Sprintf("n%d", i+1)
			s.members[name] = &Member{Name: name, State: StateAlive, Zone: string(rune('a' + r.IntN(3))), Epoch: 1}
			s.order = append(s.order, name)
		}
		pick := func() *Member { return s.members[s.order[r.IntN(n)]] }
		for round := range rounds {
			for range r.IntN(4) {
				m := pick()
				m.State = states[r.IntN(len(states))]
				switch r.IntN(6) {
				case 0:
					m.Epoch++
				case 1:
					m.OptOut = !m.OptOut
				case 2:
					m.NotReadySince, m.NotReadyReason = s.now.Add(-time.Duration(r.IntN(30))*time.Second), "kubelet: down"
				case 3:
					m.NotReadySince, m.NotReadyReason = time.Time{}, ""
				}
			}
			// Scattered votes, then a wave about one member, as when
			// it dies: most voters agree, some do not.
			vote := func(voter string, target *Member, op Opinion) {
				s.seq[voter]++
				epoch := target.Epoch
				if r.IntN(4) == 0 {
					epoch = int64(r.IntN(3))
				}
				s.ballots.Add(Vote{Voter: voter, Target: target.Name, Opinion: op,
					VoterEpoch: 1, Seq: s.seq[voter], TargetEpoch: epoch, At: s.now}, s.now)
			}
			for range r.IntN(n) {
				vote(pick().Name, pick(), opinions[r.IntN(len(opinions))])
			}
			if r.IntN(2) == 0 {
				target, op := pick(), opinions[2+r.IntN(len(opinions)-2)]
				for _, voter := range s.order {
					if r.IntN(4) != 0 {
						vote(voter, target, op)
					}
				}
			}
			for range r.IntN(2) {
				name := pick().Name
				s.active[name] = r.IntN(2) == 0
				s.drain[name] = s.active[name] && r.IntN(2) == 0
			}
			s.paused = r.IntN(8) == 0
			in := s.input()
			before := *s.dec
			decisions, pause := s.dec.Decide(in)
			s.checkDecide(t, fmt.Sprintf("seed %d, round %d", seed, round), before, in, decisions, render(decisions, pause))
			if t.Failed() {
				t.FailNow()
			}
			s.now = s.now.Add(time.Duration(r.IntN(8)) * time.Second)
		}
	}
}
