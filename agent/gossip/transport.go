package gossip

import (
	"fmt"
	"log"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// countingTransport wraps a memberlist transport and counts packets, streams
// and bytes in both directions. memberlist's own counters are process-wide;
// these belong to one Membership and work with any transport, including the
// in-memory one of the tests.
type countingTransport struct {
	memberlist.NodeAwareTransport
	// The series are looked up once: a lookup by label value hashes the
	// label and takes the vector's lock, on every packet.
	packetsIn, packetBytesIn   prometheus.Counter
	packetsOut, packetBytesOut prometheus.Counter
	streamsIn, streamsOut      prometheus.Counter
	streamBytesIn              prometheus.Counter
	streamBytesOut             prometheus.Counter
	// heard is told the source address of every packet received.
	heard   func(from string)
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

func newCountingTransport(inner memberlist.NodeAwareTransport, m *metrics, heard func(from string)) *countingTransport {
	t := &countingTransport{
		NodeAwareTransport: inner,
		packetsIn:          m.messagesReceived.WithLabelValues(transportPacket),
		packetBytesIn:      m.bytesReceived.WithLabelValues(transportPacket),
		packetsOut:         m.messagesSent.WithLabelValues(transportPacket),
		packetBytesOut:     m.bytesSent.WithLabelValues(transportPacket),
		streamsIn:          m.messagesReceived.WithLabelValues(transportStream),
		streamsOut:         m.messagesSent.WithLabelValues(transportStream),
		streamBytesIn:      m.bytesReceived.WithLabelValues(transportStream),
		streamBytesOut:     m.bytesSent.WithLabelValues(transportStream),
		heard:              heard,
		packets:            make(chan *memberlist.Packet),
		streams:            make(chan net.Conn),
		done:               make(chan struct{}),
	}
	t.wg.Add(2)
	go t.relayPackets()
	go t.relayStreams()
	return t
}

func (t *countingTransport) relayPackets() {
	defer t.wg.Done()
	in := t.NodeAwareTransport.PacketCh()
	for {
		select {
		case p := <-in:
			t.packetsIn.Inc()
			t.packetBytesIn.Add(float64(len(p.Buf)))
			if p.From != nil {
				t.heard(p.From.String())
			}
			select {
			case t.packets <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *countingTransport) relayStreams() {
	defer t.wg.Done()
	in := t.NodeAwareTransport.StreamCh()
	for {
		select {
		case c := <-in:
			t.streamsIn.Inc()
			select {
			case t.streams <- t.count(c):
			case <-t.done:
				c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *countingTransport) count(c net.Conn) net.Conn {
	return &countingConn{
		Conn: c,
		sent: t.streamBytesOut,
		recv: t.streamBytesIn,
	}
}

func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *countingTransport) StreamCh() <-chan net.Conn           { return t.streams }

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.sentPacket(len(b))
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	t.sentPacket(len(b))
	return t.NodeAwareTransport.WriteToAddress(b, addr)
}

func (t *countingTransport) sentPacket(n int) {
	t.packetsOut.Inc()
	t.packetBytesOut.Add(float64(n))
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	t.streamsOut.Inc()
	return t.count(c), nil
}

func (t *countingTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	t.streamsOut.Inc()
	return t.count(c), nil
}

// Shutdown stops the inner transport, then the relays.
func (t *countingTransport) Shutdown() error {
	err := t.NodeAwareTransport.Shutdown()
	t.once.Do(func() { close(t.done) })
	t.wg.Wait()
	return err
}

type countingConn struct {
	net.Conn
	sent, recv prometheus.Counter
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.recv.Add(float64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent.Add(float64(n))
	return n, err
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
