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

// wrongAction is a failover decision about a member that was alive: of
// the decision core (start, hold) or of a coordinator in the API (record,
// cordon).
type wrongAction struct {
	Target string  `json:"target"`
	Action string  `json:"action"`
	By     string  `json:"by"`
	Tally  string  `json:"tally,omitempty"`
	Reason string  `json:"reason,omitempty"`
	AtS    float64 `json:"at_seconds"` // since the run started
	Phase  string  `json:"phase"`
}

// coordinator runs the decision core alone on the membership view and
// ballots of the member that holds the Lease, every tick, and notes when
// each crashed member's failover would start and every decision about a
// live member. It is the measure of the simulations before the real
// coordinators ran in them (see coordinators), kept beside theirs so that
// the figures can be compared: it watches and does nothing, the real
// coordinator announces the failovers to the voters.
//
// The decider is made afresh each tick, so its rate limiter (3 at once,
// then one per 30 s) never holds a crash back: what is measured is how soon
// the votes confirm a death, not the rate limit. Members whose failover
// started are passed as active, as the coordinator's records would be.
type coordinator struct {
	view func() *member // the Lease holder's member, nil when none
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

func newCoordinator(view func() *member, rec *recorder, tick time.Duration) (*coordinator, error) {
	if _, err := failover.NewDecider(failover.DefaultConfig()); err != nil {
		return nil, err
	}
	return &coordinator{view: view, rec: rec, tick: tick, phase: phaseConverge,
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
	m := c.view()
	if m == nil {
		return
	}
	view := m.g.Members()
	members := make([]failover.Member, 0, len(view))
	c.mu.Lock()
	active := make(map[string]bool, len(c.started))
	for n := range c.started {
		active[n] = true
	}
	c.mu.Unlock()
	pending := false
	for _, v := range view {
		members = append(members, hacoord.FailoverMember(v))
		if (v.State == gossip.StateDead || v.State == gossip.StateSuspect) && !active[v.Name] {
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
	m.a.WithBallots(func(b *failover.Ballots) {
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
		c.wrong = append(c.wrong, wrongAction{Target: dec.Target, Action: dec.Action.String(), By: "decision core", Tally: dec.Tally.String(),
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

// votesAbout describes the Lease holder's ballots about target: the newest
// vote of each voter, whatever its age, by opinion, and the target's state
// in the holder's view. It explains a crash that got no decision.
func (c *coordinator) votesAbout(target string) string {
	m := c.view()
	if m == nil {
		return "no member holds the Lease"
	}
	counts := map[failover.Opinion]int{}
	m.a.WithBallots(func(b *failover.Ballots) {
		for _, v := range b.Votes(target) {
			counts[v.Opinion]++
		}
	})
	state := "unknown"
	for _, v := range m.g.Members() {
		if v.Name == target {
			state = v.State.String()
		}
	}
	return fmt.Sprintf("the Lease holder %s sees it %s; newest votes: dead %d, agent-down %d, suspect %d, alive %d",
		m.name, state, counts[failover.OpinionDead], counts[failover.OpinionAgentDown], counts[failover.OpinionSuspect], counts[failover.OpinionAlive])
}
