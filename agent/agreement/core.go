package agreement

import (
	"time"

	"github.com/haagent/haagent/agent/failover"
)

// machine is the deterministic core of the agreement: this agent's
// opinions, its kubelet checks as state (not as goroutines), the notices
// heard and sent, and the ballots. It is stepped by events and answers
// with effects for the driver (Agreement) to carry out; it starts no
// goroutine, takes no lock, reads no clock and does no I/O. The one thing
// it reads from outside is the membership table, through world, as
// raft's core reads its Storage: lookups of the current entry and of the
// Lease holder, which the driver answers from gossip and the coordinator
// and the scenario tests from a map.
type machine struct {
	cfg   Config
	self  string
	world world
	// running is set between started and stopped: kubelet checks start
	// only then, since the driver runs them under Run's context.
	running bool
	epoch   int64
	seq     uint64

	opinions map[string]*opinion
	// counts are the opinions by value, kept as they change: counting the
	// map on every change would cost O(N²) per agent as a group forms.
	counts  [failover.OpinionAgentDown + 1]int
	ballots *failover.Ballots
	// kubelet holds the kubelet checks by member, made once gossip
	// suspects a member (a peer's suspect vote is enough) or holds it dead.
	kubelet map[string]*kubeletCheck
	checkID uint64
	// notices are the failovers under way, by target, as the coordinator
	// said; sentNotice is when this agent, as coordinator, last said so.
	notices    map[string]heardNotice
	sentNotice map[string]time.Time
	noticeSeq  uint64
}

// peerState is a member's state as gossip holds it; the core's own copy
// of gossip.State, converted at the edge.
type peerState uint8

const (
	peerAlive peerState = iota + 1
	peerSuspect
	peerDead
	peerLeft
)

// peer is what the core needs of a membership entry.
type peer struct {
	Name string
	// Addr is the member's gossip address, host:port.
	Addr  string
	State peerState
	// Epoch is the member's agent start epoch, 0 if unknown.
	Epoch int64
	// LastAck is when this agent's probe of the member was last answered.
	LastAck time.Time
	Local   bool
}

// world is what the core reads of the outside, as it is at the moment of a
// step: the membership table and the Lease holder.
type world interface {
	peer(name string) (peer, bool)
	// holder is the member that holds the coordinator Lease, as last
	// seen, or "" when unknown.
	holder() string
}

type opinion struct {
	op failover.Opinion
	// sent is when it was last voted: repeat sends those waiting longest first.
	sent time.Time
}

// kubeletCheck is the state of the kubelet checks of one member.
type kubeletCheck struct {
	// running is set while the check id (started at pending) runs.
	running bool
	id      uint64
	pending time.Time
	// start and reachable are of the newest conclusive check: when it
	// started (zero: none yet) and whether the kubelet answered.
	start     time.Time
	reachable bool
}

// heardNotice is the newest failover notice about a target and until when
// it holds.
type heardNotice struct {
	failover.Notice
	until time.Time
}

// Events.
type (
	event interface{ isEvent() }

	// memberChanged is a membership event: the entry as gossip published it.
	memberChanged struct {
		Change memberChange
		Peer   peer
	}
	// voteReceived is a peer's vote, decoded.
	voteReceived struct{ Vote failover.Vote }
	// noticeReceived is a coordinator's notice, decoded.
	noticeReceived struct{ Notice failover.Notice }
	// checkDone is the end of kubelet check ID of Target. A check that was
	// cancelled or could not tell is not Conclusive.
	checkDone struct {
		Target                string
		ID                    uint64
		Reachable, Conclusive bool
	}
	// repeatTick and recheckTick are the ticks of the repeat and recheck
	// timers.
	repeatTick  struct{}
	recheckTick struct{}
	// underWay is the coordinator's wish to say that Target's failover is
	// under way.
	underWay struct{ Target string }
	// started and stopped bracket Run; checks start only in between.
	started struct{}
	stopped struct{}
)

// memberChange says what changed about a member.
type memberChange uint8

const (
	changeAlive memberChange = iota + 1
	changeSuspect
	changeDead
	changeLeft
	changeUpdate
)

func (memberChanged) isEvent()  {}
func (voteReceived) isEvent()   {}
func (noticeReceived) isEvent() {}
func (checkDone) isEvent()      {}
func (repeatTick) isEvent()     {}
func (recheckTick) isEvent()    {}
func (underWay) isEvent()       {}
func (started) isEvent()        {}
func (stopped) isEvent()        {}

// Effects.
type (
	effect interface{ isEffect() }

	// sendVote gossips Vote and, when To is set, sends it to the
	// coordinator To as well.
	sendVote struct {
		Vote failover.Vote
		To   string
	}
	// sendNotice gossips Notice.
	sendNotice struct{ Notice failover.Notice }
	// startCheck checks the kubelet of Target, whose gossip address is
	// Addr; its end comes back as checkDone with ID.
	startCheck struct {
		Target, Addr string
		ID           uint64
	}
	// cancelCheck ends check ID of Target early: its result is moot.
	cancelCheck struct {
		Target string
		ID     uint64
	}
	// relay passes the received vote or notice on to other members.
	relay struct{}
	// count adds N to a counter (with Label, for those that have one).
	count struct {
		Counter counter
		Label   string
		N       int
	}
	// logLine is an info log line with string fields, key then value.
	logLine struct {
		Msg    string
		Fields []string
	}
)

// counter names the counters the core moves.
type counter uint8

const (
	counterReceived counter = iota + 1
	counterSuppressed
	counterDeferred
	counterEarlyVerdicts
	counterPrechecks
	counterNotices
)

func (sendVote) isEffect()    {}
func (sendNotice) isEffect()  {}
func (startCheck) isEffect()  {}
func (cancelCheck) isEffect() {}
func (relay) isEffect()       {}
func (count) isEffect()       {}
func (logLine) isEffect()     {}

func newMachine(cfg Config, self string, w world) *machine {
	return &machine{
		cfg: cfg, self: self, world: w,
		opinions: map[string]*opinion{}, ballots: failover.NewBallots(), kubelet: map[string]*kubeletCheck{},
		notices: map[string]heardNotice{}, sentNotice: map[string]time.Time{},
	}
}

// Step applies one event at now and returns what to do, in order.
func (m *machine) Step(ev event, now time.Time) []effect {
	var out effects
	switch ev := ev.(type) {
	case memberChanged:
		m.memberChanged(&out, ev, now)
	case voteReceived:
		m.receiveVote(&out, ev.Vote, now)
	case noticeReceived:
		m.receiveNotice(&out, ev.Notice, now)
	case checkDone:
		m.checkDone(&out, ev, now)
	case repeatTick:
		m.repeat(&out, now)
	case recheckTick:
		m.recheck(&out, now)
	case underWay:
		m.sayUnderWay(&out, ev.Target, now)
	case started:
		m.running = true
	case stopped:
		m.running = false
	}
	return out
}

type effects []effect

func (e *effects) add(x effect) { *e = append(*e, x) }

func (e *effects) count(c counter, label string, n int) {
	*e = append(*e, count{Counter: c, Label: label, N: n})
}

func (m *machine) memberChanged(out *effects, ev memberChanged, now time.Time) {
	p := ev.Peer
	if p.Local {
		m.epoch = p.Epoch
		return
	}
	switch ev.Change {
	case changeAlive:
		m.dropCheck(out, p.Name) // the checks of its suspicion are moot
		m.set(out, p.Name, failover.OpinionAlive, now)
	case changeSuspect:
		m.set(out, p.Name, failover.OpinionSuspect, now)
		m.precheck(out, p, now)
	case changeDead:
		if !m.applyFreshCheck(out, p.Name, now) {
			m.set(out, p.Name, failover.OpinionSuspect, now) // until the kubelet check says
			m.check(out, p, now)
		}
	case changeLeft:
		if o := m.opinions[p.Name]; o != nil {
			m.counts[o.op]--
		}
		delete(m.opinions, p.Name)
		m.dropCheck(out, p.Name)
		m.ballots.Forget(p.Name)
		delete(m.notices, p.Name)
		delete(m.sentNotice, p.Name)
	}
}

// coordinator is the Lease holder votes are sent to, or "" when every vote
// is flooded.
func (m *machine) coordinator() string {
	if m.cfg.Delivery != DeliveryCoordinator {
		return ""
	}
	return m.world.holder()
}

// opinionCounts returns the opinions by value.
func (m *machine) opinionCounts() [failover.OpinionAgentDown + 1]int { return m.counts }
