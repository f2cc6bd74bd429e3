// Package simnet is an in-memory network for memberlist, with the faults
// that real networks have: lost packets, delay, partitions and hosts that
// vanish without a word.
//
// memberlist's own MockTransport delivers packets on unbuffered channels, so
// a member that stops without leaving blocks every sender and stalls the
// whole group. Here a packet to a host that is down, cut off or whose
// queue is full is dropped, as a real network would, and a stream to it
// fails after the dialler's timeout.
//
// Used by unit tests and by the scale simulation of the benchmarks; it
// touches no real network.
package simnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// packetQueue is each host's receive buffer, in packets; beyond it packets
// are dropped, as a kernel socket buffer would. Linux's default limit of a
// UDP socket's buffer (net.core.rmem_max, which caps memberlist's request
// for 2 MiB) holds about 180 full-sized gossip packets; 256 is of that
// order. A deeper buffer only turns an overloaded receiver's backlog into
// seconds of delay and, with hundreds of hosts in one process, gigabytes.
const packetQueue = 256

// Network connects Transports. The zero value is not usable; use New.
type Network struct {
	mu      sync.RWMutex
	hosts   map[string]*Transport
	next    int
	loss    float64
	delay   time.Duration
	queue   int // receive buffer of hosts added from now on, in packets
	blocked map[[2]string]bool

	dropped    atomic.Int64
	delivered  atomic.Int64
	overflowed atomic.Int64

	// line holds the delayed packets in the order they were sent: every
	// packet has the same delay, so that is also the order they are due.
	// One goroutine delivers them while there are any, rather than a
	// timer and a goroutine per packet, which at tens of thousands of
	// packets a second cost more than the members that send them.
	lineMu      sync.Mutex
	line        []delayed
	lineHead    int
	lineRunning bool
}

// delayed is a packet on its way.
type delayed struct {
	due time.Time
	dst *Transport
	p   *memberlist.Packet
}

// New returns an empty network.
func New() *Network {
	return &Network{hosts: map[string]*Transport{}, blocked: map[[2]string]bool{}, queue: packetQueue}
}

// addr is a host address on the network.
type addr string

func (a addr) Network() string { return "simnet" }
func (a addr) String() string  { return string(a) }

// NewTransport adds a host with the next free address (10.0.x.y:7946 in
// form only; nothing is sent on a real network).
func (n *Network) NewTransport() *Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.next++
	ip := fmt.Sprintf("10.0.%d.%d", n.next/250, n.next%250+1)
	return n.addLocked(ip, 7946)
}

// NewTransportAt adds a host at a given IP and port, e.g. to bring a node
// back at a new address.
func (n *Network) NewTransportAt(ip string, port int) (*Transport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := net.JoinHostPort(ip, strconv.Itoa(port))
	if t, ok := n.hosts[a]; ok && !t.isDown() {
		return nil, fmt.Errorf("simnet: address %s in use", a)
	}
	return n.addLocked(ip, port), nil
}

func (n *Network) addLocked(ip string, port int) *Transport {
	t := &Transport{
		net:     n,
		ip:      net.ParseIP(ip),
		port:    port,
		addr:    net.JoinHostPort(ip, strconv.Itoa(port)),
		packets: make(chan *memberlist.Packet, n.queue),
		streams: make(chan net.Conn, 16),
		done:    make(chan struct{}),
	}
	n.hosts[t.addr] = t
	return t
}

// SetReceiveBuffer sets the receive buffer, in packets, of the hosts added
// from now on (packetQueue by default).
func (n *Network) SetReceiveBuffer(packets int) {
	n.mu.Lock()
	n.queue = max(packets, 1)
	n.mu.Unlock()
}

// SetLoss makes each packet be lost with probability p (0 to 1). Streams
// are not affected, as TCP retransmits.
func (n *Network) SetLoss(p float64) {
	n.mu.Lock()
	n.loss = p
	n.mu.Unlock()
}

// SetDelay delays every packet by d. Packets are delivered in the order they
// were sent: after a change to a shorter delay, a new packet waits for the
// ones sent before it.
func (n *Network) SetDelay(d time.Duration) {
	n.mu.Lock()
	n.delay = d
	n.mu.Unlock()
}

// Partition cuts every link between a host of side a and a host of side b,
// in both directions. Arguments are transport addresses.
func (n *Network) Partition(a, b []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			n.blocked[[2]string{x, y}] = true
			n.blocked[[2]string{y, x}] = true
		}
	}
}

// Heal removes every partition.
func (n *Network) Heal() {
	n.mu.Lock()
	n.blocked = map[[2]string]bool{}
	n.mu.Unlock()
}

// Stats returns packets delivered and dropped so far. Dropped counts those
// lost on the way, those whose receiver was down when they arrived and
// those that found its buffer full; delayed packets count when they arrive.
func (n *Network) Stats() (delivered, dropped int64) {
	return n.delivered.Load(), n.dropped.Load()
}

// Overflowed returns the packets dropped so far because their receiver's
// buffer was full: a receiver that falls behind.
func (n *Network) Overflowed() int64 { return n.overflowed.Load() }

// route returns the destination if a packet or stream from src may reach
// dst now, and the delay to apply.
func (n *Network) route(src, dst string, packet bool) (*Transport, time.Duration, bool) {
	n.mu.RLock()
	t, ok := n.hosts[dst]
	ok = ok && !t.isDown() && (len(n.blocked) == 0 || !n.blocked[[2]string{src, dst}])
	loss, delay := n.loss, n.delay
	n.mu.RUnlock()
	if !ok {
		if packet {
			n.dropped.Add(1)
		}
		return nil, 0, false
	}
	if packet && loss > 0 && rand.Float64() < loss {
		n.dropped.Add(1)
		return nil, 0, false
	}
	return t, delay, true
}

// send puts a packet on the delay line, and starts its goroutine if it is
// not running.
func (n *Network) send(dst *Transport, p *memberlist.Packet, due time.Time) {
	n.lineMu.Lock()
	n.line = append(n.line, delayed{due: due, dst: dst, p: p})
	start := !n.lineRunning
	n.lineRunning = true
	n.lineMu.Unlock()
	if start {
		go n.runLine()
	}
}

// runLine delivers the delayed packets as they fall due, and returns when
// none is left.
func (n *Network) runLine() {
	var batch []delayed
	for {
		n.lineMu.Lock()
		if n.lineHead == len(n.line) {
			n.line, n.lineHead = n.line[:0], 0
			n.lineRunning = false
			n.lineMu.Unlock()
			return
		}
		now := time.Now()
		head := n.line[n.lineHead]
		if wait := head.due.Sub(now); wait > 0 {
			n.lineMu.Unlock()
			time.Sleep(wait)
			continue
		}
		batch = batch[:0]
		for n.lineHead < len(n.line) && !n.line[n.lineHead].due.After(now) {
			batch = append(batch, n.line[n.lineHead])
			n.line[n.lineHead] = delayed{}
			n.lineHead++
		}
		if n.lineHead > 1024 && n.lineHead > len(n.line)/2 {
			// Under steady traffic the line never empties: move what is
			// left to the front so the slice does not grow for ever.
			k := copy(n.line, n.line[n.lineHead:])
			clear(n.line[k:])
			n.line, n.lineHead = n.line[:k], 0
		}
		n.lineMu.Unlock()
		for _, d := range batch {
			d.dst.deliver(d.p)
		}
	}
}

// Transport is one host's memberlist transport on a Network.
type Transport struct {
	net     *Network
	ip      net.IP
	port    int
	addr    string
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// Addr is the host's address, host:port.
func (t *Transport) Addr() string { return t.addr }

func (t *Transport) isDown() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// Crash takes the host off the network at once: it neither sends nor
// receives from now on, and its memberlist is not told. This is a power
// failure, not a leave.
func (t *Transport) Crash() { t.once.Do(func() { close(t.done) }) }

// FinalAdvertiseAddr returns the host's own address.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.ip, t.port, nil
}

// WriteTo sends a packet; it is dropped if the path is down or lossy.
func (t *Transport) WriteTo(b []byte, a string) (time.Time, error) {
	now := time.Now()
	if t.isDown() {
		return now, errors.New("simnet: host is down")
	}
	dst, delay, ok := t.net.route(t.addr, a, true)
	if !ok {
		return now, nil // lost on the way: the sender cannot know
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: addr(t.addr), Timestamp: now}
	if delay > 0 {
		t.net.send(dst, p, now.Add(delay))
	} else {
		dst.deliver(p)
	}
	return now, nil
}

// deliver puts p in t's receive buffer, and counts it delivered or dropped:
// t may have crashed while p was delayed, or its buffer may be full.
func (t *Transport) deliver(p *memberlist.Packet) {
	if t.isDown() {
		t.net.dropped.Add(1)
		return
	}
	p.Timestamp = time.Now()
	select {
	case t.packets <- p:
		t.net.delivered.Add(1)
	default: // receive buffer full: dropped
		t.net.dropped.Add(1)
		t.net.overflowed.Add(1)
	}
}

// WriteToAddress is WriteTo for memberlist's node-aware path.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh delivers received packets.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout opens a stream. To a host that is down or cut off it fails
// after the timeout, as a connection to a powered-off host does.
func (t *Transport) DialTimeout(a string, timeout time.Duration) (net.Conn, error) {
	if t.isDown() {
		return nil, errors.New("simnet: host is down")
	}
	dst, delay, ok := t.net.route(t.addr, a, false)
	if !ok {
		select {
		case <-time.After(timeout):
		case <-t.done:
		}
		return nil, fmt.Errorf("simnet: dial %s: i/o timeout", a)
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	local, remote := net.Pipe()
	select {
	case dst.streams <- remote:
		return local, nil
	case <-dst.done:
	case <-time.After(timeout):
	}
	local.Close()
	remote.Close()
	return nil, fmt.Errorf("simnet: dial %s: i/o timeout", a)
}

// DialAddressTimeout is DialTimeout for memberlist's node-aware path.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// StreamCh delivers accepted streams.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown takes the host off the network.
func (t *Transport) Shutdown() error {
	t.Crash()
	return nil
}
