package probe

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

// kubeletListener stands in for a peer's kubelet port.
func kubeletListener(t *testing.T) (host string, port int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return hostPort(t, l.Addr().String())
}

func newTestPeerChecker(t *testing.T, port int32, maxConcurrent int) (*PeerChecker, *prometheus.Registry) {
	t.Helper()
	cfg := DefaultPeerConfig()
	cfg.Port = int(port)
	cfg.Timeout = generousTimeout
	cfg.MaxConcurrent = maxConcurrent
	reg := prometheus.NewRegistry()
	p, err := NewPeerChecker(cfg, PeerDeps{Clock: clock.RealClock{}, Registerer: reg})
	if err != nil {
		t.Fatalf("NewPeerChecker: %v", err)
	}
	return p, reg
}

func TestPeerChecker_Check(t *testing.T) {
	host, open := kubeletListener(t)
	closed := closedPort(t)
	openAddr := net.JoinHostPort(host, strconv.Itoa(int(open)))
	closedAddr := net.JoinHostPort(host, strconv.Itoa(int(closed)))
	tests := []struct {
		name          string
		configPort    int32
		addr          string
		wantAddr      string
		wantReachable bool
		wantReason    string
	}{
		{name: "host gets the configured port", configPort: open, addr: host, wantAddr: openAddr, wantReachable: true},
		{name: "host:port is dialled as given", configPort: closed, addr: openAddr, wantAddr: openAddr, wantReachable: true},
		// A refusal is an answer from the host's kernel: the node is up.
		{name: "closed port", configPort: closed, addr: host, wantAddr: closedAddr, wantReachable: true},
		{name: "closed host:port", configPort: open, addr: closedAddr, wantAddr: closedAddr, wantReachable: true},
		{
			name: "unresolvable host", configPort: open, addr: "no_such!host",
			wantAddr: "no_such!host:" + strconv.Itoa(int(open)), wantReason: "cannot resolve host no_such!host",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newTestPeerChecker(t, tc.configPort, 4)
			got := p.Check(context.Background(), tc.addr)
			if got.Addr != tc.wantAddr || got.Reachable != tc.wantReachable || got.Reason != tc.wantReason || got.Inconclusive {
				t.Fatalf("Check(%q) = %+v, want addr %q reachable %v reason %q", tc.addr, got, tc.wantAddr, tc.wantReachable, tc.wantReason)
			}
			if got.Latency < 0 || got.Latency > generousTimeout {
				t.Fatalf("latency %s out of range", got.Latency)
			}
		})
	}
}

func TestPeerChecker_IPv6HostGetsBrackets(t *testing.T) {
	p, _ := newTestPeerChecker(t, 10250, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no need to dial: only the address is under test
	if got := p.Check(ctx, "fd00::5"); got.Addr != "[fd00::5]:10250" {
		t.Fatalf("Addr = %q, want [fd00::5]:10250", got.Addr)
	}
}

func TestPeerChecker_inconclusiveWhenCallerGivesUp(t *testing.T) {
	host, open := kubeletListener(t)
	p, reg := newTestPeerChecker(t, open, 1)

	// Every slot taken (as by a connect that hangs): the call waits, and when the
	// caller's context ends first the result says so instead of "unreachable".
	p.sem <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	got := p.Check(ctx, host)
	if got.Reachable || !got.Inconclusive || !strings.HasPrefix(got.Reason, "not checked: ") {
		t.Fatalf("Check with no free slot = %+v, want inconclusive", got)
	}
	<-p.sem
	if got := p.Check(context.Background(), host); !got.Reachable {
		t.Fatalf("Check after the slot freed = %+v, want reachable", got)
	}
	if n := metricValue(t, reg, "haagent_probe_peer_checks_total", map[string]string{"result": "unreachable"}); n != 0 {
		t.Fatalf("inconclusive check counted as unreachable (%v)", n)
	}
}

func TestPeerChecker_concurrentUse(t *testing.T) {
	host, open := kubeletListener(t)
	closedHost := net.JoinHostPort(host, strconv.Itoa(int(closedPort(t))))
	p, reg := newTestPeerChecker(t, open, 3)
	// closedHost stands for a dead node here: its connects find no route.
	p.dial = failingDial(map[string]error{closedHost: dialError(syscall.EHOSTUNREACH)})
	const calls = 40
	var wg sync.WaitGroup
	results := make([]PeerResult, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := host
			if i%4 == 0 {
				addr = closedHost
			}
			results[i] = p.Check(context.Background(), addr)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if want := i%4 != 0; r.Reachable != want {
			t.Fatalf("call %d: %+v, want reachable %v", i, r, want)
		}
	}
	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{name: "reachable", metric: "haagent_probe_peer_checks_total", labels: map[string]string{"result": "reachable"}, want: 30},
		{name: "unreachable", metric: "haagent_probe_peer_checks_total", labels: map[string]string{"result": "unreachable"}, want: 10},
		{name: "duration", metric: "haagent_probe_peer_check_duration_seconds", want: 40},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := metricValue(t, reg, tc.metric, tc.labels); got != tc.want {
				t.Fatalf("%s%v = %v, want %v", tc.metric, tc.labels, got, tc.want)
			}
		})
	}
	if len(p.sem) != 0 {
		t.Fatalf("%d slots still held", len(p.sem))
	}
}

func TestNewPeerChecker_errors(t *testing.T) {
	cfg := DefaultPeerConfig()
	cfg.Port = 0
	if _, err := NewPeerChecker(cfg, PeerDeps{}); err == nil || err.Error() != "probe: --peer-check-port (0) must be between 1 and 65535" {
		t.Fatalf("NewPeerChecker = %v, want the port error", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := NewPeerChecker(DefaultPeerConfig(), PeerDeps{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPeerChecker(DefaultPeerConfig(), PeerDeps{Registerer: reg}); err == nil || !strings.HasPrefix(err.Error(), "probe: metrics already registered") {
		t.Fatalf("second NewPeerChecker on one registry = %v, want already registered", err)
	}
	// A Runner and a PeerChecker share a registry without conflict.
	if _, err := NewRunner(Config{MaxConcurrent: 1}, Deps{Registerer: reg}); err != nil {
		t.Fatalf("NewRunner next to a PeerChecker: %v", err)
	}
}

// lossyDial fails every connect but the n-th (counting from 1; 0: all), as
// lost SYNs would, and counts the connects.
type lossyDial struct {
	mu    sync.Mutex
	calls int
	ok    int
}

func (d *lossyDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.calls++
	n := d.calls
	d.mu.Unlock()
	if n == d.ok {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	<-ctx.Done() // a lost SYN: nothing comes back before the timeout
	return nil, ctx.Err()
}

func TestPeerChecker_anyAttemptMakesThePeerReachable(t *testing.T) {
	host, port := kubeletListener(t)
	for _, tc := range []struct {
		attempts, ok int
		reachable    bool
	}{
		{attempts: 3, ok: 3, reachable: true},  // two connects lost, the third answered
		{attempts: 3, ok: 0, reachable: false}, // a dead node: all lost
		{attempts: 1, ok: 2, reachable: false}, // one attempt, lost
	} {
		p, _ := newTestPeerChecker(t, port, 1)
		p.cfg.Attempts = tc.attempts
		p.cfg.Timeout = 200 * time.Millisecond
		d := &lossyDial{ok: tc.ok}
		p.dial = d.dial
		res := p.Check(context.Background(), host)
		if res.Reachable != tc.reachable || res.Inconclusive {
			t.Errorf("%d attempts, connect %d answered: %+v, want reachable=%v", tc.attempts, tc.ok, res, tc.reachable)
		}
		if d.calls != tc.attempts {
			t.Errorf("%d connects, want %d", d.calls, tc.attempts)
		}
		if !tc.reachable && res.Reason != "timed out after 200ms" {
			t.Errorf("reason = %q", res.Reason)
		}
	}
}

// dialError is the error a failed connect returns, with errno inside.
func dialError(errno syscall.Errno) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
}

// failingDial fails the connects to the addresses in fail with their
// errors (nil: hangs until the context ends, as a dropped SYN does), and
// dials the others.
func failingDial(fail map[string]error) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		err, ok := fail[addr]
		switch {
		case !ok:
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		case err == nil:
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, err
	}
}

// TestPeerChecker_refusedIsAnAnswer: a refused connect (a TCP RST from
// the peer's kernel) proves that the host is up, so it counts as reachable
// ("agent down", no eviction) like an accepted one. Only silence (a
// timeout) and unreachable hosts or networks count as no answer.
func TestPeerChecker_refusedIsAnAnswer(t *testing.T) {
	const addr = "192.0.2.7:10250"
	tests := []struct {
		name          string
		err           error // nil: the connect hangs until the timeout
		wantReachable bool
		wantReason    string
	}{
		{name: "refused", err: dialError(syscall.ECONNREFUSED), wantReachable: true},
		{name: "timeout", err: nil, wantReason: "timed out after 200ms"},
		{name: "host unreachable", err: dialError(syscall.EHOSTUNREACH), wantReason: "no route to host"},
		{name: "network unreachable", err: dialError(syscall.ENETUNREACH), wantReason: "network unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, reg := newTestPeerChecker(t, 10250, 1)
			p.cfg.Timeout = 200 * time.Millisecond
			p.dial = failingDial(map[string]error{addr: tc.err})
			got := p.Check(context.Background(), addr)
			if got.Reachable != tc.wantReachable || got.Reason != tc.wantReason || got.Inconclusive {
				t.Fatalf("Check = %+v, want reachable %v reason %q", got, tc.wantReachable, tc.wantReason)
			}
			result := peerUnreachable
			if tc.wantReachable {
				result = peerReachable
			}
			if n := metricValue(t, reg, "haagent_probe_peer_checks_total", map[string]string{"result": result}); n != 1 {
				t.Fatalf("haagent_probe_peer_checks_total{result=%q} = %v, want 1", result, n)
			}
		})
	}
}

// TestPeerChecker_refusedEndsTheCheck: with several connects in flight, a
// refused one answers for the peer at once; the others (lost SYNs) are not
// waited for.
func TestPeerChecker_refusedEndsTheCheck(t *testing.T) {
	var calls atomic.Int32
	p, _ := newTestPeerChecker(t, 10250, 1)
	p.cfg.Timeout = 2 * time.Second
	p.dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
		if calls.Add(1) == 2 {
			return nil, dialError(syscall.ECONNREFUSED)
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	got := p.Check(context.Background(), "192.0.2.7")
	if !got.Reachable || got.Inconclusive || got.Reason != "" {
		t.Fatalf("Check = %+v, want reachable", got)
	}
	if got.Latency >= time.Second {
		t.Fatalf("latency %s: waited for the lost connects", got.Latency)
	}
}

// TestPeerChecker_closedLoopbackPortIsReachable: the real thing, a port on
// 127.0.0.1 that was taken and closed again answers with a RST.
func TestPeerChecker_closedLoopbackPortIsReachable(t *testing.T) {
	port := closedPort(t)
	p, _ := newTestPeerChecker(t, port, 1)
	if got := p.Check(context.Background(), "127.0.0.1"); !got.Reachable || got.Reason != "" {
		t.Fatalf("Check(closed port %d) = %+v, want reachable", port, got)
	}
}

func TestPeerConfig_attemptsBound(t *testing.T) {
	cfg := DefaultPeerConfig()
	cfg.Attempts = 11
	if err := cfg.Validate(); err == nil || err.Error() != "probe: --peer-check-attempts (11) must be between 1 and 10" {
		t.Fatalf("Validate() = %v", err)
	}
}
