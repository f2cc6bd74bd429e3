package agreement

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/utils/clock"

	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/probe"
)

// VoteKind is the gossip message kind of votes, NoticeKind that of the
// coordinator's failover notices.
const (
	VoteKind   byte = 1
	NoticeKind byte = 2
)

// Gossip is what agreement needs from the membership.
type Gossip interface {
	LocalName() string
	Members() []gossip.Member
	// Member looks one member up; votes and checks need one entry, and a
	// copy of the whole table per vote costs O(N log N) at every member.
	Member(name string) (gossip.Member, bool)
	Subscribe() *gossip.Subscription
	Broadcast(kind byte, key string, payload []byte) error
	SendTo(name string, kind byte, key string, payload []byte) error
	Handle(kind byte, h gossip.Handler)
}

// PeerChecker checks a node's kubelet port.
type PeerChecker interface {
	Check(ctx context.Context, addr string) probe.PeerResult
}

// Deps are what an Agreement needs from outside.
type Deps struct {
	Gossip     Gossip
	Peer       PeerChecker
	Logger     *zap.Logger
	Registerer prometheus.Registerer
	// Clock is the real clock when nil.
	Clock clock.WithTicker
	// NodeAddress returns the address to check a node's kubelet at (its
	// InternalIP). When nil or when it does not know the node, the host
	// of the member's gossip address is used: with hostNetwork that is the
	// node's address.
	NodeAddress func(node string) (string, bool)
	// Coordinator returns the member that holds the coordinator Lease, as
	// last seen, or "" when unknown (this agent does not campaign, or no
	// one holds it). When nil or "", votes are flooded to every member, as
	// with DeliveryGossip. It is called with the Agreement's lock held, so
	// it must not call the Agreement.
	Coordinator func() string
}

// Agreement is the driver of the agreement's core (machine): it owns the
// lock, the timers, the kubelet checks' goroutines, the metrics and the
// log, turns gossip's events and messages into the core's events, and
// carries out the core's effects.
type Agreement struct {
	cfg     Config
	g       Gossip
	peer    PeerChecker
	log     *zap.Logger
	clock   clock.WithTicker
	addr    func(string) (string, bool)
	holder  func() string
	metrics *metrics

	mu   sync.Mutex
	core *machine
	// gauges are the opinion counts last published.
	gauges [failover.OpinionAgentDown + 1]int
	// runCtx is the context of Run, under which checks run; cancels end
	// the running checks by id.
	runCtx  context.Context
	cancels map[uint64]context.CancelFunc
	checks  sync.WaitGroup
}

// New validates cfg and registers the vote handler with gossip.
func New(cfg Config, deps Deps) (*Agreement, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Gossip == nil || deps.Peer == nil || deps.Logger == nil || deps.Registerer == nil {
		return nil, errors.New("agreement: New needs Gossip, Peer, Logger and Registerer")
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	a := &Agreement{
		cfg: cfg, g: deps.Gossip, peer: deps.Peer, log: deps.Logger.Named("agreement"),
		clock: deps.Clock, addr: deps.NodeAddress, holder: deps.Coordinator, metrics: m,
		cancels: map[uint64]context.CancelFunc{},
	}
	if a.clock == nil {
		a.clock = clock.RealClock{}
	}
	a.core = newMachine(cfg, a.g.LocalName(), gossipWorld{a})
	a.g.Handle(VoteKind, a.receive)
	a.g.Handle(NoticeKind, a.receiveNotice)
	return a, nil
}

// WithBallots runs fn with the ballots locked. fn must not block.
func (a *Agreement) WithBallots(fn func(*failover.Ballots)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(a.core.ballots)
}

// Opinions returns a copy of this agent's opinions about other members.
func (a *Agreement) Opinions() map[string]failover.Opinion {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]failover.Opinion, len(a.core.opinions))
	for k, o := range a.core.opinions {
		out[k] = o.op
	}
	return out
}

// UnderWay tells the group that the failover of target is under way, so
// that voters stop repeating their dead votes about it. The coordinator
// calls it on every pass for every failover it carries; the notice goes
// out at most once per NoticeInterval per target.
func (a *Agreement) UnderWay(target string) { a.step(underWay{Target: target}) }

// Run follows membership events until ctx ends.
func (a *Agreement) Run(ctx context.Context) error {
	sub := a.g.Subscribe()
	defer sub.Close()
	a.mu.Lock()
	a.runCtx = ctx
	a.mu.Unlock()
	a.step(started{})
	defer func() {
		// No check starts after this: step adds to a.checks under mu, and
		// the core starts none once stopped.
		a.step(stopped{})
		a.checks.Wait()
	}()
	for _, m := range a.g.Members() {
		if m.Local {
			a.onEvent(gossip.Event{Type: gossip.EventUpdate, Member: m})
		}
	}
	repeat := a.clock.NewTicker(a.cfg.RepeatInterval)
	defer repeat.Stop()
	recheck := a.clock.NewTicker(a.cfg.RecheckInterval)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-sub.C:
			if !ok {
				return nil
			}
			a.onEvent(e)
		case <-repeat.C():
			a.step(repeatTick{})
		case <-recheck.C():
			a.step(recheckTick{})
		}
	}
}

// onEvent steps the core with a membership event.
func (a *Agreement) onEvent(e gossip.Event) {
	var c memberChange
	switch e.Type {
	case gossip.EventAlive:
		c = changeAlive
	case gossip.EventSuspect:
		c = changeSuspect
	case gossip.EventDead:
		c = changeDead
	case gossip.EventLeft:
		c = changeLeft
	default:
		c = changeUpdate
	}
	a.step(memberChanged{Change: c, Peer: toPeer(e.Member)})
}

// receive handles a vote from gossip, on memberlist's goroutine.
func (a *Agreement) receive(payload []byte) (bool, error) {
	v, err := failover.DecodeVote(payload)
	if err != nil {
		return false, err
	}
	return relayed(a.step(voteReceived{Vote: v})), nil
}

// receiveNotice handles a failover notice from gossip, on memberlist's
// goroutine.
func (a *Agreement) receiveNotice(payload []byte) (bool, error) {
	n, err := failover.DecodeNotice(payload)
	if err != nil {
		return false, err
	}
	return relayed(a.step(noticeReceived{Notice: n})), nil
}

func relayed(effs []effect) bool {
	for _, e := range effs {
		if _, ok := e.(relay); ok {
			return true
		}
	}
	return false
}

// gossipWorld answers the core's lookups from gossip and the coordinator.
type gossipWorld struct{ a *Agreement }

func (w gossipWorld) peer(name string) (peer, bool) {
	m, ok := w.a.g.Member(name)
	if !ok {
		return peer{}, false
	}
	return toPeer(m), true
}

func (w gossipWorld) holder() string {
	if w.a.holder == nil {
		return ""
	}
	return w.a.holder()
}

func toPeer(m gossip.Member) peer {
	s := peerAlive
	switch m.State {
	case gossip.StateSuspect:
		s = peerSuspect
	case gossip.StateDead:
		s = peerDead
	case gossip.StateLeft:
		s = peerLeft
	}
	return peer{Name: m.Name, Addr: m.Addr, State: s, Epoch: m.Meta.StartEpoch, LastAck: m.LastAck, Local: m.Local}
}
