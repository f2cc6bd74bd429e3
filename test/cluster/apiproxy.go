package cluster

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// APIProxyPort is where each node's API proxy listens, at the node's address.
const APIProxyPort = 6443

// apiProxy forwards TCP connections from a node's address to the apiserver.
//
// The apiserver listens on 127.0.0.1 only. A node's kubelet and agent reach
// it through their node's proxy instead, so that every API connection of a
// node has the node's address at one end, and a firewall rule on that address
// (a crash, a loss, BlockPort on the proxy) affects the node's API traffic as
// it would a real node's. TLS goes through untouched; clients check the
// apiserver's certificate for the name "kubernetes".
type apiProxy struct {
	ln     net.Listener
	target string
	// node is the node's address: a connection from it is the agent's (its
	// source NAT rule gives it that address), any other the kubelet's.
	node netip.Addr
	// Bytes forwarded, by direction and side; see APITraffic.
	agentDown, agentUp, otherDown, otherUp atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// APITraffic is what went through a node's API proxy, TLS included, in
// bytes. A connection from the node's own address is the agent's (with a
// firewall, its source NAT rule gives it that address); any other is the
// kubelet's (or the harness's through Node.RESTConfig).
type APITraffic struct {
	// AgentReceived went from the apiserver to the agent, AgentSent the
	// other way.
	AgentReceived, AgentSent int64
	// OtherReceived and OtherSent, likewise for every other client.
	OtherReceived, OtherSent int64
}

func startAPIProxy(listenAddr, target string) (*apiProxy, error) {
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, err
	}
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		ln.Close()
		return nil, err
	}
	return startAPIProxyOn(ln, ap.Addr().Unmap(), target), nil
}

// startAPIProxyOn serves ln, which may belong to another network namespace
// than the test process's (a Network's hub), and counts connections from
// node as the agent's. Upstream connections are dialled from the test
// process's namespace, where the apiserver listens.
func startAPIProxyOn(ln net.Listener, node netip.Addr, target string) *apiProxy {
	p := &apiProxy{ln: ln, target: target, node: node, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	return p
}

func (p *apiProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c)
		}()
	}
}

func (p *apiProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.closed {
			return false
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *apiProxy) forward(client net.Conn) {
	defer client.Close()
	if !p.track(client, true) {
		return
	}
	defer p.track(client, false)
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	if !p.track(server, true) {
		return
	}
	defer p.track(server, false)

	down, up := &p.otherDown, &p.otherUp
	if ra, err := netip.ParseAddrPort(client.RemoteAddr().String()); err == nil && ra.Addr().Unmap() == p.node {
		down, up = &p.agentDown, &p.agentUp
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn, n *atomic.Int64) {
		buf := make([]byte, 32<<10)
		_, _ = io.CopyBuffer(countingWriter{dst, n}, src, buf)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(server, client, up)
	go pipe(client, server, down)
	<-done
	<-done
}

// countingWriter adds what it writes to n as it goes, so that a long watch
// is counted while it lasts.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (p *apiProxy) traffic() APITraffic {
	return APITraffic{
		AgentReceived: p.agentDown.Load(), AgentSent: p.agentUp.Load(),
		OtherReceived: p.otherDown.Load(), OtherSent: p.otherUp.Load(),
	}
}

// close stops listening and cuts every forwarded connection.
func (p *apiProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
