package gossip

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/haagent/haagent/internal/simnet"
)

// fakeNodes is a NodeSource with a fixed Node list.
type fakeNodes struct {
	synced bool
	exist  map[string]bool // name -> an agent ran on it
}

func (f *fakeNodes) Synced() bool            { return f.synced }
func (f *fakeNodes) Exists(name string) bool { _, ok := f.exist[name]; return ok }
func (f *fakeNodes) AgentNodes() []string {
	var out []string
	for n, agent := range f.exist {
		if agent {
			out = append(out, n)
		}
	}
	return out
}

// nodesWithAgents lists Nodes that have all run an agent.
func nodesWithAgents(names ...string) *fakeNodes {
	f := &fakeNodes{synced: true, exist: map[string]bool{}}
	for _, n := range names {
		f.exist[n] = true
	}
	return f
}

// peerNode is a memberlist node at its own address: 10.0.0.i:7946.
func peerNode(i int) *memberlist.Node {
	return &memberlist.Node{Name: fmt.Sprintf("n%d", i), Addr: net.IPv4(10, 0, 0, byte(i)), Port: 7946}
}

// tableMembership is a Membership that is not running: its table is set by
// calling memberlist's callbacks, as a running one's is.
func tableMembership(t *testing.T, nodes NodeSource, clk *clocktesting.FakeClock) *Membership {
	t.Helper()
	deps := Deps{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry(), Nodes: nodes}
	if clk != nil {
		deps.Clock = clk
	}
	m, err := New(testConfig("n1"), deps)
	if err != nil {
		t.Fatal(err)
	}
	m.onJoin(peerNode(1)) // memberlist announces the local node first
	return m
}

func TestQuorum_loneAgentIsNeverInAMajority(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes NodeSource
	}{
		{"no API", nil},
		{"API lists only this Node", nodesWithAgents("n1")},
		{"API not synced", &fakeNodes{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tableMembership(t, tc.nodes, nil)
			v := m.Quorum()
			if v.Expected != 1 || v.Live != 1 || v.Joined {
				t.Errorf("Quorum() = %+v, want 1 expected, 1 live, not joined", v)
			}
			if m.SeesMajority() || m.InTouch() {
				t.Errorf("a lone agent sees a majority (%v) or is in touch (%v): it has joined nobody", m.SeesMajority(), m.InTouch())
			}
		})
	}
}

func TestQuorum_expectedGroup(t *testing.T) {
	for _, tc := range []struct {
		name         string
		nodes        NodeSource
		alive, dead  []int // members n2.. joined, then declared dead
		left         []int
		wantExpected int
		wantLive     int
		wantMajority bool
	}{
		{name: "gossip only", alive: []int{2, 3}, dead: []int{4, 5}, wantExpected: 5, wantLive: 3, wantMajority: true},
		{name: "gossip only, dead majority", alive: []int{2}, dead: []int{3, 4, 5}, wantExpected: 5, wantLive: 2},
		{name: "left members leave the group", alive: []int{2}, dead: []int{3}, left: []int{4, 5}, wantExpected: 3, wantLive: 2, wantMajority: true},
		{
			// A restarted agent that sees 3 of the 7 Nodes agents ran on.
			name: "Nodes never seen in gossip count", nodes: nodesWithAgents("n1", "n2", "n3", "n4", "n5", "n6", "n7"),
			alive: []int{2, 3}, wantExpected: 7, wantLive: 3,
		},
		{
			name: "Nodes no agent ran on do not count", nodes: &fakeNodes{synced: true, exist: map[string]bool{"n1": true, "n2": true, "n3": true, "cp-1": false, "cp-2": false}},
			alive: []int{2}, dead: []int{3}, wantExpected: 3, wantLive: 2, wantMajority: true,
		},
		{
			name: "deleted Nodes leave the group", nodes: nodesWithAgents("n1", "n2", "n3"),
			alive: []int{2, 3}, dead: []int{4, 5, 6, 7}, wantExpected: 3, wantLive: 3, wantMajority: true,
		},
		{
			// The cache outlives an outage: nothing is deleted on no word.
			name: "API not synced deletes nothing", nodes: &fakeNodes{synced: false},
			alive: []int{2, 3}, dead: []int{4, 5, 6, 7}, wantExpected: 7, wantLive: 3,
		},
		{
			name: "a left member whose Node remains does not count", nodes: nodesWithAgents("n1", "n2", "n3", "n4"),
			alive: []int{2}, left: []int{3, 4}, wantExpected: 2, wantLive: 2, wantMajority: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tableMembership(t, tc.nodes, nil)
			for _, i := range slices.Concat(tc.alive, tc.dead, tc.left) {
				m.onJoin(peerNode(i))
			}
			for _, i := range tc.dead {
				m.onLeave(peerNode(i))
			}
			for _, i := range tc.left {
				m.mu.Lock()
				m.members[peerNode(i).Name].Meta.Leaving = true
				m.mu.Unlock()
				m.onLeave(peerNode(i))
			}
			v := m.Quorum()
			if v.Expected != tc.wantExpected || v.Live != tc.wantLive || v.SeesMajority() != tc.wantMajority {
				t.Errorf("Quorum() = %+v (majority %v), want %d expected, %d live, majority %v",
					v, v.SeesMajority(), tc.wantExpected, tc.wantLive, tc.wantMajority)
			}
			if m.SeesMajority() != tc.wantMajority {
				t.Errorf("SeesMajority() = %v, want %v", m.SeesMajority(), tc.wantMajority)
			}
		})
	}
}

func TestQuorum_contactExpiresAfterTheIsolationTimeout(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	m := tableMembership(t, nil, clk)
	for i := 2; i <= 5; i++ {
		m.onJoin(peerNode(i))
	}
	timeout := m.IsolationTimeout()
	heard := func(ids ...int) {
		for _, i := range ids {
			m.contacts.heard(peerNode(i).Address(), clk.Now())
		}
	}
	if m.InTouch() {
		t.Fatal("in touch before any packet arrived")
	}
	heard(2)
	if v := m.Quorum(); v.InTouch != 2 || v.HasContact() {
		t.Fatalf("after a packet from one of four peers: %+v, want 2 in touch of 5, no majority", v)
	}
	heard(3)
	if !m.InTouch() {
		t.Fatalf("not in touch after packets from 2 of 4 peers (3 of 5 with itself): %+v", m.Quorum())
	}
	// A packet from an address that is no member's counts for nobody.
	m.contacts.heard("192.0.2.1:7946", clk.Now())
	clk.Step(timeout - time.Millisecond)
	if !m.InTouch() {
		t.Fatalf("lost touch before the isolation timeout (%s) passed", timeout)
	}
	clk.Step(time.Millisecond)
	if v := m.Quorum(); v.HasContact() || v.InTouch != 1 {
		t.Fatalf("still in touch once the isolation timeout passed: %+v", v)
	}
	// Gossip still holds every peer alive: memberlist's view says nothing
	// about contact.
	if !m.SeesMajority() {
		t.Error("gossip view lost its majority, but every member is alive in it")
	}
	// A member that moved is heard at its new address only.
	moved := peerNode(4)
	moved.Addr = net.IPv4(10, 0, 1, 4)
	m.onUpdate(moved)
	m.contacts.heard(peerNode(4).Address(), clk.Now())
	heard(5)
	if m.InTouch() {
		t.Fatalf("a packet from a member's old address counted: %+v", m.Quorum())
	}
	m.contacts.heard(moved.Address(), clk.Now())
	if !m.InTouch() {
		t.Fatalf("a packet from a member's new address did not count: %+v", m.Quorum())
	}
}

func TestQuorum_pingTargetsAreTheShortfallHeardFromLeast(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	m := tableMembership(t, nil, clk)
	for i := 2; i <= 9; i++ {
		m.onJoin(peerNode(i))
	}
	half := m.IsolationTimeout() / 2
	// n2..n9 heard from in that order, 10 ms apart; then time passes so
	// that only n8 and n9 were heard from within half the timeout.
	for i := 2; i <= 9; i++ {
		m.contacts.heard(peerNode(i).Address(), clk.Now())
		clk.Step(10 * time.Millisecond)
	}
	clk.Step(half - 25*time.Millisecond) // n7 was heard half+5ms ago, n8 half-5ms ago
	// 9 expected, quorum 5; fresh: itself, n8 and n9 -> short by 2, plus 2.
	var got []string
	for _, mem := range m.pingTargets() {
		got = append(got, mem.Name)
	}
	if want := []string{"n2", "n3", "n4", "n5"}; !slices.Equal(got, want) {
		t.Errorf("pingTargets() = %v, want the four heard from least recently %v", got, want)
	}
	for i := 2; i <= 9; i++ {
		m.contacts.heard(peerNode(i).Address(), clk.Now())
	}
	if got := m.pingTargets(); len(got) != 0 {
		t.Errorf("pingTargets() = %v with every peer fresh, want none", got)
	}
}

// On a real (simulated) network, a member cut off from everyone, or on the
// minority side of a partition, loses contact within the isolation timeout
// and long before memberlist would declare its peers dead; the majority
// keeps it.
func TestQuorum_cutOffMembersLoseContact(t *testing.T) {
	for _, tc := range []struct {
		name     string
		minority []int // indexes into the group of 5
	}{
		{"one member cut off from all", []int{4}},
		{"two of five on the minority side", []int{3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const timeout = 600 * time.Millisecond
			nw := simnet.New()
			agents := startGroup(t, nw, 5, func(c *Config) { c.IsolationTimeout = timeout })
			waitFor(t, 10*time.Second, "every agent in touch", func() bool {
				for _, a := range agents {
					if !a.m.InTouch() {
						return false
					}
				}
				return true
			})
			var small, large []string
			var minority, majority []*testAgent
			for i, a := range agents {
				if slices.Contains(tc.minority, i) {
					small, minority = append(small, a.tr.Addr()), append(minority, a)
				} else {
					large, majority = append(large, a.tr.Addr()), append(majority, a)
				}
			}
			cut := time.Now()
			nw.Partition(small, large)
			// Generous for a loaded machine; the rule itself is the timeout.
			waitFor(t, 10*timeout, "the minority to lose contact", func() bool {
				for _, a := range minority {
					if a.m.InTouch() {
						return false
					}
				}
				return true
			})
			t.Logf("minority lost contact %s after the cut (isolation timeout %s)", time.Since(cut).Round(time.Millisecond), timeout)
			for _, a := range majority {
				if !a.m.InTouch() {
					t.Errorf("%s, on the majority side, lost contact: %+v", a.m.LocalName(), a.m.Quorum())
				}
			}
		})
	}
}

// Pings are paid for only while someone asks InTouch (the fencer, while
// the API server is away): Quorum, which /members and the metrics read,
// does not ask, and the asking lapses after two isolation timeouts.
func TestQuorum_pingsOnlyWhileContactIsWanted(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	m := tableMembership(t, nil, clk)
	for i := 2; i <= 5; i++ {
		m.onJoin(peerNode(i))
	}
	m.Quorum()
	if m.contactWantedNow() {
		t.Fatal("contact wanted after Quorum alone")
	}
	if len(m.pingTargets()) == 0 {
		t.Fatal("no ping targets with no peer heard from: the gate below would test nothing")
	}
	m.InTouch()
	if !m.contactWantedNow() {
		t.Fatal("contact not wanted right after InTouch")
	}
	clk.Step(2*m.IsolationTimeout() - time.Millisecond)
	if !m.contactWantedNow() {
		t.Fatal("contact no longer wanted before two isolation timeouts passed")
	}
	clk.Step(time.Millisecond)
	if m.contactWantedNow() {
		t.Fatal("contact still wanted two isolation timeouts after the last InTouch")
	}
}

// The majority tests' counts are kept between changes of the table: every
// change that moves a member in or out of the expected group, or between
// live and not, must show in the next answer, and the API's word must show
// at once, though the table did not change.
func TestQuorum_expectedFollowsTheTable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes *fakeNodes
	}{
		{"no API", nil},
		{"API", nodesWithAgents("n1", "n2", "n3", "n4")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var src NodeSource
			if tc.nodes != nil {
				src = tc.nodes
			}
			m := tableMembership(t, src, nil)
			check := func(step string, wantNames []string, wantLive int) {
				t.Helper()
				names, live := m.expected()
				if !slices.Equal(names, wantNames) || live != wantLive {
					t.Errorf("%s: expected() = %v, %d live; want %v, %d live", step, names, live, wantNames, wantLive)
				}
				if v := m.Quorum(); v.Expected != len(wantNames) || v.Live != wantLive {
					t.Errorf("%s: Quorum() = %+v; want %d expected, %d live", step, v, len(wantNames), wantLive)
				}
			}
			all := []string{"n1", "n2", "n3", "n4"}
			if tc.nodes == nil {
				check("alone", []string{"n1"}, 1)
			} else {
				check("alone", all, 1)
			}
			m.onJoin(peerNode(3))
			m.onJoin(peerNode(2))
			if tc.nodes == nil {
				check("joined", []string{"n1", "n2", "n3"}, 3)
			} else {
				check("joined", all, 3)
			}
			m.onSuspect("n2")
			if tc.nodes == nil {
				check("suspect", []string{"n1", "n2", "n3"}, 3)
			} else {
				check("suspect", all, 3)
			}
			m.onLeave(peerNode(2)) // dead: still expected, not live
			if tc.nodes == nil {
				check("dead", []string{"n1", "n2", "n3"}, 2)
			} else {
				check("dead", all, 2)
			}
			left := peerNode(3)
			left.Meta, _ = Meta{NodeName: "n3", Leaving: true}.Encode()
			m.onUpdate(left)
			m.onLeave(left) // left: no longer expected
			if tc.nodes == nil {
				check("left", []string{"n1", "n2"}, 1)
				return
			}
			check("left", []string{"n1", "n2", "n4"}, 1)
			// The API deletes n2's Node: the table is the same, the
			// answer is not.
			delete(tc.nodes.exist, "n2")
			check("Node deleted", []string{"n1", "n4"}, 1)
		})
	}
}

// ExpectedNames hands out a copy: a caller that sorts or edits it must
// not change what the majority tests count.
func TestExpectedNames_isACopy(t *testing.T) {
	m := tableMembership(t, nil, nil)
	m.onJoin(peerNode(2))
	got := m.ExpectedNames()
	got[0] = "zz"
	if names, _ := m.expected(); names[0] != "n1" {
		t.Errorf("editing ExpectedNames() changed the expected group: %v", names)
	}
}
