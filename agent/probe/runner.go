package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/utils/clock"
)

// Reasons the runner itself gives.
const (
	reasonTimedOut     = "timed out"
	reasonNoResult     = "no result yet"
	reasonStillRunning = "previous run still running"
)

// Verdict is the node's readiness as the checks see it.
type Verdict struct {
	// Ready is true when every check is passing (after its thresholds). A node with no
	// checks is always ready; a check with no result yet is not passing.
	Ready bool
	// FailingCheck is the name of the first check, in config order, that is not passing.
	// Empty when Ready.
	FailingCheck string
	// Reason is that check's last failure reason (or "no result yet"), at most
	// MaxReasonBytes. Empty when Ready.
	Reason string
	// Since is when Ready last changed (or when the runner was created); a new reason or
	// failing check does not move it.
	Since time.Time
}

// CheckStatus is one check's state, for status pages and debugging.
type CheckStatus struct {
	// Name of the check.
	Name string
	// Passing is the check's state after its thresholds.
	Passing bool
	// Runs counts the finished runs.
	Runs int
	// ConsecutiveSuccesses and ConsecutiveFailures count the runs since the last run
	// with the other outcome.
	ConsecutiveSuccesses int
	ConsecutiveFailures  int
	// LastReason is the reason of the last failed run, kept after later successes.
	LastReason string
	// LastRun is when the last run finished; zero before the first.
	LastRun time.Time
}

// checkState is what the runner knows about one check. known is false until the check
// first crosses one of its thresholds.
type checkState struct {
	known      bool
	passing    bool
	runs       int
	successes  int
	failures   int
	lastReason string
	lastRun    time.Time
}

// Runner runs the node readiness checks, each on its own staggered period, and keeps the
// node's verdict. It never blocks its readers: Verdict takes a short lock, and subscribers
// get the latest verdict through a channel that is overwritten rather than waited on.
type Runner struct {
	checks  []Check
	timings []timing
	clock   clock.WithTicker
	log     *zap.Logger
	metrics *runnerMetrics
	// sem holds one token per check run in flight, MaxConcurrent at most.
	sem chan struct{}
	// probe runs one check; a seam for tests.
	probe func(ctx context.Context, c *Check) Result
	// stagger picks the random delay before a check's first run, in [0, period).
	stagger func(period time.Duration) time.Duration
	started atomic.Bool

	mu      sync.Mutex
	states  []checkState
	verdict Verdict
	subs    map[uint64]chan Verdict
	nextSub uint64
}

// Deps are what a Runner needs; every field may be nil.
type Deps struct {
	// APIServer serves the apiServer checks; nil when there are none.
	APIServer *APIServer
	// Clock drives the schedule and the timeouts; nil is the real clock.
	Clock clock.WithTicker
	// Logger is named "probe"; nil logs nothing.
	Logger *zap.Logger
	// Registerer takes the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// NewRunner checks cfg and builds a Runner; it starts nothing.
func NewRunner(cfg Config, deps Deps) (*Runner, error) {
	api, clk, log, reg := deps.APIServer, deps.Clock, deps.Logger, deps.Registerer
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for i, c := range cfg.Checks {
		if c.APIServer != nil && (api == nil || api.Client == nil) {
			return nil, fmt.Errorf("probe: checks[%d] %q: apiServer needs an API server client, and none was given", i, c.Name)
		}
	}
	if api != nil {
		if u, err := url.Parse(api.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("probe: API server URL (%q) must be an absolute http or https URL", api.URL)
		}
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	m, err := newRunnerMetrics(reg, cfg.Checks)
	if err != nil {
		return nil, err
	}
	checks := append([]Check(nil), cfg.Checks...)
	timings := make([]timing, len(checks))
	for i := range checks {
		timings[i] = checks[i].timing()
	}
	p := newProber(api)
	r := &Runner{
		checks:  checks,
		timings: timings,
		clock:   clk,
		log:     log.Named("probe"),
		metrics: m,
		sem:     make(chan struct{}, cfg.MaxConcurrent),
		probe:   p.run,
		stagger: func(period time.Duration) time.Duration { return rand.N(period) },
		states:  make([]checkState, len(checks)),
		subs:    make(map[uint64]chan Verdict),
	}
	r.verdict = r.computeVerdict(Verdict{}, clk.Now())
	r.metrics.nodeReady.Set(boolGauge(r.verdict.Ready))
	return r, nil
}

// Run runs the checks until ctx ends and returns after every check run it started has
// returned. It may be called once.
func (r *Runner) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("probe: Runner.Run called more than once")
	}
	var wg sync.WaitGroup
	for i := range r.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(ctx, i, &wg)
		}()
	}
	wg.Wait()
	return nil
}

// Verdict returns the current verdict. It is cheap and safe to call from gossip callbacks.
func (r *Runner) Verdict() Verdict {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.verdict
}

// Statuses returns the state of every check, in config order.
func (r *Runner) Statuses() []CheckStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]CheckStatus, len(r.states))
	for i, s := range r.states {
		out[i] = CheckStatus{
			Name:                 r.checks[i].Name,
			Passing:              s.passing,
			Runs:                 s.runs,
			ConsecutiveSuccesses: s.successes,
			ConsecutiveFailures:  s.failures,
			LastReason:           s.lastReason,
			LastRun:              s.lastRun,
		}
	}
	return out
}

// Subscribe returns a channel that holds the latest verdict: the current one at once, then
// each change (of Ready, FailingCheck or Reason). The runner never waits for a slow reader:
// an unread verdict is replaced by the newer one, so a reader may skip intermediate
// verdicts but always ends on the latest. cancel stops the deliveries; the channel is never
// closed.
func (r *Runner) Subscribe() (verdicts <-chan Verdict, cancel func()) {
	ch := make(chan Verdict, 1)
	r.mu.Lock()
	id := r.nextSub
	r.nextSub++
	r.subs[id] = ch
	ch <- r.verdict
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.subs, id)
		r.mu.Unlock()
	}
}

// loop runs check i: after its initial delay and a random stagger (so that the checks of a
// node, and the nodes of a cluster, do not all fire together), then once per period.
func (r *Runner) loop(ctx context.Context, i int, wg *sync.WaitGroup) {
	t := r.timings[i]
	if d := t.initialDelay + r.stagger(t.period); d > 0 {
		timer := r.clock.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
	}
	// The ticker exists before the first run, so no tick is lost while the run goes on.
	ticker := r.clock.NewTicker(t.period)
	defer ticker.Stop()
	var prev <-chan struct{}
	for {
		prev = r.runOnce(ctx, i, prev, wg)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

// runOnce starts one run of check i and waits for its result or its timeout, whichever
// comes first; a run that outlives its timeout is a failure. prev is closed once the
// previous run's goroutine has returned: a check never runs twice at once, and a run that
// ignores its cancelled context counts as a failure at every tick until it returns. The
// returned channel is closed when this run's goroutine returns.
func (r *Runner) runOnce(ctx context.Context, i int, prev <-chan struct{}, wg *sync.WaitGroup) <-chan struct{} {
	if prev != nil {
		select {
		case <-prev:
		default:
			r.record(i, failure(reasonStillRunning))
			return prev
		}
	}
	t := r.timings[i]
	start := r.clock.Now()
	// The timer, not only the context, decides the timeout, so that it follows the
	// injected clock; the context's deadline stops the work itself.
	timer := r.clock.NewTimer(t.timeout)
	defer timer.Stop()
	runCtx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	results := make(chan Result, 1)
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		// Waiting for a slot counts against the timeout: the verdict must not lag.
		select {
		case r.sem <- struct{}{}:
		case <-runCtx.Done():
			results <- failure("no free check slot (--check-max-concurrent %d)", cap(r.sem))
			return
		}
		defer func() { <-r.sem }()
		results <- r.probe(runCtx, &r.checks[i])
	}()
	var res Result
	select {
	case res = <-results:
	case <-timer.C():
		res = failure(reasonTimedOut)
	case <-ctx.Done():
		return done
	}
	if ctx.Err() != nil {
		// Shutting down: a run cut short by it says nothing about the node.
		return done
	}
	if !res.OK && res.Reason == reasonTimedOut {
		res.Reason = fmt.Sprintf("timed out after %s", t.timeout)
	}
	res.Reason = truncate(res.Reason, MaxReasonBytes)
	res.Duration = r.clock.Since(start)
	r.record(i, res)
	return done
}

// record applies one result of check i: counters, thresholds, metrics, verdict. Log lines
// are written after the lock is released, and only on transitions.
func (r *Runner) record(i int, res Result) {
	t := r.timings[i]
	name := r.checks[i].Name
	now := r.clock.Now()

	r.mu.Lock()
	s := &r.states[i]
	s.runs++
	s.lastRun = now
	if res.OK {
		s.successes++
		s.failures = 0
	} else {
		s.failures++
		s.successes = 0
		s.lastReason = res.Reason
	}
	checkChanged := false
	switch {
	case res.OK && (!s.known || !s.passing) && s.successes >= t.successThreshold:
		s.known, s.passing, checkChanged = true, true, true
	case !res.OK && (!s.known || s.passing) && s.failures >= t.failureThreshold:
		s.known, s.passing, checkChanged = true, false, true
	}
	failures := s.failures
	r.metrics.success.WithLabelValues(name).Set(boolGauge(res.OK))
	r.metrics.duration.WithLabelValues(name).Observe(res.Duration.Seconds())
	r.metrics.consecutiveFailures.WithLabelValues(name).Set(float64(failures))

	old := r.verdict
	v := r.computeVerdict(old, now)
	verdictChanged := v != old
	if verdictChanged {
		r.verdict = v
		r.metrics.nodeReady.Set(boolGauge(v.Ready))
		r.publish(v)
	}
	r.mu.Unlock()

	if checkChanged {
		if res.OK {
			r.log.Info("check passing", zap.String("check", name))
		} else {
			r.log.Warn("check failing", zap.String("check", name), zap.String("reason", res.Reason),
				zap.Int("consecutive_failures", failures))
		}
	}
	if verdictChanged && (v.Ready != old.Ready || v.FailingCheck != old.FailingCheck) {
		if v.Ready {
			r.log.Info("node ready")
		} else {
			r.log.Warn("node not ready", zap.String("check", v.FailingCheck), zap.String("reason", v.Reason))
		}
	}
}

// computeVerdict derives the verdict from the check states; old supplies Since when Ready
// does not change. r.mu must be held (or r not yet shared).
func (r *Runner) computeVerdict(old Verdict, now time.Time) Verdict {
	v := Verdict{Ready: true}
	for i, s := range r.states {
		if s.passing {
			continue
		}
		v.Ready = false
		v.FailingCheck = r.checks[i].Name
		v.Reason = s.lastReason
		if v.Reason == "" {
			v.Reason = reasonNoResult
		}
		break
	}
	v.Since = old.Since
	if v.Ready != old.Ready || old.Since.IsZero() {
		v.Since = now
	}
	return v
}

// publish hands v to every subscriber without waiting: a verdict the reader has not taken
// yet is replaced. r.mu must be held, which makes this the only sender.
func (r *Runner) publish(v Verdict) {
	for _, ch := range r.subs {
		select {
		case <-ch:
		default:
		}
		select {
		case ch <- v:
		default:
		}
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
