package agreement

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
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

// A coordinator sends the notice of a failover under way again every
// NoticeInterval while the failover lasts, and a voter believes it for
// NoticeTTL after it last heard it: a lost notice or two cost nothing, and
// a coordinator that dies is forgotten in half a minute.
const (
	NoticeInterval = 10 * time.Second
	NoticeTTL      = 3 * NoticeInterval
)

// Vote deliveries: how a vote reaches the coordinator.
const (
	// DeliveryCoordinator sends each vote straight to the holder of the
	// coordinator Lease, besides gossiping it; peers pass on only votes
	// about the holder itself, which every candidate needs to take the
	// Lease from a dead holder. A vote costs O(1) packets, not O(N).
	DeliveryCoordinator = "coordinator"
	// DeliveryGossip floods every vote to every member: each vote costs
	// O(N) packets, so a death costs the group O(N²).
	DeliveryGossip = "gossip"
)

// Config tunes how opinions are kept fresh.
type Config struct {
	// RepeatInterval is how often non-alive opinions are sent again. It
	// must be well under the coordinator's vote maximum age.
	RepeatInterval time.Duration
	// RepeatMax bounds the opinions sent again in one repeat round; the
	// rest wait for the next rounds, those sent longest ago first. Dead and
	// agent-down opinions, which make decisions, go before suspect ones.
	// It bounds what a mass suspicion (an overloaded or cut-off agent that
	// sees hundreds of peers as suspect) sends every round.
	RepeatMax int
	// RecheckInterval is how often the kubelet of a node held dead or
	// agent-down is checked again.
	RecheckInterval time.Duration
	// Delivery is DeliveryCoordinator or DeliveryGossip.
	Delivery string
}

// DefaultConfig repeats at most 16 opinions and rechecks every 2 s, and
// sends votes to the coordinator. 16 opinions every 2 s keep the votes
// about up to 64 non-alive members within the coordinator's default vote
// maximum age (10 s).
func DefaultConfig() Config {
	return Config{RepeatInterval: 2 * time.Second, RepeatMax: 16, RecheckInterval: 2 * time.Second, Delivery: DeliveryCoordinator}
}

// RegisterFlags binds the flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.RepeatInterval, "vote-repeat-interval", c.RepeatInterval, "how often non-alive opinions are gossiped again")
	fs.IntVar(&c.RepeatMax, "vote-repeat-max", c.RepeatMax, "most non-alive opinions gossiped again each --vote-repeat-interval (dead and agent-down first, then those sent longest ago)")
	fs.DurationVar(&c.RecheckInterval, "peer-recheck-interval", c.RecheckInterval, "how often the kubelet of a dead node is checked again")
	fs.StringVar(&c.Delivery, "vote-delivery", c.Delivery, `how votes reach the coordinator: "coordinator" (sent to the Lease holder; peers pass on only votes about the holder) or "gossip" (flooded to every member)`)
}

// Validate names the flag and the bound.
func (c Config) Validate() error {
	if c.RepeatInterval < 100*time.Millisecond || c.RepeatInterval > time.Minute {
		return fmt.Errorf("agreement: --vote-repeat-interval (%s) must be between 100ms and 1m0s", c.RepeatInterval)
	}
	if c.RepeatMax < 1 || c.RepeatMax > 10000 {
		return fmt.Errorf("agreement: --vote-repeat-max (%d) must be between 1 and 10000", c.RepeatMax)
	}
	if c.RecheckInterval < 100*time.Millisecond || c.RecheckInterval > time.Minute {
		return fmt.Errorf("agreement: --peer-recheck-interval (%s) must be between 100ms and 1m0s", c.RecheckInterval)
	}
	if c.Delivery != DeliveryCoordinator && c.Delivery != DeliveryGossip {
		return fmt.Errorf("agreement: --vote-delivery (%q) must be %q or %q", c.Delivery, DeliveryCoordinator, DeliveryGossip)
	}
	return nil
}

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

type opinion struct {
	op failover.Opinion
	// sent is when it was last voted: repeat sends those waiting longest first.
	sent time.Time
}

// kubeletCheck is the state of the kubelet checks of one member.
type kubeletCheck struct {
	running bool
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

// receive handles a vote from gossip, on memberlist's goroutine.
func (a *Agreement) receive(payload []byte) (bool, error) {
	v, err := failover.DecodeVote(payload)
	if err != nil {
		return false, err
	}
	if v.Voter == a.g.LocalName() {
		return false, nil // our own vote, relayed back
	}
	a.mu.Lock()
	fresh := a.ballots.Add(v, a.clock.Now())
	a.mu.Unlock()
	if !fresh {
		a.metrics.received.WithLabelValues("duplicate").Inc()
		return false, nil
	}
	a.metrics.received.WithLabelValues("fresh").Inc()
	if v.Opinion == failover.OpinionSuspect && a.precheckPeer(v.Target) {
		// A peer suspects a member this agent holds alive, and this is
		// the first it hears of it: check its kubelet now, so that the
		// answer is there when gossip declares it dead, and pass the vote
		// on so that every voter does. Old news (a check already made or
		// running, or the member already suspect or dead here) goes no
		// further: the suspect votes of the other probers, and those
		// voters send when gossip declares a member dead, are not flooded.
		return true, nil
	}
	// Votes go to the coordinator directly; only those about the
	// coordinator itself must reach every candidate.
	if h := a.coordinator(); h != "" && v.Target != h {
		return false, nil
	}
	return true, nil
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

// set changes an opinion and votes it when it changed.
func (a *Agreement) set(target string, op failover.Opinion) {
	a.mu.Lock()
	o := a.opinions[target]
	if o == nil {
		o = &opinion{}
		a.opinions[target] = o
	}
	changed := o.op != op
	// "alive" is what everybody assumes of a member: it is voted only to
	// retract an earlier suspect, dead or agent-down vote. Voting it for
	// every member that joins would send N² votes as a group forms.
	retract := o.op != 0 && o.op != failover.OpinionAlive
	if changed {
		if o.op != 0 { // a new entry has no opinion yet
			a.counts[o.op]--
		}
		a.counts[op]++
	}
	o.op = op
	if op == failover.OpinionAlive {
		// Back: a failover of this life of the node is over, and a later
		// death is a new question.
		delete(a.notices, target)
	}
	a.mu.Unlock()
	if changed {
		a.log.Info("opinion changed", zap.String("node", target), zap.String("opinion", op.String()))
		a.updateGauge()
		switch {
		case op == failover.OpinionDead && a.underWay(target):
			a.metrics.suppressed.Inc()
		case op != failover.OpinionAlive || retract:
			a.vote(target, op)
		}
	}
}

// repeat votes every non-alive opinion again, with a new sequence number
// so that peers pass it on, except dead opinions about nodes whose
// failover is under way: nobody reads those votes any more.
func (a *Agreement) repeat() {
	type pending struct {
		target string
		op     failover.Opinion
		sent   time.Time
	}
	var todo []pending
	now := a.clock.Now()
	a.mu.Lock()
	for target, n := range a.notices {
		if !now.Before(n.until) {
			delete(a.notices, target)
		}
	}
	for target, o := range a.opinions {
		if o.op != failover.OpinionAlive {
			todo = append(todo, pending{target, o.op, o.sent})
		}
	}
	a.mu.Unlock()
	// Dead and agent-down first: they make decisions; suspect votes only
	// inform. Then the longest waiting.
	slices.SortFunc(todo, func(x, y pending) int {
		if xs, ys := x.op == failover.OpinionSuspect, y.op == failover.OpinionSuspect; xs != ys {
			if xs {
				return 1
			}
			return -1
		}
		return x.sent.Compare(y.sent)
	})
	sent := 0
	for i, p := range todo {
		if p.op == failover.OpinionDead && a.underWay(p.target) {
			a.metrics.suppressed.Inc()
			continue
		}
		if sent == a.cfg.RepeatMax {
			a.metrics.deferred.Add(float64(len(todo) - i))
			return
		}
		a.vote(p.target, p.op)
		sent++
	}
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

func (a *Agreement) vote(target string, op failover.Opinion) {
	member, _ := a.g.Member(target)
	now := a.clock.Now()
	a.mu.Lock()
	a.seq++
	if o := a.opinions[target]; o != nil {
		o.sent = now
	}
	v := failover.Vote{
		Voter: a.g.LocalName(), Target: target, Opinion: op,
		VoterEpoch: a.epoch, Seq: a.seq, TargetEpoch: member.Meta.StartEpoch,
		LastAck: member.LastAck, At: now,
	}
	a.ballots.Add(v, now)
	a.mu.Unlock()
	key, payload := broadcastKey(v.Voter, v.Target), v.Encode()
	if err := a.g.Broadcast(VoteKind, key, payload); err != nil {
		a.log.Error("broadcast vote", zap.String("node", target), zap.Error(err))
		return
	}
	a.metrics.sent.WithLabelValues(opinionLabel(op)).Inc()
	if h := a.coordinator(); h != "" && h != v.Voter && h != target {
		if err := a.g.SendTo(h, VoteKind, key, payload); err != nil {
			a.metrics.direct.WithLabelValues("failure").Inc()
			a.log.Debug("send vote to the coordinator", zap.String("coordinator", h), zap.Error(err))
			return
		}
		a.metrics.direct.WithLabelValues("success").Inc()
	}
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

func (a *Agreement) updateGauge() {
	a.mu.Lock()
	counts := a.counts
	a.mu.Unlock()
	for _, op := range []failover.Opinion{failover.OpinionAlive, failover.OpinionSuspect, failover.OpinionDead, failover.OpinionAgentDown} {
		a.metrics.opinions.WithLabelValues(opinionLabel(op)).Set(float64(counts[op]))
	}
}
