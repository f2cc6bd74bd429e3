package failover

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Member is a member as the coordinator sees it: its gossip state, zone
// and epoch, converted from the gossip view, and what the API adds.
type Member struct {
	Name  string
	State State
	Zone  string
	// Epoch is the member's agent start epoch, from its metadata.
	Epoch int64
	// OptOut marks a node in maintenance: never failed over automatically.
	OptOut bool
	// NotReadySince is when the coordinator first saw the member, alive on
	// gossip, report itself not ready (zero while it is ready), and
	// NotReadyReason names the failing check.
	NotReadySince  time.Time
	NotReadyReason string
}

// Config tunes the decisions. Validate before use.
type Config struct {
	// VoteMaxAge is how long a received vote counts. Agents repeat their
	// non-alive opinions well within it, so a vote that stops being
	// repeated (its voter died or changed its mind and the news was lost)
	// stops counting.
	VoteMaxAge time.Duration
	// MaxDeadFraction pauses automatic failover when more than this
	// fraction of the known nodes is dead at once, cluster-wide or in a
	// zone with at least ZoneMinNodes nodes: so many deaths at once are
	// more likely the network or haagent itself.
	MaxDeadFraction float64
	// ZoneMinNodes is the smallest zone judged on its own.
	ZoneMinNodes int
	// Burst and Interval rate-limit failovers: at most Burst at once, and
	// one more each Interval.
	Burst    int
	Interval time.Duration
	// NotReadyAfter fails over a node that is alive on gossip but reports
	// itself not ready for this long (its own checks failing). 0, the
	// default, never does: a node's verdict about itself is one voice,
	// and an API server outage makes every node not ready at once.
	NotReadyAfter time.Duration
}

// DefaultConfig follows the node lifecycle controller's 55 % zone rule.
func DefaultConfig() Config {
	return Config{
		VoteMaxAge:      10 * time.Second,
		MaxDeadFraction: 0.55,
		ZoneMinNodes:    3,
		Burst:           3,
		Interval:        30 * time.Second,
	}
}

// Validate names the flag and the bound.
func (c Config) Validate() error {
	switch {
	case c.VoteMaxAge < time.Second || c.VoteMaxAge > 5*time.Minute:
		return fmt.Errorf("failover: --vote-max-age (%s) must be between 1s and 5m0s", c.VoteMaxAge)
	case !(c.MaxDeadFraction > 0 && c.MaxDeadFraction <= 1):
		return fmt.Errorf("failover: --max-dead-fraction (%g) must be greater than 0 and at most 1", c.MaxDeadFraction)
	case c.ZoneMinNodes < 1:
		return fmt.Errorf("failover: --zone-min-nodes (%d) must be at least 1", c.ZoneMinNodes)
	case c.Burst < 1 || c.Burst > 100:
		return fmt.Errorf("failover: --failover-burst (%d) must be between 1 and 100", c.Burst)
	case c.Interval < time.Second:
		return fmt.Errorf("failover: --failover-interval (%s) must be at least 1s", c.Interval)
	case c.NotReadyAfter != 0 && c.NotReadyAfter < 10*time.Second:
		return fmt.Errorf("failover: --not-ready-failover-after (%s) must be 0 (off) or at least 10s", c.NotReadyAfter)
	}
	return nil
}

// Tally is the count of votes about one target.
type Tally struct {
	Target string
	// Known is how many members count: alive, suspect and dead, not left.
	Known int
	// Quorum is a strict majority of Known.
	Quorum int
	// Dead and AgentDown are the voters with those opinions, sorted.
	Dead      []string
	AgentDown []string
	// LastHeard is the latest time any counted voter heard the target.
	LastHeard time.Time
	// FirstSuspected is the earliest time a counted voter formed a
	// non-alive opinion.
	FirstSuspected time.Time
}

// Confirmed reports whether a quorum votes dead.
func (t Tally) Confirmed() bool { return len(t.Dead) >= t.Quorum }

func (t Tally) String() string {
	return fmt.Sprintf("%d/%d dead (quorum %d)", len(t.Dead), t.Known, t.Quorum)
}

// count tallies the votes about target. A vote counts when its voter is a
// member that is alive or suspect (a dead voter's vote is stale), is not
// the target, was received within VoteMaxAge, and is about the target's
// current life (TargetEpoch 0 or equal to the target's epoch).
func count(target Member, members []Member, votes []Vote) Tally {
	t := Tally{Target: target.Name}
	voters := map[string]bool{}
	for _, m := range members {
		if m.State == StateLeft {
			continue
		}
		t.Known++
		if m.Name != target.Name && (m.State == StateAlive || m.State == StateSuspect) {
			voters[m.Name] = true
		}
	}
	t.Quorum = t.Known/2 + 1
	for _, v := range votes {
		if !voters[v.Voter] || (v.TargetEpoch != 0 && target.Epoch != 0 && v.TargetEpoch != target.Epoch) {
			continue
		}
		if v.LastAck.After(t.LastHeard) {
			t.LastHeard = v.LastAck
		}
		if v.Opinion == OpinionAlive {
			continue
		}
		if t.FirstSuspected.IsZero() || v.At.Before(t.FirstSuspected) {
			t.FirstSuspected = v.At
		}
		switch v.Opinion {
		case OpinionDead:
			t.Dead = append(t.Dead, v.Voter)
		case OpinionAgentDown:
			t.AgentDown = append(t.AgentDown, v.Voter)
		}
	}
	sort.Strings(t.Dead)
	sort.Strings(t.AgentDown)
	return t
}

// Action is what the decider says to do about a node.
type Action int

const (
	// ActionStart: fail the node over now.
	ActionStart Action = iota + 1
	// ActionHold: the node is confirmed dead but a guard holds the
	// failover back; Reason says which.
	ActionHold
	// ActionAgentDown: the node's agent is dead but its kubelet answers;
	// alert, do nothing.
	ActionAgentDown
)

func (a Action) String() string {
	switch a {
	case ActionStart:
		return "start"
	case ActionHold:
		return "hold"
	case ActionAgentDown:
		return "agent-down"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decision is one decision about one node.
type Decision struct {
	Action Action
	Target string
	Tally  Tally
	Reason string
	// NotReady is set when the node is alive but has reported itself not
	// ready for longer than Config.NotReadyAfter; Cause says so.
	NotReady bool
	Cause    string
	// Supersedes is set on a start when the node is being drained as not
	// ready (Input.Draining) and a quorum now confirms it dead: the drain
	// ends and the failover of a dead node takes its place.
	Supersedes bool
	// Paused is set on a hold by a pause of automatic failover (the
	// operator's, or too many nodes dead in the cluster or in the node's
	// zone) rather than by a guard about this node alone (opt-out, rate
	// limit).
	Paused bool
}

func (d Decision) String() string {
	s := fmt.Sprintf("%s %s %s", d.Action, d.Target, d.Tally)
	if d.NotReady {
		s = fmt.Sprintf("%s %s %s", d.Action, d.Target, d.Cause)
	}
	if d.Supersedes {
		s += ", superseding the not-ready failover"
	}
	if d.Reason != "" {
		s += ": " + d.Reason
	}
	return s
}

// Decider turns membership and votes into decisions. It keeps only the
// rate limiter's state between calls.
type Decider struct {
	cfg    Config
	tokens float64
	last   time.Time
}

// NewDecider validates cfg.
func NewDecider(cfg Config) (*Decider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Decider{cfg: cfg, tokens: float64(cfg.Burst)}, nil
}

// Input is what one decision round looks at.
type Input struct {
	Now     time.Time
	Members []Member
	Ballots *Ballots
	// Active are the nodes with a failover in progress (from the records
	// in the API): they are not started again.
	Active map[string]bool
	// Draining are the nodes of Active whose failover began because the
	// node, alive, reported itself not ready. Such a failover drains a node
	// whose kubelet lives, and never fences it; should a quorum then
	// confirm the node dead, the failover of a dead node must take over,
	// or its stateful pods would wait for ever.
	Draining map[string]bool
	// Paused is set when failover is paused by the operator.
	Paused bool
}

// Decide returns, sorted by node name, the decisions for every node that
// a quorum confirms dead and that is not already being failed over (or is
// only being drained as not ready), and for every node reported
// agent-down. It also reports whether the dead fraction guard is tripped,
// with its reason.
func (d *Decider) Decide(in Input) (decisions []Decision, pause string) {
	d.refill(in.Now)
	members := append([]Member(nil), in.Members...)
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })

	var confirmed []Decision
	for _, target := range members {
		if d.cfg.NotReadyAfter > 0 && target.State == StateAlive && !target.NotReadySince.IsZero() &&
			in.Now.Sub(target.NotReadySince) >= d.cfg.NotReadyAfter && !in.Active[target.Name] {
			confirmed = append(confirmed, Decision{Action: ActionStart, Target: target.Name, NotReady: true,
				Tally:  Tally{Target: target.Name, LastHeard: target.NotReadySince, FirstSuspected: target.NotReadySince},
				Cause:  fmt.Sprintf("not ready for %s: %s", d.cfg.NotReadyAfter, target.NotReadyReason),
				Reason: ""})
			continue
		}
		if target.State != StateDead && target.State != StateSuspect {
			continue
		}
		t := count(target, members, in.Ballots.about(target.Name, in.Now.Add(-d.cfg.VoteMaxAge)))
		switch {
		case t.Confirmed() && target.State == StateDead:
			switch {
			case !in.Active[target.Name]:
				confirmed = append(confirmed, Decision{Action: ActionStart, Target: target.Name, Tally: t})
			case in.Draining[target.Name]:
				confirmed = append(confirmed, Decision{Action: ActionStart, Target: target.Name, Tally: t, Supersedes: true})
			}
		case len(t.AgentDown) > 0 && target.State == StateDead:
			decisions = append(decisions, Decision{Action: ActionAgentDown, Target: target.Name, Tally: t,
				Reason: fmt.Sprintf("kubelet answers %s", strings.Join(t.AgentDown, ","))})
		}
	}

	clusterPause, zonePause := deadFractionGuards(d.cfg, members)
	pause = clusterPause
	optOut := map[string]bool{}
	zoneOf := map[string]string{}
	for _, m := range members {
		optOut[m.Name] = m.OptOut
		zoneOf[m.Name] = m.Zone
		if pause == "" && zonePause[m.Zone] != "" {
			pause = zonePause[m.Zone]
		}
	}
	for _, c := range confirmed {
		switch {
		case in.Paused:
			c.Action, c.Reason, c.Paused = ActionHold, "failover paused by the operator", true
		case clusterPause != "":
			c.Action, c.Reason, c.Paused = ActionHold, clusterPause, true
		case zonePause[zoneOf[c.Target]] != "":
			// A zone losing most of its nodes points at that zone's
			// network or power: the other zones' failovers go on.
			c.Action, c.Reason, c.Paused = ActionHold, zonePause[zoneOf[c.Target]], true
		case optOut[c.Target]:
			c.Action, c.Reason = ActionHold, "node opted out of automatic failover"
		case c.Supersedes:
			// The node's failover is already under way and took its
			// token when it started: the rate limit is about how many
			// nodes are failed over, not how.
		case d.tokens < 1:
			c.Action, c.Reason = ActionHold, fmt.Sprintf("rate limit: %d failovers, then one per %s", d.cfg.Burst, d.cfg.Interval)
		default:
			d.tokens--
		}
		decisions = append(decisions, c)
	}
	sort.SliceStable(decisions, func(i, j int) bool { return decisions[i].Target < decisions[j].Target })
	return decisions, pause
}

func (d *Decider) refill(now time.Time) {
	if !d.last.IsZero() && now.After(d.last) {
		d.tokens += float64(now.Sub(d.last)) / float64(d.cfg.Interval)
		if max := float64(d.cfg.Burst); d.tokens > max {
			d.tokens = max
		}
	}
	d.last = now
}

// DeadFractionGuard reports why automatic failover must pause, or "":
// more than MaxDeadFraction of the known members dead (by gossip), in the
// whole cluster or in a zone of at least ZoneMinNodes (the first such zone
// by name). Every agent can compute it from its own view, so the alert
// fires even when no agent sees a majority and nobody coordinates.
//
// The cluster-wide guard never holds back a confirmed death by itself at a
// fraction of a half or more: a confirmation needs a strict majority of
// the known members alive to vote, so with more than half dead nothing is
// confirmed. It is there for the alert, for fractions below a half, and as
// the rule's statement, in case the quorum rule changes.
func DeadFractionGuard(cfg Config, members []Member) string {
	cluster, zones := deadFractionGuards(cfg, members)
	if cluster != "" {
		return cluster
	}
	names := make([]string, 0, len(zones))
	for z := range zones {
		names = append(names, z)
	}
	sort.Strings(names)
	if len(names) > 0 {
		return zones[names[0]]
	}
	return ""
}

// deadFractionGuards returns the cluster-wide reason to pause, or "", and
// the reason of each zone over the fraction.
func deadFractionGuards(cfg Config, members []Member) (cluster string, zones map[string]string) {
	type counts struct{ known, dead int }
	all := counts{}
	byZone := map[string]*counts{}
	for _, m := range members {
		if m.State == StateLeft {
			continue
		}
		z := byZone[m.Zone]
		if z == nil {
			z = &counts{}
			byZone[m.Zone] = z
		}
		all.known++
		z.known++
		if m.State == StateDead {
			all.dead++
			z.dead++
		}
	}
	over := func(c counts) bool { return c.known > 0 && float64(c.dead) > cfg.MaxDeadFraction*float64(c.known) }
	if over(all) {
		cluster = fmt.Sprintf("%d of %d nodes dead, more than %.0f%%", all.dead, all.known, 100*cfg.MaxDeadFraction)
	}
	zones = map[string]string{}
	for z, c := range byZone {
		if z != "" && c.known >= cfg.ZoneMinNodes && over(*c) {
			zones[z] = fmt.Sprintf("zone %s: %d of %d nodes dead, more than %.0f%%", z, c.dead, c.known, 100*cfg.MaxDeadFraction)
		}
	}
	return cluster, zones
}

// ConfirmedDead reports whether target is dead in gossip and a quorum of
// the members votes it dead, by the rules Decide starts a failover on. The
// coordinator uses it to take the Lease from a holder in that state rather
// than wait for the Lease to run out.
func (d *Decider) ConfirmedDead(in Input, target string) (Tally, bool) {
	for _, m := range in.Members {
		if m.Name == target {
			if m.State != StateDead {
				return Tally{Target: target}, false
			}
			t := count(m, in.Members, in.Ballots.about(target, in.Now.Add(-d.cfg.VoteMaxAge)))
			return t, t.Confirmed()
		}
	}
	return Tally{Target: target}, false
}
