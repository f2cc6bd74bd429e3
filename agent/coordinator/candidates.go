package coordinator

import (
	"context"
	"hash/fnv"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/internal/periodic"
)

// escalateAfter is how many Lease durations may pass with no coordinator
// advertised in gossip before every agent that reaches the API server
// campaigns, whatever the ranking says: the ranked candidates may all be
// unable to reach the API while others can.
const escalateAfter = 3

// candidate reports whether this agent campaigns for the Lease: it holds
// it; or no other alive member advertises that it does, and this agent is
// among the first --coordinator-candidates alive members of a ranking
// every agent computes alike from its gossip view (ready members first,
// then by a hash of the name, which spreads the role over the cluster
// rather than over the first names in order); or no member has advertised
// the Lease for escalateAfter Lease durations while this agent reaches the
// API server. So while a coordinator is alive in gossip it alone reads and
// renews the Lease; when it dies, leaves, or stops leading (and so stops
// advertising), the ranked candidates campaign at once, and one whose
// node a quorum confirms dead is replaced without waiting for its Lease
// to run out (takeFromDeadHolder). Views differ for a moment after a
// change; that costs at most a few more or fewer reads of the Lease,
// never safety, which the Lease itself keeps.
func (c *Coordinator) candidate() bool {
	campaign, _ := c.role()
	return campaign
}

// standby reports whether this agent is a ranked candidate that does not
// campaign because another alive member advertises the Lease: it then
// watches the Lease (see standby.go).
func (c *Coordinator) standby() bool {
	_, standby := c.role()
	return standby
}

// role is candidate and standby in one pass over the members.
func (c *Coordinator) role() (campaign, standby bool) {
	k := c.cfg.Lease.Candidates
	if k <= 0 || c.leading.Load() {
		return true, false
	}
	var alive []gossip.Member
	advertised := false
	self := c.d.Gossip.LocalName()
	for _, m := range c.d.Gossip.Members() {
		if m.State != gossip.StateAlive {
			continue
		}
		alive = append(alive, m)
		advertised = advertised || (m.Meta.Coordinator && m.Name != self)
	}
	now := c.clock.Now()
	c.mu.Lock()
	switch {
	case advertised:
		c.noHolderSince = time.Time{}
	case c.noHolderSince.IsZero():
		c.noHolderSince = now
	}
	leaderless := !c.noHolderSince.IsZero() && now.Sub(c.noHolderSince) >= escalateAfter*c.cfg.Lease.Duration
	c.mu.Unlock()
	if leaderless && (c.d.APIReachable == nil || c.d.APIReachable()) {
		if !c.escalated.Swap(true) {
			c.log.Warn("no coordinator advertised in gossip: campaigning although not a ranked candidate",
				zap.Duration("for", escalateAfter*c.cfg.Lease.Duration))
		}
		return true, false
	}
	c.escalated.Store(false)
	RankCandidates(alive)
	for i := 0; i < len(alive) && i < k; i++ {
		if alive[i].Name == self {
			return !advertised, advertised
		}
	}
	return false, false
}

// RankCandidates sorts members in the order every agent ranks them for
// the Lease: the first --coordinator-candidates alive ones campaign (see
// candidate). A simulation that runs a coordinator on a few members only
// picks them with it.
func RankCandidates(members []gossip.Member) {
	sort.Slice(members, func(i, j int) bool { return candidateLess(members[i], members[j]) })
}

// candidateLess ranks members for candidacy: ready first, then by hash.
func candidateLess(a, b gossip.Member) bool {
	if a.Meta.Ready != b.Meta.Ready {
		return a.Meta.Ready
	}
	ha, hb := nameHash(a.Name), nameHash(b.Name)
	if ha != hb {
		return ha < hb
	}
	return a.Name < b.Name
}

func nameHash(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// advertised is the Lease holder as gossip tells it: an alive member that
// says it holds the Lease (the first by name, in the moment of a handover
// when two do). Votes go there from agents that do not read the Lease.
func (c *Coordinator) advertised() string {
	var out string
	for _, m := range c.d.Gossip.Members() {
		if m.State == gossip.StateAlive && m.Meta.Coordinator && (out == "" || m.Name < out) {
			out = m.Name
		}
	}
	return out
}

// advertise keeps this agent's gossip metadata saying whether it holds the
// Lease, until ctx ends. It runs apart from the leader election's
// callbacks: publishing metadata waits on gossip, and stepping down must
// not.
func (c *Coordinator) advertise(ctx context.Context) error {
	if c.d.Advertiser == nil {
		return nil
	}
	published := false
	// No jitter: a 100 ms poll of this agent's own flag.
	return periodic.Every(ctx, c.clock, 100*time.Millisecond, 0, func(context.Context) {
		if leading := c.leading.Load(); leading != published {
			if err := c.d.Advertiser.SetCoordinator(leading); err != nil {
				c.log.Warn("advertise the coordinator in gossip", zap.Error(err))
			} else {
				published = leading
			}
		}
	})
}
