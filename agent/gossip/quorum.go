package gossip

import (
	"context"
	"net"
	"slices"
	"sync"
	"sync/atomic"
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
// packet whose source is the member's gossip address. It is written for
// every packet received: a lookup by address under its own lock, then an
// atomic store. It holds one entry a member, by address, which is what
// packets are looked up by; the majority tests keep pointers to the
// entries of the expected group (see quorumCache) and read them without
// a lookup.
type contacts struct {
	mu     sync.Mutex
	byAddr map[string]*contact
}

// contact is one member's address entry.
type contact struct {
	name string       // the member at the address
	at   atomic.Int64 // Unix nanoseconds of the last packet; 0: none yet
}

func newContacts() *contacts {
	return &contacts{byAddr: map[string]*contact{}}
}

// heard records a packet from addr; addresses of no member are ignored, so
// the table stays as large as the membership.
func (c *contacts) heard(addr string, now time.Time) {
	c.mu.Lock()
	e := c.byAddr[addr]
	c.mu.Unlock()
	if e != nil {
		e.at.Store(now.UnixNano())
	}
}

// moved records a member's address. What was heard from its old address
// does not count for its new one.
func (c *contacts) moved(name, oldAddr, newAddr string) {
	c.mu.Lock()
	if e := c.byAddr[oldAddr]; e != nil && e.name == name {
		delete(c.byAddr, oldAddr)
	}
	c.byAddr[newAddr] = &contact{name: name}
	c.mu.Unlock()
}

// lookup returns the entry of the member at addr, nil if none.
func (c *contacts) lookup(addr string) *contact {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byAddr[addr]
}

// last returns when the entry was last heard from; zero for none.
func (e *contact) last() time.Time {
	if e == nil {
		return time.Time{}
	}
	if at := e.at.Load(); at != 0 {
		return time.Unix(0, at)
	}
	return time.Time{}
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
	now := m.clock.Now()
	v := QuorumView{Joined: m.joined.Load(), InTouch: 1}
	var others []*contact
	v.Expected, v.Live, others = m.quorumCounts()
	for _, c := range others {
		if t := c.last(); !t.IsZero() && now.Sub(t) < m.timing.IsolationTimeout {
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
	return names
}

// IsolationTimeout is the isolation timeout in force.
func (m *Membership) IsolationTimeout() time.Duration { return m.timing.IsolationTimeout }

// expected returns the names of the expected group, sorted, and how many
// of them gossip holds alive or suspect.
func (m *Membership) expected() (names []string, live int) {
	synced := m.nodes != nil && m.nodes.Synced()
	m.mu.Lock()
	defer m.mu.Unlock()
	names = make([]string, 0, len(m.members)+1)
	for name, mem := range m.members {
		if mem.State == StateLeft || (synced && !mem.Local && !m.nodes.Exists(name)) {
			continue
		}
		names = append(names, name)
		if mem.State == StateAlive || mem.State == StateSuspect {
			live++
		}
	}
	if _, ok := m.members[m.cfg.NodeName]; !ok {
		// Before memberlist has announced this agent to itself.
		names = append(names, m.cfg.NodeName)
		live++
	}
	if synced {
		for _, name := range m.nodes.AgentNodes() {
			if _, ok := m.members[name]; !ok && name != m.cfg.NodeName {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), live
}

// quorumCache is what the majority tests count, kept between changes of
// the table when there is no API's word (NodeSource) to filter by: Quorum
// runs every quarter isolation timeout in every agent, and listing the
// group, sorting it and looking every member's contact up each time was a
// fifth of the CPU of an idle group of a thousand members in the
// simulation, for an answer that changes only when the table does.
type quorumCache struct {
	gen            uint64 // tableGen when computed; 0: never
	expected, live int
	others         []*contact // of the expected members but this agent; nil: no address yet
}

// quorumCounts returns the size of the expected group, how many of it
// gossip holds alive or suspect, and the contact entries of the others
// (shared: callers must not modify the slice). It counts what expected
// lists.
func (m *Membership) quorumCounts() (expected, live int, others []*contact) {
	synced := m.nodes != nil && m.nodes.Synced()
	m.mu.Lock()
	defer m.mu.Unlock()
	c := &m.quorumCache
	if !synced && c.gen == m.tableGen {
		return c.expected, c.live, c.others
	}
	// A new slice: callers of the old answer may still be reading it.
	expected, live, others = m.countLocked(synced, make([]*contact, 0, len(m.members)))
	if !synced {
		c.gen, c.expected, c.live, c.others = m.tableGen, expected, live, others
	}
	return expected, live, others
}

// countLocked counts the expected group as expected lists it, appending
// the others' contact entries to buf.
func (m *Membership) countLocked(synced bool, buf []*contact) (expected, live int, others []*contact) {
	others = buf
	for name, mem := range m.members {
		if mem.State == StateLeft || (synced && !mem.Local && !m.nodes.Exists(name)) {
			continue
		}
		expected++
		if mem.State == StateAlive || mem.State == StateSuspect {
			live++
		}
		if name != m.cfg.NodeName {
			others = append(others, m.contacts.lookup(mem.Addr))
		}
	}
	if _, ok := m.members[m.cfg.NodeName]; !ok {
		// Before memberlist has announced this agent to itself.
		expected++
		live++
	}
	if synced {
		var extra map[string]bool
		for _, name := range m.nodes.AgentNodes() {
			if _, ok := m.members[name]; ok || name == m.cfg.NodeName || extra[name] {
				continue
			}
			if extra == nil {
				extra = map[string]bool{}
			}
			extra[name] = true
			expected++
			others = append(others, nil)
		}
	}
	return expected, live, others
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
	heard := make([]time.Time, len(names))
	m.mu.Lock()
	for i, name := range names {
		if mem, ok := m.members[name]; ok {
			heard[i] = m.contacts.lookup(mem.Addr).last()
		}
	}
	m.mu.Unlock()
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
