package agreement

import (
	"time"

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

// underWay reports whether a coordinator said, within NoticeTTL, that the
// failover of target's current life is under way.
func (m *machine) underWay(target string, now time.Time) bool {
	n, ok := m.notices[target]
	if !ok || !now.Before(n.until) {
		return false
	}
	if n.TargetEpoch == 0 {
		return true
	}
	p, ok := m.world.peer(target)
	return ok && (p.Epoch == 0 || p.Epoch == n.TargetEpoch)
}

// sayUnderWay tells the group that the failover of target is under way,
// at most once per NoticeInterval per target.
func (m *machine) sayUnderWay(out *effects, target string, now time.Time) {
	if last, ok := m.sentNotice[target]; ok && now.Sub(last) < NoticeInterval {
		return
	}
	member, _ := m.world.peer(target)
	m.sentNotice[target] = now
	m.noticeSeq++
	n := failover.Notice{Coordinator: m.self, Target: target, TargetEpoch: member.Epoch,
		CoordinatorEpoch: m.epoch, Seq: m.noticeSeq}
	m.notices[target] = heardNotice{Notice: n, until: now.Add(NoticeTTL)}
	out.add(sendNotice{Notice: n})
}

// receiveNotice keeps a coordinator's notice. It is passed on when it is
// new: newer than the last one from the same coordinator about the same
// target, or from another coordinator.
func (m *machine) receiveNotice(out *effects, n failover.Notice, now time.Time) {
	if n.Coordinator == m.self {
		return // our own, relayed back
	}
	old, ok := m.notices[n.Target]
	if ok && old.Coordinator == n.Coordinator && !n.Newer(old.Notice) {
		out.count(counterNotices, "duplicate", 1)
		return
	}
	m.notices[n.Target] = heardNotice{Notice: n, until: now.Add(NoticeTTL)}
	out.count(counterNotices, "fresh", 1)
	out.add(relay{})
}
