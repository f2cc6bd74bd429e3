package agreement

import (
	"time"

	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/failover"
)

// A coordinator sends the notice of a failover under way again every
// NoticeInterval while the failover lasts, and a voter believes it for
// NoticeTTL after it last heard it: a lost notice or two cost nothing, and
// a coordinator that dies is forgotten in half a minute.
const (
	NoticeInterval = 10 * time.Second
	NoticeTTL      = 3 * NoticeInterval
)

// heardNotice is the newest failover notice about a target and until when
// it holds.
type heardNotice struct {
	failover.Notice
	until time.Time
}

// underWay reports whether a coordinator said, within NoticeTTL, that the
// failover of target's current life is under way.
func (a *Agreement) underWay(target string) bool {
	now := a.clock.Now()
	a.mu.Lock()
	n, ok := a.notices[target]
	a.mu.Unlock()
	if !ok || !now.Before(n.until) {
		return false
	}
	if n.TargetEpoch == 0 {
		return true
	}
	m, ok := a.g.Member(target)
	return ok && (m.Meta.StartEpoch == 0 || m.Meta.StartEpoch == n.TargetEpoch)
}

// UnderWay tells the group that the failover of target is under way, so
// that voters stop repeating their dead votes about it. The coordinator
// calls it on every pass for every failover it carries; the notice goes
// out at most once per NoticeInterval per target.
func (a *Agreement) UnderWay(target string) {
	member, _ := a.g.Member(target)
	now := a.clock.Now()
	a.mu.Lock()
	if last, ok := a.sentNotice[target]; ok && now.Sub(last) < NoticeInterval {
		a.mu.Unlock()
		return
	}
	a.sentNotice[target] = now
	a.noticeSeq++
	n := failover.Notice{Coordinator: a.g.LocalName(), Target: target, TargetEpoch: member.Meta.StartEpoch,
		CoordinatorEpoch: a.epoch, Seq: a.noticeSeq}
	a.notices[target] = heardNotice{Notice: n, until: now.Add(NoticeTTL)}
	a.mu.Unlock()
	if err := a.g.Broadcast(NoticeKind, broadcastKey(n.Coordinator, n.Target), n.Encode()); err != nil {
		a.log.Error("broadcast failover notice", zap.String("node", target), zap.Error(err))
		return
	}
	a.metrics.noticesSent.Inc()
}

// receiveNotice handles a failover notice from gossip, on memberlist's
// goroutine. A notice is passed on when it is new: newer than the last one
// from the same coordinator about the same target, or from another
// coordinator.
func (a *Agreement) receiveNotice(payload []byte) (bool, error) {
	n, err := failover.DecodeNotice(payload)
	if err != nil {
		return false, err
	}
	if n.Coordinator == a.g.LocalName() {
		return false, nil // our own, relayed back
	}
	now := a.clock.Now()
	a.mu.Lock()
	old, ok := a.notices[n.Target]
	fresh := !ok || old.Coordinator != n.Coordinator || n.Newer(old.Notice)
	if fresh {
		a.notices[n.Target] = heardNotice{Notice: n, until: now.Add(NoticeTTL)}
	}
	a.mu.Unlock()
	if fresh {
		a.metrics.notices.WithLabelValues("fresh").Inc()
	} else {
		a.metrics.notices.WithLabelValues("duplicate").Inc()
	}
	return fresh, nil
}
