package agreement

import (
	"slices"
	"time"

	"github.com/haagent/haagent/agent/failover"
)

// precheckPeer starts the kubelet check of a member a peer suspects, when
// this agent holds it alive, and reports whether it started one.
func (m *machine) precheckPeer(out *effects, target string, now time.Time) bool {
	p, ok := m.world.peer(target)
	if !ok || p.Local || p.State != peerAlive {
		return false
	}
	return m.precheck(out, p, now)
}

// precheck checks the kubelet of a member gossip suspects, unless a check
// is running or one started within half of RecheckInterval: when the member
// is declared dead the answer is already there, and the connect timeout on
// a node that is gone does not delay the vote. The result only waits for
// that; it changes no opinion while the member is not dead.
//
// It reports whether it started one: whether the suspicion was news here.
func (m *machine) precheck(out *effects, p peer, now time.Time) bool {
	kc := m.kubelet[p.Name]
	recent := kc != nil && (kc.running || !kc.start.IsZero() && now.Sub(kc.start) <= m.cfg.RecheckInterval/2)
	if recent || !m.check(out, p, now) {
		return false
	}
	out.count(counterPrechecks, "", 1)
	return true
}

// applyFreshCheck sets the opinion of a member gossip just declared dead
// from the kubelet check made while it was suspect, when that check started
// within RecheckInterval, and reports whether it did. When a check is still
// running, it sets the opinion to suspect until that check ends and sets
// it, and reports true too. Otherwise the caller checks now.
func (m *machine) applyFreshCheck(out *effects, name string, now time.Time) bool {
	kc := m.kubelet[name]
	if kc == nil {
		return false
	}
	if kc.running {
		m.set(out, name, failover.OpinionSuspect, now)
		return true
	}
	if kc.start.IsZero() || now.Sub(kc.start) > m.cfg.RecheckInterval {
		return false
	}
	out.count(counterEarlyVerdicts, "", 1)
	m.verdict(out, name, kc.reachable, now)
	return true
}

// verdict sets the opinion of a member gossip holds dead from a kubelet
// check: an answer means only its agent is down (rule 1 of
// docs/design.md).
func (m *machine) verdict(out *effects, name string, reachable bool, now time.Time) {
	if reachable {
		m.set(out, name, failover.OpinionAgentDown, now)
	} else {
		m.set(out, name, failover.OpinionDead, now)
	}
}

// check starts a kubelet check of a member, unless one is running or Run
// is not, and reports whether it started one.
func (m *machine) check(out *effects, p peer, now time.Time) bool {
	kc := m.kubelet[p.Name]
	if kc == nil {
		kc = &kubeletCheck{}
		m.kubelet[p.Name] = kc
	}
	if kc.running || !m.running {
		return false
	}
	m.checkID++
	kc.running, kc.id, kc.pending = true, m.checkID, now
	out.add(startCheck{Target: p.Name, Addr: p.Addr, ID: kc.id})
	return true
}

// checkDone keeps the result of a check; when gossip holds the member dead
// by then, the result sets the opinion.
func (m *machine) checkDone(out *effects, ev checkDone, now time.Time) {
	kc := m.kubelet[ev.Target]
	if kc == nil || !kc.running || kc.id != ev.ID {
		// Dropped (the member came back or left) while it ran: moot.
		return
	}
	kc.running = false
	if !ev.Conclusive {
		return
	}
	kc.start, kc.reachable = kc.pending, ev.Reachable
	if p, ok := m.world.peer(ev.Target); !ok || p.State != peerDead {
		return // still only suspect (the result waits), back, or gone
	}
	m.verdict(out, ev.Target, ev.Reachable, now)
}

// dropCheck forgets the checks of a member, ending the one running.
func (m *machine) dropCheck(out *effects, name string) {
	kc := m.kubelet[name]
	if kc == nil {
		return
	}
	if kc.running {
		out.add(cancelCheck{Target: name, ID: kc.id})
	}
	delete(m.kubelet, name)
}

// recheck checks again every member that gossip holds dead, whose result
// may change its opinion, or suspect (this agent's probe failed), whose
// result must stay fresh for when it is declared dead: gossip's suspicion
// can outlast RecheckInterval. Only a member with a non-alive opinion can
// be either (its suspect or dead event set the opinion), so the others are
// not looked up. It also drops the old checks of members gossip holds
// alive, which a peer's suspicion caused.
func (m *machine) recheck(out *effects, now time.Time) {
	var names []string
	for name, o := range m.opinions {
		if o.op != failover.OpinionAlive {
			names = append(names, name)
		}
	}
	for name, kc := range m.kubelet {
		if o := m.opinions[name]; (o == nil || o.op == failover.OpinionAlive) && !kc.running && now.Sub(kc.start) > m.cfg.RecheckInterval {
			delete(m.kubelet, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		p, ok := m.world.peer(name)
		if !ok || p.Local {
			continue
		}
		switch p.State {
		case peerDead:
			m.check(out, p, now)
		case peerSuspect:
			m.precheck(out, p, now)
		}
	}
}
