package agreement

import (
	"context"
	"net"
	"time"

	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
)

// kubeletCheck is the state of the kubelet checks of one member.
type kubeletCheck struct {
	running bool
	// start and reachable are of the newest conclusive check: when it
	// started (zero: none yet) and whether the kubelet answered.
	start     time.Time
	reachable bool
}

// precheckPeer starts the kubelet check of a member a peer suspects, when
// this agent holds it alive and Run is running, and reports whether it
// started one.
func (a *Agreement) precheckPeer(target string) bool {
	m, ok := a.g.Member(target)
	if !ok || m.Local || m.State != gossip.StateAlive {
		return false
	}
	a.mu.Lock()
	ctx := a.runCtx
	a.mu.Unlock()
	return ctx != nil && a.precheck(ctx, m)
}

// precheck checks the kubelet of a member gossip suspects, unless a check
// is running or one started within half of RecheckInterval: when the member
// is declared dead the answer is already there, and the connect timeout on
// a node that is gone does not delay the vote. The result only waits for
// that; it changes no opinion while the member is not dead.
//
// It reports whether it started one: whether the suspicion was news here.
func (a *Agreement) precheck(ctx context.Context, m gossip.Member) bool {
	a.mu.Lock()
	kc := a.kubelet[m.Name]
	recent := kc != nil && (kc.running || !kc.start.IsZero() && a.clock.Since(kc.start) <= a.cfg.RecheckInterval/2)
	a.mu.Unlock()
	if recent || !a.check(ctx, m) {
		return false
	}
	a.metrics.prechecks.Inc()
	return true
}

// applyFreshCheck sets the opinion of a member gossip just declared dead
// from the kubelet check made while it was suspect, when that check started
// within RecheckInterval, and reports whether it did. When a check is still
// running, it sets the opinion to suspect until that check ends and sets
// it, and reports true too. Otherwise the caller checks now.
func (a *Agreement) applyFreshCheck(name string) bool {
	a.mu.Lock()
	kc := a.kubelet[name]
	if kc == nil {
		a.mu.Unlock()
		return false
	}
	running, start, reachable := kc.running, kc.start, kc.reachable
	a.mu.Unlock()
	if running {
		a.set(name, failover.OpinionSuspect)
		return true
	}
	if start.IsZero() || a.clock.Since(start) > a.cfg.RecheckInterval {
		return false
	}
	a.metrics.earlyVerdicts.Inc()
	a.verdict(name, reachable)
	return true
}

// verdict sets the opinion of a member gossip holds dead from a kubelet
// check: an answer means only its agent is down.
func (a *Agreement) verdict(name string, reachable bool) {
	if reachable {
		a.set(name, failover.OpinionAgentDown)
	} else {
		a.set(name, failover.OpinionDead)
	}
}

// check runs a kubelet check of a member in the background, unless one is
// running, and keeps its result; when gossip holds the member dead by the
// time the check ends, the result sets the opinion. It reports whether it
// started one.
func (a *Agreement) check(ctx context.Context, m gossip.Member) bool {
	a.mu.Lock()
	kc := a.kubelet[m.Name]
	if kc == nil {
		kc = &kubeletCheck{}
		a.kubelet[m.Name] = kc
	}
	if kc.running || a.stopped || ctx.Err() != nil {
		a.mu.Unlock()
		return false
	}
	kc.running = true
	a.checks.Add(1) // under mu: Run's exit clears runCtx under mu, then waits
	a.mu.Unlock()
	addr := a.kubeletAddr(m)
	go func() {
		defer a.checks.Done()
		start := a.clock.Now()
		res := a.peer.Check(ctx, addr)
		conclusive := ctx.Err() == nil && !res.Inconclusive
		a.mu.Lock()
		// kc may have been dropped (the member came back or left) while
		// this check ran; then its result is moot.
		kc.running = false
		current := a.kubelet[m.Name] == kc
		if conclusive {
			kc.start, kc.reachable = start, res.Reachable
		}
		a.mu.Unlock()
		if !conclusive || !current || !a.stillDead(m.Name) {
			return // still only suspect (the result waits), back, or gone
		}
		a.verdict(m.Name, res.Reachable)
	}()
	return true
}

func (a *Agreement) kubeletAddr(m gossip.Member) string {
	if a.addr != nil {
		if ip, ok := a.addr(m.Name); ok {
			return ip
		}
	}
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil {
		return m.Addr
	}
	return host
}

func (a *Agreement) stillDead(name string) bool {
	m, ok := a.g.Member(name)
	return ok && m.State == gossip.StateDead
}

// recheck checks again every member that gossip holds dead, whose result
// may change its opinion, or suspect (this agent's probe failed), whose
// result must stay fresh for when it is declared dead: gossip's suspicion
// can outlast RecheckInterval. Only a member with a non-alive opinion can
// be either (its suspect or dead event set the opinion), so the others are
// not looked up. It also drops the old checks of members gossip holds
// alive, which a peer's suspicion caused.
func (a *Agreement) recheck(ctx context.Context) {
	var names []string
	a.mu.Lock()
	for name, o := range a.opinions {
		if o.op != failover.OpinionAlive {
			names = append(names, name)
		}
	}
	for name, kc := range a.kubelet {
		if o := a.opinions[name]; (o == nil || o.op == failover.OpinionAlive) && !kc.running && a.clock.Since(kc.start) > a.cfg.RecheckInterval {
			delete(a.kubelet, name)
		}
	}
	a.mu.Unlock()
	for _, name := range names {
		m, ok := a.g.Member(name)
		if !ok || m.Local {
			continue
		}
		switch m.State {
		case gossip.StateDead:
			a.check(ctx, m)
		case gossip.StateSuspect:
			a.precheck(ctx, m)
		}
	}
}
