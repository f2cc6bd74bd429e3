package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"slices"
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
	// tableGen counts the changes of members that the majority tests
	// depend on (a new member, a new state, a new address); it starts
	// at 1.
	tableGen    uint64
	quorumCache quorumCache
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
		tableGen:  1,
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
	if err := registerTimingMetrics(deps.Registerer, cfg, m.timing); err != nil {
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
		zap.String("profile", m.cfg.ProfileName), zap.String("band", m.cfg.Band()), zap.Bool("encrypted", m.keyring != nil), zap.Bool("labelled", m.cfg.ClusterLabel != ""))

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
