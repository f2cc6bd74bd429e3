package main

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/internal/simnet"
)

// The traffic is counted here, with atomic counters, rather than read from
// each member's haagent_gossip_* metrics: gathering hundreds of Prometheus
// registries takes minutes on a process that is short of CPU, since every
// Gather waits for goroutines of its own to be scheduled.

// meteredTransport counts what a member sends: packets, and the bytes of
// the streams it opens, both ways (a stream's replies are counted with the
// member that dialled, which leaves the group's total right).
type meteredTransport struct {
	*simnet.Transport
	packets, packetBytes atomic.Int64
	streams, streamBytes atomic.Int64
}

var _ memberlist.NodeAwareTransport = (*meteredTransport)(nil)

func (t *meteredTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.packets.Add(1)
	t.packetBytes.Add(int64(len(b)))
	return t.Transport.WriteTo(b, addr)
}

func (t *meteredTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	t.packets.Add(1)
	t.packetBytes.Add(int64(len(b)))
	return t.Transport.WriteToAddress(b, addr)
}

func (t *meteredTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.Transport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	t.streams.Add(1)
	return &meteredConn{Conn: c, bytes: &t.streamBytes}, nil
}

func (t *meteredTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(addr.Addr, timeout)
}

type meteredConn struct {
	net.Conn
	bytes *atomic.Int64
}

func (c *meteredConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.bytes.Add(int64(n))
	return n, err
}

func (c *meteredConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.bytes.Add(int64(n))
	return n, err
}

// meteredGossip is the membership as agreement sees it, counting the
// messages agreement sends (votes and notices, gossiped or sent to the
// coordinator) and the ones it receives, and of those the ones it passes
// on ("fresh").
type meteredGossip struct {
	*gossip.Membership
	votesSent, votesIn, votesFresh atomic.Int64
}

func (g *meteredGossip) Broadcast(kind byte, key string, payload []byte) error {
	g.votesSent.Add(1)
	return g.Membership.Broadcast(kind, key, payload)
}

func (g *meteredGossip) SendTo(name string, kind byte, key string, payload []byte) error {
	g.votesSent.Add(1)
	return g.Membership.SendTo(name, kind, key, payload)
}

func (g *meteredGossip) Handle(kind byte, h gossip.Handler) {
	g.Membership.Handle(kind, func(payload []byte) (bool, error) {
		fresh, err := h(payload)
		g.votesIn.Add(1)
		if fresh {
			g.votesFresh.Add(1)
		}
		return fresh, err
	})
}

// counters are one member's counts at one moment.
type counters struct {
	sentBytes, sentMsgs float64
	packetBytes         float64
	streams             float64
	votesSent           float64
	votesIn, votesFresh float64
}

func (m *member) counters() counters {
	return counters{
		sentBytes:   float64(m.tr.packetBytes.Load() + m.tr.streamBytes.Load()),
		sentMsgs:    float64(m.tr.packets.Load() + m.tr.streams.Load()),
		packetBytes: float64(m.tr.packetBytes.Load()),
		streams:     float64(m.tr.streams.Load()),
		votesSent:   float64(m.mg.votesSent.Load()),
		votesIn:     float64(m.mg.votesIn.Load()),
		votesFresh:  float64(m.mg.votesFresh.Load()),
	}
}

func countAll(ms []*member) map[int]counters {
	out := make(map[int]counters, len(ms))
	for _, m := range ms {
		out[m.idx] = m.counters()
	}
	return out
}

// packets is the number of packets ms have sent.
func packets(ms []*member) float64 {
	var sum int64
	for _, m := range ms {
		sum += m.tr.packets.Load()
	}
	return float64(sum)
}

// packetBytes is the packet bytes ms have sent.
func packetBytes(ms []*member) float64 {
	var sum int64
	for _, m := range ms {
		sum += m.tr.packetBytes.Load()
	}
	return float64(sum)
}
