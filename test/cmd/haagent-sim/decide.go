package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	hacoord "github.com/haagent/haagent/agent/coordinator"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
)

// wrongAction is a failover decision about a member that was alive.
type wrongAction struct {
	Target string  `json:"target"`
	Action string  `json:"action"`
	Tally  string  `json:"tally"`
	Reason string  `json:"reason,omitempty"`
	AtS    float64 `json:"at_seconds"` // since the run started
	Phase  string  `json:"phase"`
}

// coordinator runs the decision core on one member's membership view and
// ballots every tick, as the Lease holder does, and notes when each crashed
// member's failover starts and every decision about a live member.
//
// The decider is made afresh each tick, so its rate limiter (3 at once,
// then one per 30 s) never holds a crash back: what is measured is how soon
// the votes confirm a death, not the rate limit. Members whose failover
// started are passed as active, as the coordinator's records would be, and
// announced to the voters as under way, as the coordinator announces them.
type coordinator struct {
	m    *member
	rec  *recorder
	tick time.Duration

	mu       sync.Mutex
	phase    string
	started  map[string]time.Time // crashed member -> when its failover started
	held     map[string]string    // crashed member -> why its start was held, while it is
	wrong    []wrongAction
	wrongOn  map[string]bool
	rounds   int
	slowest  time.Duration
	decideNs time.Duration
}

func newCoordinator(m *member, rec *recorder, tick time.Duration) (*coordinator, error) {
	if _, err := failover.NewDecider(failover.DefaultConfig()); err != nil {
		return nil, err
	}
	return &coordinator{m: m, rec: rec, tick: tick, phase: phaseConverge,
		started: map[string]time.Time{}, held: map[string]string{}, wrongOn: map[string]bool{}}, nil
}

func (c *coordinator) setPhase(p string) {
	c.mu.Lock()
	c.phase = p
	c.mu.Unlock()
}

func (c *coordinator) run(ctx context.Context) {
	t := time.NewTicker(c.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.round()
	}
}

func (c *coordinator) round() {
	t0 := wallNow() // the round's cost in real time: the simulated clock stands still while it runs
	view := c.m.g.Members()
	members := make([]failover.Member, 0, len(view))
	c.mu.Lock()
	active := make(map[string]bool, len(c.started))
	for n := range c.started {
		active[n] = true
	}
	c.mu.Unlock()
	// As the coordinator does for the failovers it carries: the voters stop
	// repeating their votes about them (one notice per target per
	// agreement.NoticeInterval).
	for n := range active {
		c.m.a.UnderWay(n)
	}
	pending := false
	for _, m := range view {
		members = append(members, hacoord.FailoverMember(m))
		if (m.State == gossip.StateDead || m.State == gossip.StateSuspect) && !active[m.Name] {
			pending = true
		}
	}
	if !pending {
		return // nothing the decider could start: spare the scan of the ballots
	}
	d, err := failover.NewDecider(failover.DefaultConfig())
	if err != nil {
		return // newCoordinator checked the configuration
	}
	var out []failover.Decision
	now := time.Now()
	c.m.a.WithBallots(func(b *failover.Ballots) {
		out, _ = d.Decide(failover.Input{Now: now, Members: members, Ballots: b, Active: active})
	})
	took := wallNow().Sub(t0)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rounds++
	c.decideNs += took
	c.slowest = max(c.slowest, took)
	for _, dec := range out {
		if dec.Action != failover.ActionStart && dec.Action != failover.ActionHold {
			continue // agent-down is an alert, not an action
		}
		if _, crashed := c.rec.crashTime(dec.Target); crashed {
			if dec.Action == failover.ActionStart {
				if _, ok := c.started[dec.Target]; !ok {
					c.started[dec.Target] = now
				}
				delete(c.held, dec.Target)
			} else {
				c.held[dec.Target] = dec.Reason
			}
			continue
		}
		if c.wrongOn[dec.Target] {
			continue
		}
		c.wrongOn[dec.Target] = true
		c.wrong = append(c.wrong, wrongAction{Target: dec.Target, Action: dec.Action.String(), Tally: dec.Tally.String(),
			Reason: dec.Reason, AtS: now.Sub(c.rec.start).Seconds(), Phase: c.phase})
	}
}

// startedAt is when the failover of target started, if it did.
func (c *coordinator) startedAt(target string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.started[target]
	return t, ok
}

func (c *coordinator) heldReason(target string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[target]
}

func (c *coordinator) wrongActions() []wrongAction {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]wrongAction(nil), c.wrong...)
}

// stats are the number of rounds that ran the decider, and the mean and
// longest time one took.
func (c *coordinator) stats() (rounds int, mean, slowest time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rounds > 0 {
		mean = c.decideNs / time.Duration(c.rounds)
	}
	return c.rounds, mean, c.slowest
}

// votesAbout describes the first member's ballots about target: the newest
// vote of each voter, whatever its age, by opinion, and the target's state
// in the first member's view. It explains a crash that got no decision.
func (c *coordinator) votesAbout(target string) string {
	counts := map[failover.Opinion]int{}
	c.m.a.WithBallots(func(b *failover.Ballots) {
		for _, v := range b.Votes(target) {
			counts[v.Opinion]++
		}
	})
	state := "unknown"
	for _, m := range c.m.g.Members() {
		if m.Name == target {
			state = m.State.String()
		}
	}
	return fmt.Sprintf("first member sees it %s; newest votes: dead %d, agent-down %d, suspect %d, alive %d",
		state, counts[failover.OpinionDead], counts[failover.OpinionAgentDown], counts[failover.OpinionSuspect], counts[failover.OpinionAlive])
}
