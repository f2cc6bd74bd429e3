package gossip

import (
	"context"
	"net"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/haagent/haagent/internal/periodic"
)

// This file holds the two majority tests that safety rests on, and what
// they count.
//
// The expected group is the denominator of both. It is every member this
// agent has seen that has not left gracefully, and every Node on which an
// agent has run (NodeSource.AgentNodes), less the Nodes the API says no
// longer exist. So:
//   - an agent that restarts alone on a cut-off node still counts the group
//     from the cached Node list, or, with no API at all, has joined nobody:
//     an agent that has never seen another member alive is never in a
//     majority, whatever it counts;
//   - dead members stay in the denominator until their Node is deleted:
//     only the API's word (a Node gone) or the member's own (a graceful
//     leave) shrinks the group. A minority cut off from the majority cannot
//     shrink its denominator by itself: it hears neither the majority's
//     leaves nor, while it cannot reach the API, of deletions, and the
//     cached Node list it keeps still names the majority's Nodes.

// NodeSource is the Kubernetes API's word on the group, read from a cache
// that outlives an API outage.
type NodeSource interface {
	// Synced reports whether the Node list has arrived at least once.
	Synced() bool
	// Exists reports whether a Node of that name exists in the last list.
	Exists(name string) bool
	// AgentNodes lists the Nodes on which a haagent agent has run.
	AgentNodes() []string
}

// contacts records when each member was last heard from directly: a
// packet whose source is the member's gossip address. It has its own lock:
// it is written for every packet received. It is keyed by address, one
// entry a member, which is what every packet is looked up by: a table by
// address and another by name cost twice the entries, which a process
// that plays thousands of members (the simulation) feels as N².
type contacts struct {
	mu   sync.Mutex
	last map[string]contact // gossip address -> its member, last packet
}

type contact struct {
	name string
	at   int64 // Unix nanoseconds of the last packet; 0: none yet
}

func newContacts() *contacts {
	return &contacts{last: map[string]contact{}}
}

// heard records a packet from addr; addresses of no member are ignored, so
// the table stays as large as the membership.
func (c *contacts) heard(addr string, now time.Time) {
	c.mu.Lock()
	if e, ok := c.last[addr]; ok {
		e.at = now.UnixNano()
		c.last[addr] = e
	}
	c.mu.Unlock()
}

// moved records a member's address. What was heard from its old address
// does not count for its new one.
func (c *contacts) moved(name, oldAddr, newAddr string) {
	c.mu.Lock()
	if c.last[oldAddr].name == name {
		delete(c.last, oldAddr)
	}
	c.last[newAddr] = contact{name: name}
	c.mu.Unlock()
}

// lastHeard returns when each of the members at addrs was last heard from
// (zero: never, or no such member).
func (c *contacts) lastHeard(addrs []string) []time.Time {
	out := make([]time.Time, len(addrs))
	c.mu.Lock()
	for i, a := range addrs {
		if e := c.last[a]; e.at != 0 {
			out[i] = time.Unix(0, e.at)
		}
	}
	c.mu.Unlock()
	return out
}

// lastHeard returns when each of names was last heard from directly.
func (m *Membership) lastHeard(names []string) []time.Time {
	addrs := make([]string, len(names))
	m.mu.Lock()
	for i, n := range names {
		if mem, ok := m.members[n]; ok {
			addrs[i] = mem.Addr
		}
	}
	m.mu.Unlock()
	return m.contacts.lastHeard(addrs)
}

// QuorumView is what this agent knows of its group, for the majority tests
// and for people.
type QuorumView struct {
	// Joined is whether this agent has ever seen another member alive.
	Joined bool `json:"joined"`
	// Expected is the size of the expected group, this agent included.
	Expected int `json:"expected"`
	// Live is how many of them gossip holds alive or suspect.
	Live int `json:"live"`
	// InTouch is how many of them this agent heard from directly within
	// the isolation timeout, itself included.
	InTouch int `json:"inTouch"`
}

// SeesMajority reports whether the gossip view holds a strict majority of
// the expected group alive or suspect.
func (v QuorumView) SeesMajority() bool { return v.Joined && v.Live > v.Expected/2 }

// HasContact reports whether a strict majority of the expected group was
// heard from directly within the isolation timeout. It does not wait for
// memberlist's suspicion timers, which Lifeguard stretches on a member that
// hears nothing: a cut-off agent loses it within the isolation timeout of
// the cut.
func (v QuorumView) HasContact() bool { return v.Joined && v.InTouch > v.Expected/2 }

// Quorum returns this agent's view of its group now.
func (m *Membership) Quorum() QuorumView {
	names, live := m.expected()
	v := QuorumView{Joined: m.joined.Load(), Expected: len(names), Live: live, InTouch: 1}
	now := m.clock.Now()
	for i, t := range m.lastHeard(names) {
		if names[i] != m.cfg.NodeName && !t.IsZero() && now.Sub(t) < m.timing.IsolationTimeout {
			v.InTouch++
		}
	}
	m.metrics.expected.Set(float64(v.Expected))
	m.metrics.inTouch.Set(float64(v.InTouch))
	return v
}

// SeesMajority reports whether this agent's gossip view holds a strict
// majority of the expected group alive or suspect, itself included. An
// agent that has joined nobody never does.
func (m *Membership) SeesMajority() bool { return m.Quorum().SeesMajority() }

// InTouch reports whether this agent heard directly from a strict majority
// of the expected group within the isolation timeout. An agent that has
// joined nobody never is. Asking it makes this agent ping the peers it
// heard from least, for the next two isolation timeouts, so that the
// answer stays true while it can be.
func (m *Membership) InTouch() bool {
	m.contactWanted.Store(m.clock.Now().UnixNano())
	return m.Quorum().HasContact()
}

// contactWantedNow reports whether InTouch was asked within the last two
// isolation timeouts.
func (m *Membership) contactWantedNow() bool {
	at := m.contactWanted.Load()
	return at != 0 && m.clock.Now().Sub(time.Unix(0, at)) < 2*m.timing.IsolationTimeout
}

// ExpectedNames lists the expected group, sorted, this agent included.
func (m *Membership) ExpectedNames() []string {
	names, _ := m.expected()
	return slices.Clone(names)
}

// IsolationTimeout is the isolation timeout in force.
func (m *Membership) IsolationTimeout() time.Duration { return m.timing.IsolationTimeout }

// expectedCache is the last answer of expected() and the table generation
// it was computed at. Quorum runs every quarter isolation timeout in every
// agent, and the coordinator asks on every tick: sorting N names each time
// was a quarter of the CPU of an idle group of a thousand members in the
// simulation, for an answer that changes only when the table does.
type expectedCache struct {
	gen   uint64   // tableGen when names was computed; 0: none yet
	names []string // sorted; shared: callers must not modify it
	live  int
	// all is every member's name, sorted, at gen: what the answer with
	// the API's word is filtered from without sorting again.
	all []string
}

// expected returns the names of the expected group, sorted, and how many
// of them gossip holds alive or suspect. The slice is shared: callers
// must not modify it.
func (m *Membership) expected() (names []string, live int) {
	synced := m.nodes != nil && m.nodes.Synced()
	m.mu.Lock()
	defer m.mu.Unlock()
	c := &m.expectedCache
	if c.gen != m.tableGen {
		c.all = c.all[:0]
		for name := range m.members {
			c.all = append(c.all, name)
		}
		if _, ok := m.members[m.cfg.NodeName]; !ok {
			// Before memberlist has announced this agent to itself.
			c.all = append(c.all, m.cfg.NodeName)
		}
		slices.Sort(c.all)
		c.names, c.live = m.expectedLocked(c.all, false)
		c.gen = m.tableGen
	}
	if !synced {
		return c.names, c.live
	}
	// The API's word changes without the table changing: filter again,
	// in order, and sort only the Nodes gossip has never seen, if any.
	return m.expectedLocked(c.all, true)
}

// expectedLocked filters all (every member's name and this agent's,
// sorted) down to the expected group, adding, with the API's word, the
// Nodes an agent has run on that gossip has not seen.
func (m *Membership) expectedLocked(all []string, synced bool) (names []string, live int) {
	names = make([]string, 0, len(all))
	for _, name := range all {
		mem, ok := m.members[name]
		if !ok { // this agent, not yet announced to itself
			names = append(names, name)
			live++
			continue
		}
		if mem.State == StateLeft || (synced && !mem.Local && !m.nodes.Exists(name)) {
			continue
		}
		names = append(names, name)
		if mem.State == StateAlive || mem.State == StateSuspect {
			live++
		}
	}
	if !synced {
		return names, live
	}
	n := len(names)
	for _, name := range m.nodes.AgentNodes() {
		if _, ok := m.members[name]; !ok && name != m.cfg.NodeName {
			names = append(names, name)
		}
	}
	if len(names) > n {
		slices.Sort(names)
		names = slices.Compact(names)
	}
	return names, live
}

// keepInTouch pings, every quarter of the isolation timeout while InTouch
// is being asked, the members of the expected group heard from least
// recently, when fewer than a majority were heard from within half the
// timeout: SWIM alone reaches about two peers a probe interval, too few to
// hear from a majority in time in a larger group. A member with nothing to
// add (a healthy small group) sends nothing more.
func (m *Membership) keepInTouch(ctx context.Context) {
	wasInTouch := false
	// No jitter: the period is a fixed share of the isolation timeout, the
	// deadline within which a majority must be heard from, and the fence
	// bound (coordinator.FenceTerms) is computed from that timeout.
	err := periodic.Every(ctx, m.clock, m.timing.IsolationTimeout/4, 0, func(context.Context) {
		var targets []Member
		if m.contactWantedNow() {
			targets = m.pingTargets()
		}
		var wg sync.WaitGroup
		for _, mem := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.ping(mem)
			}()
		}
		wg.Wait()
		v := m.Quorum()
		if v.HasContact() != wasInTouch {
			wasInTouch = v.HasContact()
			fields := []zap.Field{zap.Int("in_touch", v.InTouch), zap.Int("expected", v.Expected), zap.Bool("joined", v.Joined),
				zap.Duration("isolation_timeout", m.timing.IsolationTimeout)}
			if wasInTouch {
				m.log.Info("in touch with a majority of the group", fields...)
			} else {
				m.log.Warn("no packet from a majority of the group within the isolation timeout", fields...)
			}
		}
	})
	if err != nil {
		m.log.Error("keeping in touch with the group not running", zap.Error(err))
	}
}

// pingTargets picks the members to ping this round.
func (m *Membership) pingTargets() []Member {
	names, _ := m.expected()
	quorum := len(names)/2 + 1
	now := m.clock.Now()
	fresh := 1
	type cand struct {
		mem  Member
		last time.Time
	}
	var stale []cand
	heard := m.lastHeard(names)
	for i, name := range names {
		if name == m.cfg.NodeName {
			continue
		}
		if !heard[i].IsZero() && now.Sub(heard[i]) < m.timing.IsolationTimeout/2 {
			fresh++
			continue
		}
		mem, ok := m.Member(name)
		if !ok || mem.Addr == "" || mem.State == StateLeft {
			continue // known from the API only: no address to ping
		}
		stale = append(stale, cand{mem, heard[i]})
	}
	if fresh >= quorum {
		return nil
	}
	slices.SortFunc(stale, func(a, b cand) int { return a.last.Compare(b.last) })
	// A few more than the shortfall: some of them will not answer. Rounds
	// run only while someone asks InTouch (the fencer does, while the API
	// server is away): hearing from a majority of a group of N within the
	// timeout costs each member up to N/2 pings a timeout, which a cluster
	// with its API server does not need to pay.
	n := min(len(stale), quorum-fresh+2)
	out := make([]Member, n)
	for i := range out {
		out[i] = stale[i].mem
	}
	return out
}

// ping sends one memberlist ping; its ack, a packet from the member's
// address, is what counts as contact.
func (m *Membership) ping(mem Member) {
	ml := m.ml.Load()
	if ml == nil {
		return
	}
	addr, err := net.ResolveUDPAddr("udp", mem.Addr)
	if err != nil {
		m.metrics.isolationPings.WithLabelValues("error").Inc()
		return
	}
	if _, err := ml.Ping(mem.Name, addr); err != nil {
		m.metrics.isolationPings.WithLabelValues("no_answer").Inc()
		return
	}
	m.metrics.isolationPings.WithLabelValues("answered").Inc()
}
