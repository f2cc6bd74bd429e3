package gossip

import (
	"context"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/haagent/haagent/internal/periodic"
)

// housekeeping expires suspicions that were refuted without our noticing,
// and refreshes the gauges, once a probe interval.
func (m *Membership) housekeeping(ctx context.Context) {
	// No jitter: this touches only the local table, so there is nothing
	// to spread across agents, and suspicionExpiry's margin counts in
	// probe intervals.
	err := periodic.Every(ctx, m.clock, m.timing.ProbeInterval, 0, func(context.Context) {
		m.expireSuspicions()
		if ml := m.ml.Load(); ml != nil {
			m.metrics.healthScore.Set(float64(ml.GetHealthScore()))
		}
	})
	if err != nil {
		m.log.Error("housekeeping not running", zap.Error(err))
	}
}

// suspicionExpiry is how long a suspicion may last before memberlist must
// have either declared the member dead or accepted its refutation: the
// longest Lifeguard timeout plus time for the verdict to reach us.
func (m *Membership) suspicionExpiry(n int) time.Duration {
	return suspicionMaxMult*suspicionTimeout(m.timing, n) + 2*m.timing.ProbeInterval + 5*m.timing.GossipInterval
}

func (m *Membership) expireSuspicions() {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	limit := m.suspicionExpiry(len(m.members))
	for name, at := range m.suspected {
		if now.Sub(at) < limit {
			continue
		}
		delete(m.suspected, name)
		if mem, ok := m.members[name]; ok && mem.State == StateSuspect {
			m.setStateLocked(mem, StateAlive, now)
		}
	}
}

// The methods below run on memberlist's goroutines, some with its locks
// held: they only touch our own table and never call back into memberlist.

func (m *Membership) onSuspect(name string) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mem, ok := m.members[name]
	if !ok || mem.State != StateAlive {
		return
	}
	m.suspected[name] = now
	m.setStateLocked(mem, StateSuspect, now)
}

func (m *Membership) onAck(name string) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mem, ok := m.members[name]
	if !ok {
		return
	}
	mem.LastAck = now
	if mem.State != StateSuspect {
		return
	}
	delete(m.suspected, name)
	m.setStateLocked(mem, StateAlive, now)
}

func (m *Membership) onJoin(n *memberlist.Node) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mem := m.upsertLocked(n)
	delete(m.suspected, n.Name)
	if !mem.Local {
		m.joined.Store(true)
	}
	if mem.State != StateAlive || mem.Since.IsZero() {
		m.setStateLocked(mem, StateAlive, now)
	}
}

func (m *Membership) onLeave(n *memberlist.Node) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mem := m.upsertLocked(n)
	delete(m.suspected, n.Name)
	state := StateDead
	if mem.Meta.Leaving {
		state = StateLeft
	}
	if mem.State != state {
		m.setStateLocked(mem, state, now)
	}
}

func (m *Membership) onUpdate(n *memberlist.Node) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	before := m.members[n.Name]
	var old Member
	if before != nil {
		old = *before
	}
	mem := m.upsertLocked(n)
	if before == nil || old.Meta != mem.Meta || old.Addr != mem.Addr {
		m.publishLocked(EventUpdate, mem, now)
	}
}

// upsertLocked creates or refreshes a member from memberlist's node,
// decoding its metadata. Undecodable metadata is counted and ignored: the
// member keeps its last good metadata.
func (m *Membership) upsertLocked(n *memberlist.Node) *Member {
	mem, ok := m.members[n.Name]
	if !ok {
		mem = &Member{Name: n.Name, Local: n.Name == m.cfg.NodeName, State: StateAlive}
		m.members[n.Name] = mem
		m.counts[StateAlive]++
		m.countsChangedLocked()
	}
	if addr := n.Address(); addr != mem.Addr {
		m.contacts.moved(n.Name, mem.Addr, addr)
		mem.Addr = addr
		m.tableGen++
	}
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		m.metrics.metaErrors.Inc()
		mem.MetaError = err.Error()
		m.log.Warn("ignored undecodable metadata", zap.String("peer", n.Name), zap.Error(err))
		return mem
	}
	mem.Meta, mem.MetaError = meta, ""
	return mem
}

func (m *Membership) setStateLocked(mem *Member, s State, now time.Time) {
	// The counts change by one member: a scan of the table here would make
	// a group of N members forming cost N³.
	m.counts[mem.State]--
	m.counts[s]++
	mem.State, mem.Since = s, now
	m.countsChangedLocked()
	m.publishLocked(EventType(s), mem, now)
	fields := []zap.Field{zap.String("peer", mem.Name), zap.String("state", s.String()), zap.String("addr", mem.Addr)}
	if s == StateAlive {
		m.log.Info("member alive", fields...)
	} else {
		m.log.Warn("member state changed", fields...)
	}
}

// countsChangedLocked publishes the state counts to the broadcast queue's
// size and the gauges, and marks the majority tests for recounting.
func (m *Membership) countsChangedLocked() {
	m.tableGen++
	m.alive.Store(int64(m.counts[StateAlive] + m.counts[StateSuspect]))
	for i, c := range m.counts {
		m.metrics.byState[i].Set(float64(c))
	}
}

func (m *Membership) publishLocked(t EventType, mem *Member, now time.Time) {
	if t >= 0 && int(t) < len(m.metrics.byEvent) {
		m.metrics.byEvent[t].Inc()
	} else {
		m.metrics.events.WithLabelValues(t.String()).Inc()
	}
	m.bus.publish(Event{Type: t, Member: *mem, Time: now})
}
