package agreement

import (
	"context"
	"errors"
	"sync"
	"time"

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
	// with DeliveryGossip.
	Coordinator func() string
}

// Agreement keeps this agent's opinions and the ballots.
type Agreement struct {
	cfg     Config
	g       Gossip
	peer    PeerChecker
	log     *zap.Logger
	clock   clock.WithTicker
	addr    func(string) (string, bool)
	holder  func() string
	metrics *metrics

	mu       sync.Mutex
	opinions map[string]*opinion
	// counts are the opinions by value, kept as they change: counting the
	// map on every change would cost O(N²) per agent as a group forms.
	counts  [failover.OpinionAgentDown + 1]int
	ballots *failover.Ballots
	seq     uint64
	epoch   int64
	checks  sync.WaitGroup
	// kubelet holds the kubelet checks by member, made once gossip
	// suspects a member (a peer's suspect vote is enough) or holds it dead;
	// runCtx is the context of Run, which checks started outside it use.
	kubelet map[string]*kubeletCheck
	runCtx  context.Context
	stopped bool
	// notices are the failovers under way, by target, as the coordinator
	// said; sentNotice is when this agent, as coordinator, last said so.
	notices    map[string]heardNotice
	sentNotice map[string]time.Time
	noticeSeq  uint64
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
		opinions: map[string]*opinion{}, ballots: failover.NewBallots(), kubelet: map[string]*kubeletCheck{},
		notices: map[string]heardNotice{}, sentNotice: map[string]time.Time{},
	}
	if a.clock == nil {
		a.clock = clock.RealClock{}
	}
	a.g.Handle(VoteKind, a.receive)
	a.g.Handle(NoticeKind, a.receiveNotice)
	return a, nil
}

// WithBallots runs fn with the ballots locked. fn must not block.
func (a *Agreement) WithBallots(fn func(*failover.Ballots)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(a.ballots)
}

// Opinions returns a copy of this agent's opinions about other members.
func (a *Agreement) Opinions() map[string]failover.Opinion {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]failover.Opinion, len(a.opinions))
	for k, o := range a.opinions {
		out[k] = o.op
	}
	return out
}

// coordinator is the Lease holder votes are sent to, or "" when every vote
// is flooded.
func (a *Agreement) coordinator() string {
	if a.cfg.Delivery != DeliveryCoordinator || a.holder == nil {
		return ""
	}
	return a.holder()
}

// Run follows membership events until ctx ends.
func (a *Agreement) Run(ctx context.Context) error {
	sub := a.g.Subscribe()
	defer sub.Close()
	a.mu.Lock()
	a.runCtx = ctx
	a.mu.Unlock()
	defer func() {
		// No check starts after this: check adds to a.checks under mu,
		// and only while not stopped.
		a.mu.Lock()
		a.runCtx, a.stopped = nil, true
		a.mu.Unlock()
		a.checks.Wait()
	}()
	for _, m := range a.g.Members() {
		if m.Local {
			a.mu.Lock()
			a.epoch = m.Meta.StartEpoch
			a.mu.Unlock()
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
			a.onEvent(ctx, e)
		case <-repeat.C():
			a.repeat()
		case <-recheck.C():
			a.recheck(ctx)
		}
	}
}

func (a *Agreement) onEvent(ctx context.Context, e gossip.Event) {
	if e.Member.Local {
		a.mu.Lock()
		a.epoch = e.Member.Meta.StartEpoch
		a.mu.Unlock()
		return
	}
	name := e.Member.Name
	switch e.Type {
	case gossip.EventAlive:
		a.mu.Lock()
		delete(a.kubelet, name) // the checks of its suspicion are moot
		a.mu.Unlock()
		a.set(name, failover.OpinionAlive)
	case gossip.EventSuspect:
		a.set(name, failover.OpinionSuspect)
		a.precheck(ctx, e.Member)
	case gossip.EventDead:
		if !a.applyFreshCheck(name) {
			a.set(name, failover.OpinionSuspect) // until the kubelet check says
			a.check(ctx, e.Member)
		}
	case gossip.EventLeft:
		a.mu.Lock()
		if o := a.opinions[name]; o != nil {
			a.counts[o.op]--
		}
		delete(a.opinions, name)
		delete(a.kubelet, name)
		a.ballots.Forget(name)
		delete(a.notices, name)
		delete(a.sentNotice, name)
		a.mu.Unlock()
		a.updateGauge()
	}
}
