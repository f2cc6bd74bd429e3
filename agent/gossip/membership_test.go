package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haagent/haagent/internal/testlog"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/haagent/haagent/internal/simnet"
)

// staticSeeds is a PeerSource with a fixed list.
type staticSeeds []string

func (s staticSeeds) Peers(context.Context) ([]string, error) { return s, nil }

type testAgent struct {
	m      *Membership
	tr     *simnet.Transport
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// testConfig is the fast profile with tighter timings still, so the
// protocol runs its course in a few seconds of a unit test.
func testConfig(name string) Config {
	c := DefaultConfig()
	c.NodeName = name
	c.Zone = "zone-a"
	c.AgentVersion = "test"
	c.ProfileName = "fast"
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.SuspicionMult = 3
	c.GossipInterval = 50 * time.Millisecond
	c.RejoinInterval = time.Second
	c.LeaveTimeout = time.Second
	c.DeadNodeReclaimTime = 200 * time.Millisecond
	return c
}

func startAgent(t *testing.T, tr *simnet.Transport, cfg Config, seeds ...string) *testAgent {
	t.Helper()
	reg := prometheus.NewRegistry()
	deps := Deps{
		Logger:     testlog.New(t, zap.ErrorLevel),
		Registerer: reg,
		Transport:  tr,
	}
	if len(seeds) > 0 {
		deps.Seeds = staticSeeds(seeds)
	}
	m, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &testAgent{m: m, tr: tr, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- m.Run(ctx) }()
	t.Cleanup(a.stop)
	waitFor(t, 5*time.Second, fmt.Sprintf("%s to start", cfg.NodeName), m.Ready)
	return a
}

// stop cancels the agent and waits for Run to return.
func (a *testAgent) stop() {
	a.cancel()
	<-a.done
	a.done <- nil // let a second stop return too
}

// crash takes the agent off the network without a word, then stops its
// goroutines (its leave cannot reach anyone).
func (a *testAgent) crash() {
	a.tr.Crash()
	a.stop()
}

func (a *testAgent) member(name string) (Member, bool) {
	for _, m := range a.m.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

func (a *testAgent) stateOf(name string) State {
	m, ok := a.member(name)
	if !ok {
		return -1
	}
	return m.State
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startGroup starts n agents named n1..nN, each joining the first.
func startGroup(t *testing.T, nw *simnet.Network, n int, mod func(*Config)) []*testAgent {
	t.Helper()
	var agents []*testAgent
	var first string
	for i := 1; i <= n; i++ {
		cfg := testConfig(fmt.Sprintf("n%d", i))
		if mod != nil {
			mod(&cfg)
		}
		tr := nw.NewTransport()
		var seeds []string
		if first != "" {
			seeds = []string{first}
		} else {
			first = tr.Addr()
		}
		agents = append(agents, startAgent(t, tr, cfg, seeds...))
	}
	waitConverged(t, agents, n)
	return agents
}

// waitConverged waits until every agent sees n alive members. The group
// forms in well under a second; the bound is for a machine busy with
// other tests, where a member's probe can time out and it is suspected
// for a while before it refutes.
func waitConverged(t *testing.T, agents []*testAgent, n int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d agents to see %d alive members", len(agents), n), func() bool {
		for _, a := range agents {
			alive := 0
			for _, m := range a.m.Members() {
				if m.State == StateAlive {
					alive++
				}
			}
			if alive != n {
				return false
			}
		}
		return true
	})
}

// recorder collects a subscription's events.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func record(t *testing.T, m *Membership) *recorder {
	r := &recorder{}
	sub := m.Subscribe()
	t.Cleanup(sub.Close)
	go func() {
		for e := range sub.C {
			r.mu.Lock()
			r.events = append(r.events, e)
			r.mu.Unlock()
		}
	}()
	return r
}

// types returns the event types seen for one member, in order.
func (r *recorder) types(name string) []EventType {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []EventType
	for _, e := range r.events {
		if e.Member.Name == name {
			out = append(out, e.Type)
		}
	}
	return out
}

func (r *recorder) first(name string, t EventType) (Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Member.Name == name && e.Type == t {
			return e, true
		}
	}
	return Event{}, false
}

func TestMembership_fiveAgentsConverge(t *testing.T) {
	agents := startGroup(t, simnet.New(), 5, nil)
	for _, a := range agents {
		members := a.m.Members()
		if len(members) != 5 {
			t.Fatalf("%s sees %d members, want 5", a.m.LocalName(), len(members))
		}
		for _, m := range members {
			if m.Meta.NodeName != m.Name || m.Meta.Zone != "zone-a" || m.Meta.AgentVersion != "test" || m.MetaError != "" {
				t.Errorf("%s sees %s with metadata %+v (error %q)", a.m.LocalName(), m.Name, m.Meta, m.MetaError)
			}
			if m.Local != (m.Name == a.m.LocalName()) {
				t.Errorf("%s: member %s Local=%v", a.m.LocalName(), m.Name, m.Local)
			}
		}
		if got := testutil.ToFloat64(a.m.metrics.members.WithLabelValues("alive")); got != 5 {
			t.Errorf("%s: haagent_gossip_members{state=alive} = %v, want 5", a.m.LocalName(), got)
		}
	}
}

// TestMembership_mixedCompression: agents that compress what they send and
// agents that do not form one group, as during a rollout of the flag.
func TestMembership_mixedCompression(t *testing.T) {
	agents := startGroup(t, simnet.New(), 4, func(c *Config) { c.Compression = c.NodeName == "n1" || c.NodeName == "n3" })
	time.Sleep(time.Second) // some probe rounds and gossip in both directions
	for _, a := range agents {
		for _, m := range a.m.Members() {
			if m.State != StateAlive {
				t.Errorf("%s sees %s %s", a.m.LocalName(), m.Name, m.State)
			}
		}
	}
}

func TestMembership_crashedAgentGoesSuspectThenDead(t *testing.T) {
	nw := simnet.New()
	agents := startGroup(t, nw, 5, nil)
	survivors, victim := agents[:4], agents[4]
	var recs []*recorder
	for _, a := range survivors {
		recs = append(recs, record(t, a.m))
	}
	crashed := time.Now()
	victim.crash()

	bound := testConfig("x").DetectionBound(5)
	// The bound is the protocol's own worst case; the slack absorbs a
	// loaded test machine.
	waitFor(t, 3*bound+5*time.Second, "every survivor to see n5 dead", func() bool {
		for _, a := range survivors {
			if a.stateOf("n5") != StateDead {
				return false
			}
		}
		return true
	})
	t.Logf("all survivors saw n5 dead %s after the crash (protocol bound %s)", time.Since(crashed), bound)

	// Events reach subscribers asynchronously, a moment after the table.
	waitFor(t, 5*time.Second, "every survivor's subscription to deliver n5's death", func() bool {
		for _, r := range recs {
			if _, ok := r.first("n5", EventDead); !ok {
				return false
			}
		}
		return true
	})
	sawSuspect := false
	for i, r := range recs {
		types := r.types("n5")
		dead, ok := r.first("n5", EventDead)
		if !ok {
			t.Fatalf("%s: no dead event for n5 (events %v)", survivors[i].m.LocalName(), types)
		}
		if s, ok := r.first("n5", EventSuspect); ok {
			sawSuspect = true
			if s.Time.After(dead.Time) {
				t.Errorf("%s: suspect at %s after dead at %s", survivors[i].m.LocalName(), s.Time, dead.Time)
			}
		}
		if types[len(types)-1] != EventDead {
			t.Errorf("%s: events for n5 %v do not end in dead", survivors[i].m.LocalName(), types)
		}
	}
	if !sawSuspect {
		t.Errorf("no survivor suspected n5 before it was declared dead")
	}
}

func TestMembership_gracefulStopIsLeft(t *testing.T) {
	agents := startGroup(t, simnet.New(), 4, nil)
	rec := record(t, agents[0].m)
	agents[3].stop()
	waitFor(t, 10*time.Second, "n4 to be seen as left by all", func() bool {
		for _, a := range agents[:3] {
			if a.stateOf("n4") != StateLeft {
				return false
			}
		}
		return true
	})
	for _, typ := range rec.types("n4") {
		if typ == EventDead || typ == EventSuspect {
			t.Errorf("n4 stopped gracefully but n1 saw %v", rec.types("n4"))
		}
	}
	if got := testutil.ToFloat64(agents[0].m.metrics.members.WithLabelValues("left")); got != 1 {
		t.Errorf("haagent_gossip_members{state=left} = %v, want 1", got)
	}
}

func writeKeyring(t *testing.T, keys ...[]byte) string {
	t.Helper()
	var text string
	for _, k := range keys {
		text += base64.StdEncoding.EncodeToString(k) + "\n"
	}
	p := filepath.Join(t.TempDir(), "keyring")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMembership_outsidersCannotJoin(t *testing.T) {
	keyA := []byte("0123456789abcdef")
	keyB := []byte("fedcba9876543210")
	ringA := writeKeyring(t, keyA)
	ringB := writeKeyring(t, keyB)
	// A key the group only accepts (second line) still lets a member in:
	// that is how keys are rotated.
	ringBA := writeKeyring(t, keyB, keyA)

	cases := []struct {
		name   string
		mod    func(*Config)
		admits bool
	}{
		{"wrong key", func(c *Config) { c.KeyringFile = ringB }, false},
		{"no key", func(c *Config) { c.KeyringFile = "" }, false},
		{"wrong cluster label", func(c *Config) { c.KeyringFile = ringA; c.ClusterLabel = "other" }, false},
		{"accepted secondary key", func(c *Config) { c.KeyringFile = ringBA }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nw := simnet.New()
			group := startGroup(t, nw, 3, func(c *Config) { c.KeyringFile = ringA; c.ClusterLabel = "prod" })
			if tc.name == "accepted secondary key" {
				// The group must accept keyB too for its replies to be read.
				for _, a := range group {
					if err := a.m.keyring.AddKey(keyB); err != nil {
						t.Fatal(err)
					}
				}
			}
			cfg := testConfig("outsider")
			cfg.ClusterLabel = "prod"
			tc.mod(&cfg)
			out := startAgent(t, nw.NewTransport(), cfg, group[0].tr.Addr())
			if tc.admits {
				waitConverged(t, append(group, out), 4)
				return
			}
			// Give the outsider several join attempts and gossip rounds.
			time.Sleep(2 * time.Second)
			for _, a := range group {
				if _, ok := a.member("outsider"); ok {
					t.Fatalf("%s admitted the outsider", a.m.LocalName())
				}
			}
			if n := len(out.m.Members()); n != 1 {
				t.Fatalf("outsider sees %d members, want only itself", n)
			}
		})
	}
}

func TestMembership_sameNameNewAddressRejoins(t *testing.T) {
	nw := simnet.New()
	agents := startGroup(t, nw, 4, nil)
	oldAddr := agents[3].tr.Addr()
	agents[3].crash()
	// A new address is accepted once the old one is dead (and
	// DeadNodeReclaimTime has passed); until then peers keep the old one.
	waitFor(t, 20*time.Second, "n4 dead everywhere", func() bool {
		for _, a := range agents[:3] {
			if a.stateOf("n4") != StateDead {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * testConfig("x").DeadNodeReclaimTime)

	tr, err := nw.NewTransportAt("10.9.9.9", 7946)
	if err != nil {
		t.Fatal(err)
	}
	back := startAgent(t, tr, testConfig("n4"), agents[0].tr.Addr())
	waitFor(t, 20*time.Second, "n4 alive again at its new address everywhere", func() bool {
		for _, a := range append(agents[:3], back) {
			m, ok := a.member("n4")
			if !ok || m.State != StateAlive || m.Addr != tr.Addr() {
				return false
			}
		}
		return true
	})
	if m, _ := agents[0].member("n4"); m.Addr == oldAddr {
		t.Fatalf("n4 still at old address %s", oldAddr)
	}
}

// badMetaDelegate is a member that publishes garbage metadata.
type badMetaDelegate struct{ meta []byte }

func (d badMetaDelegate) NodeMeta(int) []byte               { return d.meta }
func (badMetaDelegate) NotifyMsg([]byte)                    {}
func (badMetaDelegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (badMetaDelegate) LocalState(bool) []byte              { return nil }
func (badMetaDelegate) MergeRemoteState(buf []byte, _ bool) {}

func TestMembership_malformedMetadataIsCountedAndIgnored(t *testing.T) {
	nw := simnet.New()
	agents := startGroup(t, nw, 3, nil)

	c := memberlist.DefaultLANConfig()
	c.Name = "rogue"
	c.Transport = nw.NewTransport()
	c.Delegate = badMetaDelegate{meta: []byte{0xff, 0x01, 0x80}} // truncated varint
	c.LogOutput = discard{}
	c.ProbeInterval, c.ProbeTimeout, c.GossipInterval = 100*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	rogue, err := memberlist.Create(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rogue.Shutdown() })
	if _, err := rogue.Join([]string{agents[0].tr.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the rogue member to be known everywhere", func() bool {
		for _, a := range agents {
			if _, ok := a.member("rogue"); !ok {
				return false
			}
		}
		return true
	})
	for _, a := range agents {
		m, _ := a.member("rogue")
		if m.MetaError == "" || m.Meta != (Meta{}) {
			t.Errorf("%s: rogue metadata %+v error %q; want an error and no metadata", a.m.LocalName(), m.Meta, m.MetaError)
		}
		if got := testutil.ToFloat64(a.m.metrics.metaErrors); got < 1 {
			t.Errorf("%s: haagent_gossip_metadata_decode_errors_total = %v, want >= 1", a.m.LocalName(), got)
		}
	}
	// The group is unharmed.
	waitFor(t, 5*time.Second, "all three agents still alive everywhere", func() bool {
		for _, a := range agents {
			for _, other := range agents {
				if a.stateOf(other.m.LocalName()) != StateAlive {
					return false
				}
			}
		}
		return true
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestMembership_readinessReachesPeers(t *testing.T) {
	agents := startGroup(t, simnet.New(), 3, nil)
	rec := record(t, agents[1].m)
	if err := agents[0].m.SetReadiness(false, "kubelet: connection refused"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "n2 to see n1 not ready", func() bool {
		m, _ := agents[1].member("n1")
		return !m.Meta.Ready && m.Meta.Reason == "kubelet: connection refused"
	})
	waitFor(t, 5*time.Second, "an update event for n1's readiness change", func() bool {
		_, ok := rec.first("n1", EventUpdate)
		return ok
	})
	if err := agents[0].m.SetReadiness(true, "ignored when ready"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "n3 to see n1 ready", func() bool {
		m, _ := agents[2].member("n1")
		return m.Meta.Ready && m.Meta.Reason == ""
	})
}

// startHandlingGroup starts three agents that handle message kind 7 with
// the handler handler(name) returns, and waits until they see each other.
func startHandlingGroup(t *testing.T, handler func(name string) Handler) []*testAgent {
	t.Helper()
	nw := simnet.New()
	var agents []*testAgent
	for i := 1; i <= 3; i++ {
		cfg := testConfig(fmt.Sprintf("n%d", i))
		tr := nw.NewTransport()
		reg := prometheus.NewRegistry()
		var seeds PeerSource
		if i > 1 {
			seeds = staticSeeds{agents[0].tr.Addr()}
		}
		m, err := New(cfg, Deps{Logger: zap.NewNop(), Registerer: reg, Transport: tr, Seeds: seeds})
		if err != nil {
			t.Fatal(err)
		}
		m.Handle(7, handler(cfg.NodeName))
		ctx, cancel := context.WithCancel(context.Background())
		a := &testAgent{m: m, tr: tr, reg: reg, cancel: cancel, done: make(chan error, 1)}
		go func() { a.done <- m.Run(ctx) }()
		t.Cleanup(a.stop)
		agents = append(agents, a)
	}
	waitConverged(t, agents, 3)
	return agents
}

func TestMembership_applicationMessages(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{}
	agents := startHandlingGroup(t, func(name string) Handler {
		return func(p []byte) (bool, error) {
			if string(p) == "bad" {
				return false, errors.New("bad payload")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, seen := range got[name] {
				if seen == string(p) {
					return false, nil
				}
			}
			got[name] = append(got[name], string(p))
			return true, nil
		}
	})

	for _, b := range []struct {
		kind         byte
		key, payload string
	}{{7, "vote/n9", "hello"}, {9, "x", "nobody handles kind 9"}, {7, "bad", "bad"}} {
		if err := agents[0].m.Broadcast(b.kind, b.key, []byte(b.payload)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "n2 and n3 to receive the message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["n2"]) == 1 && len(got["n3"]) == 1 && got["n2"][0] == "hello"
	})
	waitFor(t, 5*time.Second, "unknown kind and rejected payload to be counted", func() bool {
		return testutil.ToFloat64(agents[1].m.metrics.malformed.WithLabelValues(reasonUnknownKind)) >= 1 &&
			testutil.ToFloat64(agents[1].m.metrics.malformed.WithLabelValues(reasonHandler)) >= 1
	})
	if n := testutil.ToFloat64(agents[1].m.metrics.messagesReceived.WithLabelValues(transportPacket)); n == 0 {
		t.Errorf("haagent_gossip_messages_received_total{transport=packet} = 0")
	}
}

// TestMembership_sendToOneMember: a message sent to one member reaches it
// and, its handler not asking for it, nobody else.
func TestMembership_sendToOneMember(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	agents := startHandlingGroup(t, func(name string) Handler {
		return func(p []byte) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			if string(p) == "for n2" {
				got[name]++
			}
			return false, nil
		}
	})
	if err := agents[0].m.SendTo("n2", 7, "k", []byte("for n2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "n2 to receive the message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got["n2"] == 1
	})
	time.Sleep(500 * time.Millisecond) // gossip rounds in which a relay would show
	mu.Lock()
	if got["n1"] != 0 || got["n3"] != 0 {
		t.Errorf("received by n1 %d and n3 %d times, want only n2", got["n1"], got["n3"])
	}
	mu.Unlock()
	if err := agents[0].m.SendTo("n9", 7, "k", nil); err == nil || err.Error() != "gossip: n9 is not a live member" {
		t.Errorf("SendTo(unknown) error = %v", err)
	}
}

// TestMembership_keyRotationWithoutRestart rotates the gossip key through
// the keyring files of running agents: the new key added, made primary,
// the old one removed. Nobody is suspected on the way; afterwards only the
// new key gets in.
func TestMembership_keyRotationWithoutRestart(t *testing.T) {
	keyA := []byte("0123456789abcdef")
	keyB := []byte("fedcba9876543210fedcba9876543210")
	dir := t.TempDir()
	write := func(path string, keys ...[]byte) {
		t.Helper()
		var text string
		for _, k := range keys {
			text += base64.StdEncoding.EncodeToString(k) + "\n"
		}
		writeAtomically(t, path, text)
	}
	nw := simnet.New()
	var agents []*testAgent
	var rings []string
	var recs []*recorder
	for i := 1; i <= 3; i++ {
		ring := filepath.Join(dir, fmt.Sprintf("keys-%d", i))
		write(ring, keyA)
		rings = append(rings, ring)
		cfg := testConfig(fmt.Sprintf("n%d", i))
		cfg.KeyringFile = ring
		tr := nw.NewTransport()
		reg := prometheus.NewRegistry()
		var seeds PeerSource
		if i > 1 {
			seeds = staticSeeds{agents[0].tr.Addr()}
		}
		m, err := New(cfg, Deps{Logger: testlog.New(t, zap.ErrorLevel), Registerer: reg, Transport: tr, Seeds: seeds})
		if err != nil {
			t.Fatal(err)
		}
		m.keyringReload = 50 * time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		a := &testAgent{m: m, tr: tr, reg: reg, cancel: cancel, done: make(chan error, 1)}
		go func() { a.done <- m.Run(ctx) }()
		t.Cleanup(a.stop)
		agents = append(agents, a)
		recs = append(recs, record(t, m))
	}
	waitConverged(t, agents, 3)

	everywhere := func(what string, ok func(*Membership) bool) {
		t.Helper()
		waitFor(t, 5*time.Second, what, func() bool {
			for _, a := range agents {
				if !ok(a.m) {
					return false
				}
			}
			return true
		})
		time.Sleep(500 * time.Millisecond) // gossip with the new keys for a while
		waitConverged(t, agents, 3)
	}
	for _, r := range rings {
		write(r, keyA, keyB)
	}
	everywhere("the new key installed", func(m *Membership) bool { return len(m.keyring.GetKeys()) == 2 })
	for _, r := range rings {
		write(r, keyB, keyA)
	}
	everywhere("the new key primary", func(m *Membership) bool { return bytes.Equal(m.keyring.GetPrimaryKey(), keyB) })
	for _, r := range rings {
		write(r, keyB)
	}
	everywhere("the old key removed", func(m *Membership) bool { return len(m.keyring.GetKeys()) == 1 })

	// A broken file changes nothing and is counted.
	failures := testutil.ToFloat64(agents[0].m.metrics.keyringReloads.WithLabelValues("failure"))
	writeAtomically(t, rings[0], "not a key\n")
	waitFor(t, 5*time.Second, "the failed reload counted", func() bool {
		return testutil.ToFloat64(agents[0].m.metrics.keyringReloads.WithLabelValues("failure")) > failures
	})
	if !bytes.Equal(agents[0].m.keyring.GetPrimaryKey(), keyB) || len(agents[0].m.keyring.GetKeys()) != 1 {
		t.Fatal("a broken keyring file changed the keys in use")
	}
	if got := testutil.ToFloat64(agents[0].m.metrics.keyringOK); got != 0 {
		t.Errorf("haagent_gossip_keyring_last_reload_successful = %v while the file is broken, want 0", got)
	}
	if got := testutil.ToFloat64(agents[1].m.metrics.keyringOK); got != 1 {
		t.Errorf("haagent_gossip_keyring_last_reload_successful of an agent with a good file = %v, want 1", got)
	}
	// Fixed, the file reloads again and the alert on the gauge resolves.
	write(rings[0], keyB)
	waitFor(t, 5*time.Second, "the reload successful again", func() bool {
		return testutil.ToFloat64(agents[0].m.metrics.keyringOK) == 1
	})

	for i, r := range recs {
		for _, other := range []string{"n1", "n2", "n3"} {
			for _, typ := range r.types(other) {
				if typ == EventSuspect || typ == EventDead {
					t.Errorf("n%d saw %s %s during the rotation", i+1, other, typ)
				}
			}
		}
	}

	old := writeKeyring(t, keyA)
	cfg := testConfig("old-key")
	cfg.KeyringFile = old
	outsider := startAgent(t, nw.NewTransport(), cfg, agents[0].tr.Addr())
	fresh := writeKeyring(t, keyB)
	cfg = testConfig("new-key")
	cfg.KeyringFile = fresh
	newcomer := startAgent(t, nw.NewTransport(), cfg, agents[0].tr.Addr())
	waitConverged(t, append(agents, newcomer), 4)
	if n := len(outsider.m.Members()); n != 1 {
		t.Fatalf("a member with the removed key sees %d members, want only itself", n)
	}
}

// TestMembership_admissionRefusesUnknownPeers: a peer the admission check
// refuses never becomes a member, and each refusal is counted.
func TestMembership_admissionRefusesUnknownPeers(t *testing.T) {
	nw := simnet.New()
	admit := func(name string, _ net.IP) string {
		if strings.HasPrefix(name, "n") {
			return ""
		}
		return "unknown_node"
	}
	var agents []*testAgent
	for i := 1; i <= 3; i++ {
		cfg := testConfig(fmt.Sprintf("n%d", i))
		tr := nw.NewTransport()
		reg := prometheus.NewRegistry()
		var seeds PeerSource
		if i > 1 {
			seeds = staticSeeds{agents[0].tr.Addr()}
		}
		m, err := New(cfg, Deps{Logger: testlog.New(t, zap.ErrorLevel), Registerer: reg, Transport: tr, Seeds: seeds, Admit: admit})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		a := &testAgent{m: m, tr: tr, reg: reg, cancel: cancel, done: make(chan error, 1)}
		go func() { a.done <- m.Run(ctx) }()
		t.Cleanup(a.stop)
		agents = append(agents, a)
	}
	waitConverged(t, agents, 3)
	rogue := startAgent(t, nw.NewTransport(), testConfig("rogue"), agents[0].tr.Addr())
	waitFor(t, 5*time.Second, "the rogue's refusals counted", func() bool {
		return testutil.ToFloat64(agents[0].m.metrics.refusals.WithLabelValues("unknown_node")) >= 1
	})
	time.Sleep(time.Second)
	for _, a := range agents {
		if _, ok := a.member("rogue"); ok {
			t.Fatalf("%s admitted the rogue", a.m.LocalName())
		}
	}
	_ = rogue
}

// TestMembership_concurrentMetadataUpdatesKeepTheLast: a readiness change
// and a coordinator change published at the same moment both reach the
// member table. memberlist's UpdateNode reads the metadata, then takes the
// next incarnation, then applies it: two at once could apply the older
// metadata last and lose the other change for good (an agent seen not
// ready by every peer, or a coordinator nobody finds).
func TestMembership_concurrentMetadataUpdatesKeepTheLast(t *testing.T) {
	nw := simnet.New()
	a := startAgent(t, nw.NewTransport(), testConfig("n1"))
	for round := range 3000 {
		if err := a.m.SetReadiness(false, "round"); err != nil {
			t.Fatal(err)
		}
		if err := a.m.SetCoordinator(false); err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); <-start; _ = a.m.SetReadiness(true, "") }()
		go func() { defer wg.Done(); <-start; _ = a.m.SetCoordinator(true) }()
		close(start)
		wg.Wait()
		self, _ := a.m.Member("n1")
		if !self.Meta.Ready || !self.Meta.Coordinator {
			t.Fatalf("round %d: after both changes the member table has ready %t, coordinator %t; want both true",
				round, self.Meta.Ready, self.Meta.Coordinator)
		}
	}
}

// writeAtomically replaces the file at path with text in one step, as the
// kubelet swaps a mounted Secret's files: a reload never reads it half
// written (os.WriteFile truncates first, and a reload in between would
// read an empty keyring and count a failure of its own).
func writeAtomically(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
