package agreement

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/failover"
)

// launch is a kubelet check to run, with its context.
type launch struct {
	check startCheck
	ctx   context.Context
}

// step steps the core with ev and carries out its effects; it returns
// them. The core steps under the lock, in the order of the calls; the
// effects are carried out after it, as the sends were before the core
// existed: a send must not hold up the next event.
func (a *Agreement) step(ev event) []effect {
	return a.stepWith(func(now time.Time) []effect { return a.core.Step(ev, now) })
}

// stepWith runs fn on the core under the lock and carries out the effects
// it returns.
func (a *Agreement) stepWith(fn func(now time.Time) []effect) []effect {
	now := a.clock.Now()
	a.mu.Lock()
	effs := fn(now)
	var launches []launch
	for _, e := range effs {
		switch e := e.(type) {
		case startCheck:
			// Under mu: Run's exit steps stopped under mu, then waits.
			ctx, cancel := context.WithCancel(a.runCtx)
			a.cancels[e.ID] = cancel
			a.checks.Add(1)
			launches = append(launches, launch{e, ctx})
		case cancelCheck:
			if cancel := a.cancels[e.ID]; cancel != nil {
				cancel()
				delete(a.cancels, e.ID)
			}
		}
	}
	if counts := a.core.opinionCounts(); counts != a.gauges {
		a.gauges = counts
		for _, op := range []failover.Opinion{failover.OpinionAlive, failover.OpinionSuspect, failover.OpinionDead, failover.OpinionAgentDown} {
			a.metrics.opinions.WithLabelValues(opinionLabel(op)).Set(float64(counts[op]))
		}
	}
	a.mu.Unlock()
	for _, e := range effs {
		a.apply(e)
	}
	for _, l := range launches {
		go a.runCheck(l)
	}
	return effs
}

func (a *Agreement) apply(e effect) {
	switch e := e.(type) {
	case sendVote:
		a.sendVote(e)
	case sendNotice:
		n := e.Notice
		if err := a.g.Broadcast(NoticeKind, broadcastKey(n.Coordinator, n.Target), n.Encode()); err != nil {
			a.log.Error("broadcast failover notice", zap.String("node", n.Target), zap.Error(err))
			return
		}
		a.metrics.noticesSent.Inc()
	case count:
		a.metrics.add(e)
	case logLine:
		fields := make([]zap.Field, 0, len(e.Fields)/2)
		for i := 0; i+1 < len(e.Fields); i += 2 {
			fields = append(fields, zap.String(e.Fields[i], e.Fields[i+1]))
		}
		a.log.Info(e.Msg, fields...)
	}
}

func (a *Agreement) sendVote(e sendVote) {
	v := e.Vote
	key, payload := broadcastKey(v.Voter, v.Target), v.Encode()
	if err := a.g.Broadcast(VoteKind, key, payload); err != nil {
		a.log.Error("broadcast vote", zap.String("node", v.Target), zap.Error(err))
		return
	}
	a.metrics.sent.WithLabelValues(opinionLabel(v.Opinion)).Inc()
	if e.To == "" {
		return
	}
	if err := a.g.SendTo(e.To, VoteKind, key, payload); err != nil {
		a.metrics.direct.WithLabelValues("failure").Inc()
		a.log.Debug("send vote to the coordinator", zap.String("coordinator", e.To), zap.Error(err))
		return
	}
	a.metrics.direct.WithLabelValues("success").Inc()
}

// runCheck checks a kubelet and steps the core with the result.
func (a *Agreement) runCheck(l launch) {
	defer a.checks.Done()
	res := a.peer.Check(l.ctx, a.kubeletAddr(l.check.Target, l.check.Addr))
	conclusive := l.ctx.Err() == nil && !res.Inconclusive
	a.mu.Lock()
	if cancel := a.cancels[l.check.ID]; cancel != nil {
		cancel()
		delete(a.cancels, l.check.ID)
	}
	a.mu.Unlock()
	a.step(checkDone{Target: l.check.Target, ID: l.check.ID, Reachable: res.Reachable, Conclusive: conclusive})
}

func (a *Agreement) kubeletAddr(name, gossipAddr string) string {
	if a.addr != nil {
		if ip, ok := a.addr(name); ok {
			return ip
		}
	}
	host, _, err := net.SplitHostPort(gossipAddr)
	if err != nil {
		return gossipAddr
	}
	return host
}

// broadcastKey names a voter's vote (or a coordinator's notice) about a
// target in the gossip queue, so a newer one replaces an older one still
// queued. The queue tells votes and notices apart by their kind. Names of
// up to 253 bytes each make keys longer than the 255 bytes gossip takes:
// those are hashed.
func broadcastKey(voter, target string) string {
	k := voter + "/" + target
	if len(k) > 255 {
		sum := sha256.Sum256([]byte(k))
		k = hex.EncodeToString(sum[:])
	}
	return k
}
