package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

// Values of the result label of haagent_probe_peer_checks_total.
const (
	peerReachable   = "reachable"
	peerUnreachable = "unreachable"
)

// Bounds of PeerConfig.Timeout: below the lower one a busy but healthy node looks dead;
// above the upper one the check no longer speeds up the failover decision.
const (
	minPeerTimeout = 10 * time.Millisecond
	maxPeerTimeout = 10 * time.Second
)

// PeerConfig configures the PeerChecker.
type PeerConfig struct {
	// Port is the peer's kubelet port, added to addresses that carry none (flag
	// --peer-check-port). Default 10250, 1..65535.
	Port int

	// Timeout bounds one TCP connect (flag --peer-check-timeout). Short, because it sits
	// on the failover path of a suspect node; long enough for a loaded node to answer a
	// SYN. Default 500ms, 10ms..10s.
	Timeout time.Duration

	// Attempts is how many connects one check makes at once (flag
	// --peer-check-attempts); the peer is reachable when any succeeds. A single SYN
	// or SYN-ACK lost on a lossy network fails a connect within the timeout (the kernel
	// resends a SYN only after a second), and would make a live node look dead; the
	// attempts run side by side, so a dead node costs no more time. Default 3, 1..10.
	Attempts int

	// MaxConcurrent bounds the checks in flight at once (flag
	// --peer-check-max-concurrent); further calls wait for a slot. Default 16, at least 1.
	MaxConcurrent int
}

// DefaultPeerConfig returns kubelet port 10250, a 500ms timeout, 3 connects per check and
// 16 checks at once.
func DefaultPeerConfig() PeerConfig {
	return PeerConfig{Port: 10250, Timeout: 500 * time.Millisecond, Attempts: 3, MaxConcurrent: 16}
}

// Validate reports the first setting out of its bounds, naming its flag.
func (c PeerConfig) Validate() error {
	switch {
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("probe: --peer-check-port (%d) must be between 1 and 65535", c.Port)
	case c.Timeout < minPeerTimeout || c.Timeout > maxPeerTimeout:
		return fmt.Errorf("probe: --peer-check-timeout (%s) must be between %s and %s", c.Timeout, minPeerTimeout, maxPeerTimeout)
	case c.Attempts < 1 || c.Attempts > 10:
		return fmt.Errorf("probe: --peer-check-attempts (%d) must be between 1 and 10", c.Attempts)
	case c.MaxConcurrent < 1:
		return fmt.Errorf("probe: --peer-check-max-concurrent (%d) must be at least 1", c.MaxConcurrent)
	}
	return nil
}

// PeerResult is the outcome of one peer check.
type PeerResult struct {
	// Addr is the host:port that was dialled.
	Addr string
	// Reachable is true when the peer's host answered the TCP connect: it accepted it (the
	// kernel and the kubelet are up) or refused it (ECONNREFUSED: the kernel is up, the
	// port closed). Either way the node lives, whatever its agent says. Silence (a
	// timeout) and an unreachable host or network are no answer.
	Reachable bool
	// Inconclusive is true when no connect attempt finished because the caller's context
	// ended first (also while waiting for a free slot). Reachable is then false, but that
	// is no evidence against the peer.
	Inconclusive bool
	// Latency is how long the connect took, or how long it was tried.
	Latency time.Duration
	// Reason says why the peer is not reachable, at most MaxReasonBytes; empty when
	// Reachable.
	Reason string
}

// PeerChecker checks whether a peer node answers TCP connects to its kubelet port. It is safe
// for concurrent use and bounds its checks in flight; when a check returns, the
// goroutines of its attempts have ended or are cancelled and end at once.
type PeerChecker struct {
	cfg     PeerConfig
	clock   clock.PassiveClock
	metrics *peerMetrics
	sem     chan struct{}
	// dial opens a connection; a net.Dialer's, replaced in tests.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// PeerDeps are what a PeerChecker needs; every field may be nil.
type PeerDeps struct {
	// Clock measures latency; nil is the real clock.
	Clock clock.PassiveClock
	// Registerer takes the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// NewPeerChecker checks cfg and builds a PeerChecker.
func NewPeerChecker(cfg PeerConfig, deps PeerDeps) (*PeerChecker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	clk := deps.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	m, err := newPeerMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	return &PeerChecker{
		cfg:     cfg,
		clock:   clk,
		metrics: m,
		sem:     make(chan struct{}, cfg.MaxConcurrent),
		dial:    (&net.Dialer{}).DialContext,
	}, nil
}

// Check opens a TCP connection to addr and closes it at once; a refused connect is an answer
// too (see PeerResult.Reachable). addr is a host (an IP or a
// name), to which the configured port is added; an addr that already has a port
// ("10.0.0.5:10250", "[fd00::5]:10250") is dialled as it is. The connect is bounded by
// the configured timeout and by ctx.
func (p *PeerChecker) Check(ctx context.Context, addr string) PeerResult {
	target := addr
	if _, _, err := net.SplitHostPort(addr); err != nil {
		target = net.JoinHostPort(addr, strconv.Itoa(p.cfg.Port))
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return PeerResult{Addr: target, Inconclusive: true, Reason: truncate("not checked: "+ctx.Err().Error(), MaxReasonBytes)}
	}
	defer func() { <-p.sem }()

	dialCtx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	start := p.clock.Now()
	err := p.dialAny(dialCtx, target)
	latency := p.clock.Since(start)
	if err == nil {
		p.observe(peerReachable, latency)
		return PeerResult{Addr: target, Reachable: true, Latency: latency}
	}
	if ctx.Err() != nil {
		// The caller gave up, not the peer.
		return PeerResult{Addr: target, Inconclusive: true, Latency: latency,
			Reason: truncate("not checked: "+ctx.Err().Error(), MaxReasonBytes)}
	}
	reason := describeErr(dialCtx, err)
	if reason == reasonTimedOut {
		reason = fmt.Sprintf("timed out after %s", p.cfg.Timeout)
	}
	p.observe(peerUnreachable, latency)
	return PeerResult{Addr: target, Latency: latency, Reason: truncate(reason, MaxReasonBytes)}
}

// dialAny makes Attempts connects to target at once and returns nil as soon as the host
// answers one (the others are cancelled), or the first error when none is answered.
func (p *PeerChecker) dialAny(ctx context.Context, target string) error {
	if p.cfg.Attempts <= 1 {
		return p.dialOnce(ctx, target)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, p.cfg.Attempts)
	for range p.cfg.Attempts {
		go func() { errs <- p.dialOnce(ctx, target) }()
	}
	var first error
	for range p.cfg.Attempts {
		err := <-errs
		if err == nil {
			return nil // the deferred cancel stops the others; they send into the buffer
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// dialOnce makes one connect and returns nil when the host answered it. A refusal
// (ECONNREFUSED, the kernel's RST to a SYN for a closed port) is an answer: a host that is
// down or cut off cannot send one, and a crashed kubelet on a live node must not make the
// node look dead (the node's pods still run). A timeout, EHOSTUNREACH (no ARP or NDP
// answer, or an ICMP host unreachable from a router) and ENETUNREACH are no answer.
func (p *PeerChecker) dialOnce(ctx context.Context, target string) error {
	conn, err := p.dial(ctx, "tcp", target)
	if err == nil {
		_ = conn.Close()
		return nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	return err
}

func (p *PeerChecker) observe(result string, latency time.Duration) {
	p.metrics.duration.Observe(latency.Seconds())
	p.metrics.checks.WithLabelValues(result).Inc()
}
