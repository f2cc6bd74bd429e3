package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/utils/clock"
)

// PeerSource tells where other agents may be found, as host:port addresses.
// Sources are asked at start and then every rejoin interval.
type PeerSource interface {
	Peers(ctx context.Context) ([]string, error)
}

// Handler receives the payload of an application message of its kind. It
// runs on memberlist's receive path and must not block. It reports whether
// the message was new to it: memberlist sends an application broadcast only
// from its origin, to a few members, so every member that learns something
// new passes it on, and the message spreads like memberlist's own gossip.
// The same message arrives more than once; handlers must be idempotent. An
// error counts the message as rejected and stops it here.
type Handler func(payload []byte) (fresh bool, err error)

// Deps are what a Membership needs from outside.
type Deps struct {
	// Logger is required.
	Logger *zap.Logger
	// Registerer receives the gossip metrics. Required.
	Registerer prometheus.Registerer
	// Clock drives the rejoin and housekeeping loops and timestamps events.
	// Nil means the real clock.
	Clock clock.WithTicker
	// Transport replaces memberlist's UDP/TCP transport, for tests. Nil
	// means the network transport bound to Config.BindAddr and BindPort.
	Transport memberlist.NodeAwareTransport
	// Seeds finds peers to join. Nil means this agent waits to be joined.
	Seeds PeerSource
	// Admit decides whether a peer may be a member: it returns "" to admit,
	// or the reason of a refusal (a short fixed word, used as a metric
	// label). Nil admits every peer that has the key and the label.
	Admit func(name string, ip net.IP) (refusal string)
	// Nodes is the API's word on which Nodes exist and which have run an
	// agent: it sets the expected group that the majority tests count
	// against. Nil counts the members seen in gossip only.
	Nodes NodeSource
}

// Membership is one agent's gossip membership.
type Membership struct {
	cfg     Config
	timing  Profile
	log     *zap.Logger
	clock   clock.WithTicker
	metrics *metrics
	seeds   PeerSource
	admit   func(string, net.IP) string
	keyring *memberlist.Keyring
	inner   memberlist.NodeAwareTransport
	bus     *eventBus
	queue   *memberlist.TransmitLimitedQueue

	handlers map[byte]Handler
	nodes    NodeSource
	contacts *contacts
	joined   atomic.Bool // has seen another member alive
	// contactWanted is when InTouch was last asked, in Unix nanoseconds:
	// keepInTouch pings only while it is recent.
	contactWanted atomic.Int64

	keyringReload time.Duration

	ml atomic.Pointer[memberlist.Memberlist]
	// publishMu makes each metadata update one step: memberlist's
	// UpdateNode reads the metadata, then takes the next incarnation, then
	// applies it, so two at once could apply the older metadata last, with
	// the higher incarnation, and lose a readiness or coordinator change
	// for good.
	publishMu sync.Mutex
	localAddr atomic.Pointer[string]
	ready     atomic.Bool
	running   atomic.Bool
	alive     atomic.Int64 // members alive or suspect, for the broadcast queue

	mu        sync.Mutex
	local     Meta
	members   map[string]*Member
	counts    [len(stateNames)]int // members by state, kept with members
	suspected map[string]time.Time
	refusedAt map[string]time.Time
}

// New validates the configuration and reads the keyring. It starts nothing.
func New(cfg Config, deps Deps) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil || deps.Registerer == nil {
		return nil, errors.New("gossip: New needs a Logger and a Registerer")
	}
	m := &Membership{
		cfg:       cfg,
		timing:    cfg.Effective(),
		log:       deps.Logger.Named("gossip"),
		clock:     deps.Clock,
		seeds:     deps.Seeds,
		admit:     deps.Admit,
		inner:     deps.Transport,
		bus:       newEventBus(),
		handlers:  map[byte]Handler{},
		nodes:     deps.Nodes,
		contacts:  newContacts(),
		members:   map[string]*Member{},
		suspected: map[string]time.Time{},
		refusedAt: map[string]time.Time{},

		keyringReload: keyringReloadInterval,
	}
	if m.clock == nil {
		m.clock = clock.RealClock{}
	}
	var err error
	if m.metrics, err = newMetrics(deps.Registerer); err != nil {
		return nil, fmt.Errorf("gossip: metrics: %w", err)
	}
	if cfg.KeyringFile != "" {
		if m.keyring, err = loadKeyring(cfg.KeyringFile); err != nil {
			return nil, err
		}
	}
	m.local = Meta{
		NodeName:     cfg.NodeName,
		Zone:         cfg.Zone,
		AgentVersion: cfg.AgentVersion,
		StartEpoch:   m.clock.Now().UnixNano(),
	}
	if _, err := m.local.Encode(); err != nil {
		return nil, err
	}
	m.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(m.alive.Load()) },
		RetransmitMult: 4,
	}
	return m, nil
}

// Handle registers the handler of an application message kind. Call it
// before Run.
func (m *Membership) Handle(kind byte, h Handler) {
	m.handlers[kind] = h
}

// Broadcast gossips an application message to every member. A later
// message with the same kind and key replaces one still in the queue, so
// only the newest opinion about something travels.
// The key (at most 255 bytes) travels with the message so that members
// passing it on replace older messages with the same key too.
func (m *Membership) Broadcast(kind byte, key string, payload []byte) error {
	msg, err := frame(kind, key, payload)
	if err != nil {
		return err
	}
	m.queue.QueueBroadcast(&broadcast{name: string(msg[:2+len(key)]), msg: msg})
	return nil
}

// SendTo sends an application message to one live member only, in one
// packet, best effort: no retransmission, no relay by the sender. The
// receiver's handler sees it as it sees a broadcast, and its answer decides
// whether the receiver passes it on.
func (m *Membership) SendTo(name string, kind byte, key string, payload []byte) error {
	msg, err := frame(kind, key, payload)
	if err != nil {
		return err
	}
	mem, ok := m.Member(name)
	if !ok || (mem.State != StateAlive && mem.State != StateSuspect) {
		return fmt.Errorf("gossip: %s is not a live member", name)
	}
	ml := m.ml.Load()
	if ml == nil {
		return errors.New("gossip: not running")
	}
	return ml.SendToAddress(memberlist.Address{Addr: mem.Addr, Name: name}, msg)
}

// frame is the wire form of an application message: kind, key length,
// key, payload.
func frame(kind byte, key string, payload []byte) ([]byte, error) {
	if len(key) > 255 {
		return nil, fmt.Errorf("gossip: broadcast key of %d bytes exceeds 255", len(key))
	}
	msg := make([]byte, 0, 2+len(key)+len(payload))
	msg = append(msg, kind, byte(len(key)))
	msg = append(msg, key...)
	msg = append(msg, payload...)
	return msg, nil
}

// Subscribe returns a stream of membership events from now on. Close it
// when done; Run closes all subscriptions when it returns.
func (m *Membership) Subscribe() *Subscription { return m.bus.subscribe() }

// Members returns a copy of the membership table, sorted by name.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	// Sorting pointers, then copying, moves a word per swap instead of a
	// whole Member: with a thousand members this is most of the cost.
	ptrs := make([]*Member, 0, len(m.members))
	for _, mem := range m.members {
		ptrs = append(ptrs, mem)
	}
	slices.SortFunc(ptrs, func(a, b *Member) int { return strings.Compare(a.Name, b.Name) })
	out := make([]Member, len(ptrs))
	for i, mem := range ptrs {
		out[i] = *mem
	}
	m.mu.Unlock()
	return out
}

// Member returns a copy of the named member's entry, without copying the
// whole table.
func (m *Membership) Member(name string) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mem, ok := m.members[name]
	if !ok {
		return Member{}, false
	}
	return *mem, true
}

// LocalName is this member's name.
func (m *Membership) LocalName() string { return m.cfg.NodeName }

// LocalAddr is the address peers reach this member at, once Run has
// started; empty before.
func (m *Membership) LocalAddr() string {
	if a := m.localAddr.Load(); a != nil {
		return *a
	}
	return ""
}

// Ready reports whether the member runs and has made its first join
// attempt (being the first and only member is fine).
func (m *Membership) Ready() bool { return m.running.Load() && m.ready.Load() }

// Running reports whether gossip is up.
func (m *Membership) Running() bool { return m.running.Load() }

// HealthScore is Lifeguard's local health score (0 is healthy).
func (m *Membership) HealthScore() int {
	if ml := m.ml.Load(); ml != nil {
		return ml.GetHealthScore()
	}
	return 0
}

// SetReadiness publishes this node's readiness verdict to the group. The
// reason (the failing check) is cut to MaxReasonBytes. It must not be called
// from a membership event handler that runs on memberlist's goroutines.
func (m *Membership) SetReadiness(ready bool, reason string) error {
	if ready {
		reason = ""
	}
	reason = truncateUTF8(reason, MaxReasonBytes)
	m.mu.Lock()
	changed := m.local.Ready != ready || m.local.Reason != reason
	m.local.Ready, m.local.Reason = ready, reason
	m.mu.Unlock()
	if !changed {
		return nil
	}
	return m.publishMeta()
}

// SetCoordinator publishes whether this agent holds the coordinator Lease.
// Like SetReadiness, it must not be called from a membership event handler.
func (m *Membership) SetCoordinator(holding bool) error {
	m.mu.Lock()
	changed := m.local.Coordinator != holding
	m.local.Coordinator = holding
	m.mu.Unlock()
	if !changed {
		return nil
	}
	return m.publishMeta()
}

func (m *Membership) publishMeta() error {
	m.publishMu.Lock()
	defer m.publishMu.Unlock()
	ml := m.ml.Load()
	if ml == nil {
		return nil // sent with the first alive message
	}
	if err := ml.UpdateNode(m.cfg.LeaveTimeout); err != nil {
		return fmt.Errorf("gossip: publish metadata: %w", err)
	}
	return nil
}

// Run starts gossip, joins the seeds and keeps the membership until ctx
// ends; then it leaves the group gracefully within Config.LeaveTimeout and
// shuts down. It returns after all its goroutines have exited.
func (m *Membership) Run(ctx context.Context) error {
	transport, port, err := m.transport()
	if err != nil {
		return err
	}
	counting := newCountingTransport(transport, m.metrics, func(from string) { m.contacts.heard(from, m.clock.Now()) })
	ml, err := memberlist.Create(m.memberlistConfig(counting, port))
	if err != nil {
		_ = counting.Shutdown()
		return fmt.Errorf("gossip: start memberlist: %w", err)
	}
	// Read once: memberlist rewrites its local node in place on every
	// metadata update (the leave's among them), so reading it later from
	// another goroutine races.
	addr := ml.LocalNode().Address()
	m.localAddr.Store(&addr)
	m.ml.Store(ml)
	// A readiness change between Create (which read the metadata) and
	// the Store above found no memberlist to publish through: publish the
	// current metadata once now, so no such change is lost.
	if err := m.publishMeta(); err != nil {
		m.log.Warn("publish metadata at start", zap.Error(err))
	}
	m.running.Store(true)
	m.log.Info("gossip started", zap.String("node", m.cfg.NodeName), zap.String("addr", addr),
		zap.String("profile", m.cfg.ProfileName), zap.Bool("encrypted", m.keyring != nil), zap.Bool("labelled", m.cfg.ClusterLabel != ""))

	var wg sync.WaitGroup
	loops, stop := context.WithCancel(context.Background())
	wg.Add(3)
	go func() { defer wg.Done(); m.joinLoop(loops) }()
	go func() { defer wg.Done(); m.housekeeping(loops) }()
	go func() { defer wg.Done(); m.keepInTouch(loops) }()
	if m.keyring != nil {
		wg.Add(1)
		go func() { defer wg.Done(); m.watchKeyring(loops) }()
	}

	<-ctx.Done()
	m.leave(ml)
	stop()
	if err := ml.Shutdown(); err != nil {
		m.log.Warn("gossip shutdown", zap.Error(err))
	}
	wg.Wait()
	m.running.Store(false)
	m.bus.closeAll()
	m.log.Info("gossip stopped")
	return nil
}

// leave announces "leaving" in the metadata, so peers record left rather
// than dead, then leaves memberlist. Both steps share LeaveTimeout.
func (m *Membership) leave(ml *memberlist.Memberlist) {
	start := time.Now()
	m.mu.Lock()
	m.local.Leaving = true
	m.mu.Unlock()
	// Under publishMu like every metadata update: a readiness change
	// published at the same moment must not apply its older metadata,
	// without "leaving", after this one.
	m.publishMu.Lock()
	err := ml.UpdateNode(m.cfg.LeaveTimeout / 2)
	m.publishMu.Unlock()
	if err != nil {
		m.log.Warn("announce leaving", zap.Error(err))
	}
	// UpdateNode returns once the update is sent, not once it has arrived:
	// give it a few gossip rounds before the leave itself, or a peer that
	// gets the leave first takes it for a death.
	time.Sleep(min(3*m.timing.GossipInterval, m.cfg.LeaveTimeout/4))
	left := m.cfg.LeaveTimeout - time.Since(start)
	if left < m.cfg.LeaveTimeout/4 {
		left = m.cfg.LeaveTimeout / 4
	}
	if err := ml.Leave(left); err != nil {
		m.log.Warn("leave gossip group", zap.Error(err), zap.Duration("timeout", left))
		return
	}
	m.log.Info("left gossip group", zap.Duration("took", time.Since(start)))
}

func (m *Membership) transport() (memberlist.NodeAwareTransport, int, error) {
	if m.inner != nil {
		_, port, err := m.inner.FinalAdvertiseAddr(m.cfg.AdvertiseAddr, m.cfg.BindPort)
		if err != nil {
			return nil, 0, fmt.Errorf("gossip: transport: %w", err)
		}
		return m.inner, port, nil
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{m.cfg.BindAddr},
		BindPort:  m.cfg.BindPort,
		Logger:    log.New(&logBridge{log: m.log.Named("memberlist")}, "", 0),
	})
	if err != nil {
		return nil, 0, fmt.Errorf("gossip: listen on %s: %w",
			net.JoinHostPort(m.cfg.BindAddr, strconv.Itoa(m.cfg.BindPort)), err)
	}
	port := m.cfg.BindPort
	if port == 0 {
		port = nt.GetAutoBindPort()
	}
	return nt, port, nil
}

func (m *Membership) memberlistConfig(t memberlist.NodeAwareTransport, port int) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.Name = m.cfg.NodeName
	c.Transport = t
	c.BindAddr = m.cfg.BindAddr
	c.BindPort = port
	c.AdvertiseAddr = m.cfg.AdvertiseAddr
	c.AdvertisePort = port
	c.ProbeInterval = m.timing.ProbeInterval
	c.ProbeTimeout = m.timing.ProbeTimeout
	c.SuspicionMult = m.timing.SuspicionMult
	c.IndirectChecks = m.timing.IndirectChecks
	c.GossipInterval = m.timing.GossipInterval
	c.PushPullInterval = m.timing.PushPullInterval
	c.TCPTimeout = m.timing.TCPTimeout
	// Lifeguard: suspicion timeouts that shrink with independent
	// confirmations, and a local health score that slows a degraded
	// member's own probing instead of letting it accuse healthy peers.
	c.SuspicionMaxTimeoutMult = suspicionMaxMult
	c.AwarenessMaxMultiplier = awarenessMaxMult
	c.DeadNodeReclaimTime = m.cfg.DeadNodeReclaimTime
	c.Label = m.cfg.ClusterLabel
	c.EnableCompression = m.cfg.Compression
	if m.keyring != nil {
		c.Keyring = m.keyring
		c.GossipVerifyIncoming = true
		c.GossipVerifyOutgoing = true
	}
	d := &delegate{m: m}
	c.Delegate = d
	c.Events = d
	c.Ping = d
	c.Conflict = d
	if m.admit != nil {
		c.Alive = d
	}
	c.LogOutput = nil
	c.Logger = log.New(&logBridge{log: m.log.Named("memberlist"), onSuspect: m.onSuspect}, "", 0)
	return c
}

// joinLoop joins the seeds at start, retrying with backoff until the first
// success, then every RejoinInterval (±25 %) joins any seed peer that is not
// an alive member, which merges the two sides of a healed partition.
func (m *Membership) joinLoop(ctx context.Context) {
	backoff := 500 * time.Millisecond
	maxBackoff := m.cfg.RejoinInterval
	if maxBackoff == 0 {
		maxBackoff = 30 * time.Second
	}
	joined := false
	for {
		if m.seeds == nil {
			m.ready.Store(true)
			return
		}
		if m.joinRound(ctx) {
			joined = true
		}
		m.ready.Store(true)
		var wait time.Duration
		switch {
		case !joined:
			wait = backoff
			backoff = min(backoff*2, maxBackoff)
		case m.cfg.RejoinInterval == 0:
			return
		default:
			wait = jitter(m.cfg.RejoinInterval)
		}
		t := m.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// jitter spreads d by ±25 % so the agents of a DaemonSet do not act in the
// same instant.
func jitter(d time.Duration) time.Duration {
	return d*3/4 + rand.N(d/2+1)
}

// maxJoinPerRound bounds one rejoin round, so a list of dead seeds cannot
// hold the loop for long.
const maxJoinPerRound = 3

// repairEvery is how many rejoin rounds, on average, one repair exchange
// with a peer already seen takes in a group of n: 1 up to 32 members, then
// one more for each doubling, as memberlist scales its push-pull interval
// (for example 5 at 500 members, 6 at 1000).
func repairEvery(n int) int {
	const threshold = 32
	if n <= threshold {
		return 1
	}
	return int(math.Ceil(math.Log2(float64(n))-math.Log2(threshold))) + 1
}

// joinRound asks the seeds for peers and joins those not seen alive. It
// reports true when this member is part of a group afterwards, or when
// there is nobody else to join.
func (m *Membership) joinRound(ctx context.Context) bool {
	peers, err := m.seeds.Peers(ctx)
	if err != nil {
		m.metrics.joins.WithLabelValues("failure").Inc()
		m.log.Warn("discover peers", zap.Error(err))
		return false
	}
	known := map[string]bool{m.LocalAddr(): true}
	for _, mem := range m.Members() {
		if mem.State == StateAlive || mem.State == StateSuspect {
			known[mem.Addr] = true
		}
	}
	var todo, seen []string
	for _, p := range peers {
		switch {
		case !known[p]:
			todo = append(todo, p)
		case p != m.LocalAddr():
			seen = append(seen, p)
		}
	}
	rand.Shuffle(len(todo), func(i, j int) { todo[i], todo[j] = todo[j], todo[i] })
	if len(todo) > maxJoinPerRound {
		todo = todo[:maxJoinPerRound]
	}
	// One state exchange with a peer we already see, too: it repairs
	// views that gossip left apart, such as a member that came back at a
	// new address while some peers still held the old one. A state
	// exchange costs O(N) bytes, so in a large group it is made only in one
	// round of repairEvery(N), as memberlist spaces out its own push-pulls:
	// otherwise it would cost the group O(N²) every RejoinInterval.
	if len(seen) > 0 && rand.N(repairEvery(len(known))) == 0 {
		todo = append(todo, seen[rand.N(len(seen))])
	}
	if len(todo) == 0 {
		return true
	}
	ml := m.ml.Load()
	var wg sync.WaitGroup
	var ok atomic.Int32
	for _, addr := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n, err := ml.Join([]string{addr}); n > 0 {
				ok.Add(1)
				m.metrics.joins.WithLabelValues("success").Inc()
			} else {
				m.metrics.joins.WithLabelValues("failure").Inc()
				m.log.Debug("join peer", zap.String("peer", addr), zap.Error(err))
			}
		}()
	}
	wg.Wait()
	if ok.Load() > 0 {
		m.log.Debug("joined peers", zap.Int("joined", int(ok.Load())), zap.Int("tried", len(todo)))
		return true
	}
	// Already in a group with other members: a seed that is down does not
	// make us alone.
	return m.alive.Load() > 1
}

// watchKeyring applies changes of the keyring file (a mounted Secret) to
// the live keyring, without a restart.
func (m *Membership) watchKeyring(ctx context.Context) {
	t := m.clock.NewTicker(m.keyringReload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		changed, err := reloadKeyring(m.keyring, m.cfg.KeyringFile)
		m.metrics.keyringOK.Set(boolGauge(err == nil))
		switch {
		case err != nil:
			m.metrics.keyringReloads.WithLabelValues("failure").Inc()
			m.log.Error("reload keyring; keeping the keys in use", zap.Error(err))
		case changed:
			m.metrics.keyringReloads.WithLabelValues("changed").Inc()
			m.log.Info("keyring reloaded", zap.Int("keys", len(m.keyring.GetKeys())))
		}
	}
}

// housekeeping expires suspicions that were refuted without our noticing,
// and refreshes the gauges, once a probe interval.
func (m *Membership) housekeeping(ctx context.Context) {
	t := m.clock.NewTicker(m.timing.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		m.expireSuspicions()
		if ml := m.ml.Load(); ml != nil {
			m.metrics.healthScore.Set(float64(ml.GetHealthScore()))
		}
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
// size and the gauges.
func (m *Membership) countsChangedLocked() {
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

func (m *Membership) localMeta() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.local.Encode()
}

func (m *Membership) receive(msg []byte) {
	if len(msg) == 0 {
		m.metrics.malformed.WithLabelValues(reasonEmpty).Inc()
		return
	}
	h, ok := m.handlers[msg[0]]
	if !ok {
		m.metrics.malformed.WithLabelValues(reasonUnknownKind).Inc()
		return
	}
	if len(msg) < 2 || len(msg) < 2+int(msg[1]) {
		m.metrics.malformed.WithLabelValues(reasonTruncated).Inc()
		return
	}
	// memberlist may reuse the buffer after we return.
	msg = append([]byte(nil), msg...)
	head := 2 + int(msg[1])
	fresh, err := h(msg[head:])
	if err != nil {
		m.metrics.malformed.WithLabelValues(reasonHandler).Inc()
		m.log.Debug("rejected gossip message", zap.Int("kind", int(msg[0])), zap.Error(err))
		return
	}
	if fresh {
		m.queue.QueueBroadcast(&broadcast{name: string(msg[:head]), msg: msg})
	}
}

// delegate adapts Membership to memberlist's delegate interfaces, keeping
// those methods off Membership's own API.
type delegate struct{ m *Membership }

func (d *delegate) NodeMeta(limit int) []byte {
	b, err := d.m.localMeta()
	if err != nil || len(b) > limit {
		d.m.log.Error("local metadata does not fit", zap.Error(err), zap.Int("limit", limit))
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg(msg []byte) { d.m.receive(msg) }

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte            { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.m.onJoin(n) }
func (d *delegate) NotifyLeave(n *memberlist.Node)  { d.m.onLeave(n) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.m.onUpdate(n) }

func (d *delegate) AckPayload() []byte { return nil }

func (d *delegate) NotifyPingComplete(n *memberlist.Node, rtt time.Duration, _ []byte) {
	d.m.metrics.probeRTT.Observe(rtt.Seconds())
	d.m.onAck(n.Name)
}

// NotifyAlive refuses a peer the admission check does not know; memberlist
// then ignores its alive message, so it never becomes a member and its
// votes never count.
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	if n.Name == d.m.cfg.NodeName {
		return nil
	}
	refusal := d.m.admit(n.Name, n.Addr)
	if refusal == "" {
		return nil
	}
	d.m.metrics.refusals.WithLabelValues(refusal).Inc()
	d.m.logRefusal(n.Name, n.Address(), refusal)
	return fmt.Errorf("refused: %s", refusal)
}

// logRefusal logs a refused peer at most once a minute per name and
// reason: a rogue member repeats its alive messages many times a second.
func (m *Membership) logRefusal(name, addr, reason string) {
	now := m.clock.Now()
	key := name + "/" + reason
	m.mu.Lock()
	last, seen := m.refusedAt[key]
	quiet := seen && now.Sub(last) < time.Minute
	if !quiet {
		m.refusedAt[key] = now
	}
	m.mu.Unlock()
	if quiet {
		return
	}
	m.log.Warn("refused a gossip member", zap.String("peer", name), zap.String("addr", addr), zap.String("reason", reason))
}

func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.m.log.Warn("member name claimed from a second address",
		zap.String("peer", existing.Name), zap.String("addr", existing.Address()), zap.String("other_addr", other.Address()))
}

// broadcast is a named application message in the transmit queue: a newer
// one with the same name invalidates the older.
type broadcast struct {
	name string
	msg  []byte
}

func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*broadcast)
	return ok && o.name == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}
