package gossip

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
)

func tableNode(name string) *memberlist.Node {
	return &memberlist.Node{Name: name, Addr: net.IPv4(10, 0, 0, 1), Port: 7946}
}

// The state counts are kept as members change rather than counted again on
// every change; they must agree with a count of the table at every step.
func TestMembership_stateCountsFollowTheTable(t *testing.T) {
	m, err := New(testConfig("self"), Deps{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		want := map[State]int{}
		m.mu.Lock()
		for _, mem := range m.members {
			want[mem.State]++
		}
		m.mu.Unlock()
		for i, name := range stateNames {
			if got := testutil.ToFloat64(m.metrics.members.WithLabelValues(name)); int(got) != want[State(i)] {
				t.Errorf("%s: gauge %s = %v, want %d", step, name, got, want[State(i)])
			}
		}
		if got, want := m.alive.Load(), int64(want[StateAlive]+want[StateSuspect]); got != want {
			t.Errorf("%s: alive = %d, want %d", step, got, want)
		}
	}
	for i := range 5 {
		m.onJoin(tableNode(fmt.Sprintf("peer-%d", i)))
	}
	check("five joined")
	m.onJoin(tableNode("peer-0")) // again: no change
	check("joined twice")
	m.onSuspect("peer-1")
	m.onSuspect("peer-2")
	check("two suspected")
	m.onAck("peer-1")
	check("one refuted")
	m.onLeave(tableNode("peer-2"))
	check("one dead")
	m.onUpdate(tableNode("peer-9")) // first heard of through an update
	check("one added by an update")
	m.onLeave(tableNode("peer-9"))
	m.onJoin(tableNode("peer-2"))
	check("one back")

	if got := testutil.ToFloat64(m.metrics.members.WithLabelValues("dead")); got != 1 {
		t.Errorf("dead gauge = %v, want 1", got)
	}
	mem, ok := m.Member("peer-1")
	if !ok || mem.Name != "peer-1" || mem.State != StateAlive {
		t.Errorf("Member(peer-1) = %+v, %v; want alive", mem, ok)
	}
	if _, ok := m.Member("nobody"); ok {
		t.Error("Member(nobody) found a member")
	}
	all := m.Members()
	if len(all) != 6 {
		t.Fatalf("Members() has %d entries, want 6", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].Name >= all[i].Name {
			t.Fatalf("Members() not sorted by name: %q before %q", all[i-1].Name, all[i].Name)
		}
	}
	all[0].State = StateDead // a copy: the table must not change
	if mem, _ := m.Member(all[0].Name); mem.State == StateDead {
		t.Error("Members() returned the table's entries, not copies")
	}
}

// The repair exchange of the rejoin round is spaced out as memberlist
// spaces its push-pulls: every round up to 32 members, then one round more
// per doubling.
func TestRepairEvery(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{1, 1}, {7, 1}, {20, 1}, {32, 1}, {33, 2}, {64, 2}, {65, 3}, {100, 3}, {250, 4}, {500, 5}, {1000, 6}, {5000, 9},
	} {
		if got := repairEvery(c.n); got != c.want {
			t.Errorf("repairEvery(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// With a push/pull base longer than the rejoin interval the repair
// exchange is spaced out by as many rejoin intervals more; a shorter one
// leaves it as memberlist spaces its push-pulls.
func TestRepairRounds(t *testing.T) {
	const rejoin = 30 * time.Second
	for _, c := range []struct {
		n        int
		pushPull time.Duration
		want     int
	}{
		{20, 15 * time.Second, 1},
		{1000, 15 * time.Second, 6},
		{1000, 30 * time.Second, 6},
		{2000, 31 * time.Second, 14},
		{5000, 60 * time.Second, 18},
		{5000, 90 * time.Second, 27},
	} {
		if got := repairRounds(c.n, c.pushPull, rejoin); got != c.want {
			t.Errorf("repairRounds(%d, %s, %s) = %d, want %d", c.n, c.pushPull, rejoin, got, c.want)
		}
	}
	if got := repairRounds(1000, time.Minute, 0); got != 6 {
		t.Errorf("repairRounds with rejoining off = %d, want 6", got)
	}
}
