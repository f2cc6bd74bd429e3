// Package simnet is an in-memory network for memberlist, with the faults
// that real networks have: lost packets, delay (per link and per packet),
// partitions, hosts that vanish without a word and hosts that stall.
//
// memberlist's own MockTransport delivers packets on unbuffered channels, so
// a member that stops without leaving blocks every sender and stalls the
// whole group. Here a packet to a host that is down, cut off or whose
// queue is full is dropped, as a real network would, and a stream to it
// fails after the dialler's timeout.
//
// Used by unit tests and by the scale simulation of the benchmarks; it
// touches no real network. Everything it waits on is a channel or a timer
// of its own, so a Network created inside a testing/synctest bubble runs
// on the bubble's clock.
package simnet

// This file is over 500 lines: the Network and its Transport share one
// delivery path (loss, the latency heap, stalls) under one lock order,
// easier to check in one place.

import (
	"container/heap"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
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
	latency Latency
	queue   int // receive buffer of hosts added from now on, in packets
	blocked map[[2]string]bool

	dropped    atomic.Int64
	delivered  atomic.Int64
	overflowed atomic.Int64

	// line holds the delayed packets, soonest due first. One goroutine
	// delivers them while there are any, rather than a timer and a
	// goroutine per packet, which at tens of thousands of packets a
	// second cost more than the members that send them. wake tells it
	// that a packet due sooner than the one it waits for has arrived.
	lineMu      sync.Mutex
	line        delayLine
	lineSeq     uint64
	lineRunning bool
	wake        chan struct{}
}

// Latency is the one-way delay of packets. A link's delay is Base plus a
// fixed share of Spread drawn for that pair of hosts (the same both ways:
// hosts near and far); each packet then adds Jitter, exponentially
// distributed with that mean and cut at ten times it. With Spread and
// Jitter zero, packets arrive in the order they were sent; otherwise they
// may overtake each other, as datagrams do.
type Latency struct {
	Base   time.Duration
	Spread time.Duration
	Jitter time.Duration
}

// delayed is a packet on its way.
type delayed struct {
	due time.Time
	seq uint64 // order sent: packets due at once arrive in this order
	dst *Transport
	p   *memberlist.Packet
}

// delayLine is a min-heap of packets by due time, then order sent.
type delayLine []delayed

func (l delayLine) Len() int { return len(l) }
func (l delayLine) Less(i, j int) bool {
	if !l[i].due.Equal(l[j].due) {
		return l[i].due.Before(l[j].due)
	}
	return l[i].seq < l[j].seq
}
func (l delayLine) Swap(i, j int) { l[i], l[j] = l[j], l[i] }
func (l *delayLine) Push(x any)   { *l = append(*l, x.(delayed)) }
func (l *delayLine) Pop() any {
	old := *l
	d := old[len(old)-1]
	old[len(old)-1] = delayed{}
	*l = old[:len(old)-1]
	return d
}

// New returns an empty network.
func New() *Network {
	return &Network{hosts: map[string]*Transport{}, blocked: map[[2]string]bool{}, queue: packetQueue, wake: make(chan struct{}, 1)}
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

// SetDelay delays every packet by d: SetLatency with Base d alone. After a
// change to a shorter delay, new packets may overtake older ones.
func (n *Network) SetDelay(d time.Duration) {
	n.SetLatency(Latency{Base: d})
}

// SetLatency sets the delay of packets from now on.
func (n *Network) SetLatency(l Latency) {
	n.mu.Lock()
	n.latency = l
	n.mu.Unlock()
}

// linkDelay is the fixed delay of the link between hosts a and b.
func (l Latency) linkDelay(a, b string) time.Duration {
	if l.Spread <= 0 {
		return l.Base
	}
	if b < a {
		a, b = b, a
	}
	h := fnv.New64a()
	h.Write([]byte(a))
	h.Write([]byte{0})
	h.Write([]byte(b))
	share := float64(h.Sum64()>>11) / (1 << 53)
	return l.Base + time.Duration(share*float64(l.Spread))
}

// packetDelay is the delay of one packet on the link between a and b.
func (l Latency) packetDelay(a, b string) time.Duration {
	d := l.linkDelay(a, b)
	if l.Jitter > 0 {
		d += time.Duration(math.Min(rand.ExpFloat64(), 10) * float64(l.Jitter))
	}
	return d
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
// dst now, and the delay to apply: one packet's, or for a stream the
// link's.
func (n *Network) route(src, dst string, packet bool) (*Transport, time.Duration, bool) {
	n.mu.RLock()
	t, ok := n.hosts[dst]
	ok = ok && !t.isDown() && (len(n.blocked) == 0 || !n.blocked[[2]string{src, dst}])
	loss, lat := n.loss, n.latency
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
	if !packet {
		return t, lat.linkDelay(src, dst), true
	}
	return t, lat.packetDelay(src, dst), true
}

// send puts a packet on the delay line, and starts its goroutine if it is
// not running, or wakes it if the packet is due before the one it waits
// for.
func (n *Network) send(dst *Transport, p *memberlist.Packet, due time.Time) {
	n.lineMu.Lock()
	n.lineSeq++
	heap.Push(&n.line, delayed{due: due, seq: n.lineSeq, dst: dst, p: p})
	first := n.line[0].seq == n.lineSeq
	start := !n.lineRunning
	n.lineRunning = true
	n.lineMu.Unlock()
	switch {
	case start:
		go n.runLine()
	case first:
		select {
		case n.wake <- struct{}{}:
		default: // already told
		}
	}
}

// runLine delivers the delayed packets as they fall due, and returns when
// none is left.
func (n *Network) runLine() {
	var batch []delayed
	for {
		n.lineMu.Lock()
		if len(n.line) == 0 {
			n.line = n.line[:0]
			n.lineRunning = false
			n.lineMu.Unlock()
			return
		}
		now := time.Now()
		if wait := n.line[0].due.Sub(now); wait > 0 {
			n.lineMu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-n.wake:
			}
			t.Stop()
			continue
		}
		batch = batch[:0]
		for len(n.line) > 0 && !n.line[0].due.After(now) {
			batch = append(batch, heap.Pop(&n.line).(delayed))
		}
		n.lineMu.Unlock()
		for i, d := range batch {
			d.dst.deliver(d.p)
			batch[i] = delayed{}
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

	// While the host stalls (Pause), resumed is open and what arrives
	// waits in held and heldStreams; stalled lets deliver skip the lock
	// when it does not.
	stalled     atomic.Bool
	stallMu     sync.Mutex
	resumed     chan struct{}
	held        []*memberlist.Packet
	heldStreams []net.Conn
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

// Pause stalls the host, as a process that stops running for a while (a
// long garbage collection, a throttled or frozen container) while its
// machine and network stay up. Packets sent to it wait, as in a socket
// buffer of the size of its receive buffer (beyond it they are dropped),
// and reach it on Resume; streams to it connect, and are accepted on
// Resume. Whatever the host sends, packets or new streams, waits for
// Resume. Its own timers are not stopped: a probe it starts while stalled
// goes out when the stall ends, and only then waits for its ack. A paused
// host that crashes stays down.
func (t *Transport) Pause() {
	t.stallMu.Lock()
	defer t.stallMu.Unlock()
	if t.resumed == nil {
		t.resumed = make(chan struct{})
		t.stalled.Store(true)
	}
}

// Resume ends a stall: what waited is delivered (packets beyond the
// receive buffer are dropped), then the host's sends go on.
func (t *Transport) Resume() {
	t.stallMu.Lock()
	defer t.stallMu.Unlock()
	if t.resumed == nil {
		return
	}
	for i, p := range t.held {
		t.enqueue(p)
		t.held[i] = nil
	}
	t.held = t.held[:0]
	for _, c := range t.heldStreams {
		select {
		case t.streams <- c:
		default:
			c.Close()
		}
	}
	t.heldStreams = nil
	close(t.resumed)
	t.resumed = nil
	t.stalled.Store(false)
}

// waitResumed blocks while the host stalls; it reports false if the host
// is down.
func (t *Transport) waitResumed() bool {
	if t.stalled.Load() {
		t.stallMu.Lock()
		ch := t.resumed
		t.stallMu.Unlock()
		if ch != nil {
			select {
			case <-ch:
			case <-t.done:
			}
		}
	}
	return !t.isDown()
}

// FinalAdvertiseAddr returns the host's own address.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.ip, t.port, nil
}

// WriteTo sends a packet; it is dropped if the path is down or lossy.
func (t *Transport) WriteTo(b []byte, a string) (time.Time, error) {
	if !t.waitResumed() {
		return time.Now(), errors.New("simnet: host is down")
	}
	now := time.Now()
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
// t may have crashed while p was delayed, or its buffer may be full. While
// t stalls, p waits for the end of the stall.
func (t *Transport) deliver(p *memberlist.Packet) {
	if t.isDown() {
		t.net.dropped.Add(1)
		return
	}
	p.Timestamp = time.Now()
	if t.stalled.Load() {
		t.stallMu.Lock()
		defer t.stallMu.Unlock()
		if t.resumed != nil {
			if len(t.held)+len(t.packets) >= cap(t.packets) {
				t.net.dropped.Add(1)
				t.net.overflowed.Add(1)
				return
			}
			t.held = append(t.held, p)
			return
		}
	}
	t.enqueue(p)
}

// enqueue puts p in the receive buffer, or drops it if the buffer is full.
func (t *Transport) enqueue(p *memberlist.Packet) {
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
	if !t.waitResumed() {
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
	if dst.holdStream(remote) {
		return local, nil
	}
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

// holdStream keeps an incoming stream until the end of a stall, and
// reports whether t stalls.
func (t *Transport) holdStream(c net.Conn) bool {
	if !t.stalled.Load() {
		return false
	}
	t.stallMu.Lock()
	defer t.stallMu.Unlock()
	if t.resumed == nil {
		return false
	}
	t.heldStreams = append(t.heldStreams, c)
	return true
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
