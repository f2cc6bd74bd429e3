package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"
	testclock "k8s.io/utils/clock/testing"
)

const (
	testPeriod  = 10 * time.Second
	testTimeout = 5 * time.Second
)

// scripted is a fake probe whose outcome per check the test sets. It respects the run's
// context unless told to hang.
type scripted struct {
	mu          sync.Mutex
	fail        map[string]string // check name -> failure reason; absent: success
	hang        map[string]chan struct{}
	started     chan string
	inFlight    int
	maxInFlight int
	work        time.Duration
}

func newScripted() *scripted {
	return &scripted{fail: map[string]string{}, hang: map[string]chan struct{}{}, started: make(chan string, 100)}
}

func (s *scripted) set(name string, ok bool, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		delete(s.fail, name)
	} else {
		s.fail[name] = reason
	}
}

func (s *scripted) probe(ctx context.Context, c *Check) Result {
	s.mu.Lock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	reason, failing := s.fail[c.Name]
	hang := s.hang[c.Name]
	work := s.work
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	select {
	case s.started <- c.Name:
	default:
	}
	if hang != nil {
		<-hang // ignores ctx on purpose
	}
	if work > 0 {
		time.Sleep(work)
	}
	if failing {
		return failure("%s", reason)
	}
	return success()
}

// testCheck is a check whose probe the test scripts; the action only passes validation.
func testCheck(name string, successThreshold, failureThreshold int32) Check {
	return Check{
		Name:             name,
		TCPSocket:        &TCPSocketAction{Port: 1},
		PeriodSeconds:    int32(testPeriod / time.Second),
		TimeoutSeconds:   int32(testTimeout / time.Second),
		SuccessThreshold: successThreshold,
		FailureThreshold: failureThreshold,
	}
}

type testRunner struct {
	*Runner
	clock *testclock.FakeClock
	reg   *prometheus.Registry
	probe *scripted
}

// newTestRunner builds a Runner on a fake clock with a scripted probe and no stagger.
func newTestRunner(t *testing.T, maxConcurrent int, checks ...Check) *testRunner {
	t.Helper()
	fc := testclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Checks = checks
	cfg.MaxConcurrent = maxConcurrent
	r, err := NewRunner(cfg, Deps{Clock: fc, Logger: zaptest.NewLogger(t), Registerer: reg})
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	s := newScripted()
	r.probe = s.probe
	r.stagger = func(time.Duration) time.Duration { return 0 }
	return &testRunner{Runner: r, clock: fc, reg: reg, probe: s}
}

// start runs r until the test ends, and checks that Run returns then.
func (tr *testRunner) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(generousTimeout):
			t.Errorf("Run did not return after its context ended")
		}
	})
}

// waitFor polls cond (real time, bounded): the runner's goroutines need a moment after a
// clock step, but nothing here waits on a real timer for the logic itself.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(generousTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitRuns waits until check i has finished n runs.
func (tr *testRunner) waitRuns(t *testing.T, i, n int) {
	t.Helper()
	waitFor(t, "check runs", func() bool { return tr.Statuses()[i].Runs >= n })
	if got := tr.Statuses()[i].Runs; got != n {
		t.Fatalf("check %d has %d runs, want %d", i, got, n)
	}
}

func TestRunner_thresholds(t *testing.T) {
	tests := []struct {
		name             string
		successThreshold int32
		failureThreshold int32
		outcomes         []bool
		wantReady        []bool
	}{
		{
			name:             "failureThreshold 3 needs 3 failures to flip to not ready",
			successThreshold: 1, failureThreshold: 3,
			outcomes:  []bool{true, false, false, false, true},
			wantReady: []bool{true, true, true, false, true},
		},
		{
			name:             "successThreshold 2 needs 2 successes to flip back",
			successThreshold: 2, failureThreshold: 1,
			outcomes:  []bool{true, true, false, true, true, false, true, false},
			wantReady: []bool{false, true, false, false, true, false, false, false},
		},
		{
			name:             "a success resets the failure count",
			successThreshold: 1, failureThreshold: 3,
			outcomes:  []bool{true, false, false, true, false, false, false},
			wantReady: []bool{true, true, true, true, true, true, false},
		},
		{
			name:             "failures from the start need the threshold too",
			successThreshold: 1, failureThreshold: 2,
			outcomes:  []bool{false, false, true},
			wantReady: []bool{false, false, true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestRunner(t, 4, testCheck("c", tc.successThreshold, tc.failureThreshold))
			tr.probe.set("c", tc.outcomes[0], "boom")
			tr.start(t)
			for k, ok := range tc.outcomes {
				if k > 0 {
					tr.probe.set("c", ok, "boom")
					tr.clock.Step(testPeriod)
				}
				tr.waitRuns(t, 0, k+1)
				v := tr.Verdict()
				if v.Ready != tc.wantReady[k] {
					t.Fatalf("after run %d (ok=%v): Ready = %v, want %v; statuses %+v", k+1, ok, v.Ready, tc.wantReady[k], tr.Statuses())
				}
				if !v.Ready && v.FailingCheck != "c" {
					t.Fatalf("after run %d: FailingCheck = %q, want %q", k+1, v.FailingCheck, "c")
				}
			}
		})
	}
}

func TestRunner_verdictNamesFirstFailingCheck(t *testing.T) {
	tr := newTestRunner(t, 4, testCheck("a", 1, 1), testCheck("b", 1, 1))
	start := tr.clock.Now()
	if got, want := tr.Verdict(), (Verdict{FailingCheck: "a", Reason: "no result yet", Since: start}); got != want {
		t.Fatalf("initial verdict = %+v, want %+v", got, want)
	}
	rounds := []struct {
		aFails, bFails bool
		want           Verdict
	}{
		{aFails: true, bFails: true, want: Verdict{FailingCheck: "a", Reason: "a is broken", Since: start}},
		{aFails: false, bFails: true, want: Verdict{FailingCheck: "b", Reason: "b is broken", Since: start}},
		{aFails: false, bFails: false, want: Verdict{Ready: true, Since: start.Add(2 * testPeriod)}},
		{aFails: false, bFails: true, want: Verdict{FailingCheck: "b", Reason: "b is broken", Since: start.Add(3 * testPeriod)}},
	}
	for k, round := range rounds {
		tr.probe.set("a", !round.aFails, "a is broken")
		tr.probe.set("b", !round.bFails, "b is broken")
		if k == 0 {
			tr.start(t)
		} else {
			tr.clock.Step(testPeriod)
		}
		tr.waitRuns(t, 0, k+1)
		tr.waitRuns(t, 1, k+1)
		if got := tr.Verdict(); got != round.want {
			t.Fatalf("round %d: verdict = %+v, want %+v", k, got, round.want)
		}
	}
}

func TestRunner_noChecksIsReady(t *testing.T) {
	tr := newTestRunner(t, 1)
	if v := tr.Verdict(); !v.Ready || v.FailingCheck != "" || v.Reason != "" {
		t.Fatalf("verdict = %+v, want ready", v)
	}
	tr.start(t)
}

func TestRunner_hungCheckFailsAtTimeout(t *testing.T) {
	tr := newTestRunner(t, 4, testCheck("hung", 1, 1))
	release := make(chan struct{})
	tr.probe.hang["hung"] = release
	tr.start(t)
	t.Cleanup(func() { close(release) }) // before Run's cleanup: the probe ignores ctx

	<-tr.probe.started
	if v := tr.Verdict(); v.Reason != reasonNoResult {
		t.Fatalf("verdict before the timeout = %+v, want no result yet", v)
	}
	tr.clock.Step(testTimeout)
	tr.waitRuns(t, 0, 1)
	if v := tr.Verdict(); v.Ready || v.FailingCheck != "hung" || v.Reason != "timed out after 5s" {
		t.Fatalf("verdict after the timeout = %+v, want hung timed out after 5s", v)
	}
	if d := tr.Statuses()[0]; d.ConsecutiveFailures != 1 {
		t.Fatalf("status = %+v, want 1 failure", d)
	}

	// The run ignores its cancelled context: the next tick does not start a second copy,
	// it counts another failure.
	tr.clock.Step(testPeriod - testTimeout)
	tr.waitRuns(t, 0, 2)
	if v := tr.Verdict(); v.Reason != reasonStillRunning {
		t.Fatalf("verdict at the next tick = %+v, want %q", v, reasonStillRunning)
	}
	tr.probe.mu.Lock()
	inFlight := tr.probe.inFlight
	tr.probe.mu.Unlock()
	if inFlight != 1 {
		t.Fatalf("%d runs of the hung check in flight, want 1", inFlight)
	}
}

func TestRunner_contextRespectingCheckStopsAtShutdown(t *testing.T) {
	r := newTestRunner(t, 4, testCheck("slow", 1, 1)).Runner
	started := make(chan struct{})
	r.probe = func(ctx context.Context, c *Check) Result {
		close(started)
		<-ctx.Done()
		return failure(reasonTimedOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(generousTimeout):
		t.Fatal("Run did not return after its context ended")
	}
	if n := r.Statuses()[0].Runs; n != 0 {
		t.Fatalf("a run cut short by shutdown was recorded (%d runs)", n)
	}
	if err := r.Run(context.Background()); err == nil || err.Error() != "probe: Runner.Run called more than once" {
		t.Fatalf("second Run = %v, want an error", err)
	}
}

func TestRunner_boundedConcurrency(t *testing.T) {
	checks := []Check{testCheck("a", 1, 1), testCheck("b", 1, 1), testCheck("c", 1, 1), testCheck("d", 1, 1)}
	tr := newTestRunner(t, 2, checks...)
	tr.probe.work = 10 * time.Millisecond
	tr.start(t)
	for round := 1; round <= 3; round++ {
		if round > 1 {
			tr.clock.Step(testPeriod)
		}
		for i := range checks {
			tr.waitRuns(t, i, round)
		}
	}
	tr.probe.mu.Lock()
	maxInFlight := tr.probe.maxInFlight
	tr.probe.mu.Unlock()
	if maxInFlight > 2 {
		t.Fatalf("%d checks ran at once, want at most 2", maxInFlight)
	}
	if v := tr.Verdict(); !v.Ready {
		t.Fatalf("verdict = %+v, want ready", v)
	}
}

func TestRunner_initialDelayAndStagger(t *testing.T) {
	c := testCheck("late", 1, 1)
	c.InitialDelaySeconds = 2
	tr := newTestRunner(t, 4, c)
	var gotPeriod time.Duration
	tr.stagger = func(period time.Duration) time.Duration {
		gotPeriod = period
		return 3 * time.Second
	}
	tr.start(t)
	waitFor(t, "the first-run timer", tr.clock.HasWaiters)
	if gotPeriod != testPeriod {
		t.Fatalf("stagger asked for period %s, want %s", gotPeriod, testPeriod)
	}
	tr.clock.Step(4 * time.Second)
	time.Sleep(50 * time.Millisecond) // a run now would be early; give it the chance to show
	if n := tr.Statuses()[0].Runs; n != 0 {
		t.Fatalf("check ran %d times before initial delay + stagger (5s)", n)
	}
	tr.clock.Step(time.Second)
	tr.waitRuns(t, 0, 1)
	tr.clock.Step(testPeriod)
	tr.waitRuns(t, 0, 2)
}

func TestRunner_subscribe(t *testing.T) {
	tr := newTestRunner(t, 4, testCheck("c", 1, 1))
	verdicts, cancel := tr.Subscribe()
	if v := <-verdicts; v.Ready || v.Reason != reasonNoResult {
		t.Fatalf("first verdict = %+v, want not ready, no result yet", v)
	}
	tr.start(t)
	tr.waitRuns(t, 0, 1)
	if v := <-verdicts; !v.Ready {
		t.Fatalf("verdict after a success = %+v, want ready", v)
	}

	// A reader that does not keep up skips verdicts but gets the latest one, and the
	// runner is not held up meanwhile.
	for k, reason := range []string{"first", "second", "third"} {
		tr.probe.set("c", false, reason)
		tr.clock.Step(testPeriod)
		tr.waitRuns(t, 0, k+2)
	}
	if v := <-verdicts; v.Ready || v.Reason != "third" {
		t.Fatalf("latest verdict = %+v, want not ready with reason third", v)
	}
	select {
	case v := <-verdicts:
		t.Fatalf("stale verdict delivered: %+v", v)
	default:
	}

	// A repeat of the same verdict is no change.
	tr.clock.Step(testPeriod)
	tr.waitRuns(t, 0, 5)
	select {
	case v := <-verdicts:
		t.Fatalf("unchanged verdict delivered again: %+v", v)
	default:
	}

	cancel()
	tr.probe.set("c", true, "")
	tr.clock.Step(testPeriod)
	tr.waitRuns(t, 0, 6)
	if !tr.Verdict().Ready {
		t.Fatal("runner did not become ready")
	}
	select {
	case v := <-verdicts:
		t.Fatalf("verdict delivered after cancel: %+v", v)
	default:
	}
}

func TestRunner_metrics(t *testing.T) {
	tr := newTestRunner(t, 4, testCheck("c", 1, 2), testCheck("idle", 1, 1))
	tr.probe.set("c", false, "boom")
	tr.start(t)
	tr.waitRuns(t, 0, 1)
	tr.clock.Step(testPeriod)
	tr.waitRuns(t, 0, 2)
	tr.waitRuns(t, 1, 2)

	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{name: "success", metric: "haagent_probe_check_success", labels: map[string]string{"check": "c"}, want: 0},
		{name: "idle success", metric: "haagent_probe_check_success", labels: map[string]string{"check": "idle"}, want: 1},
		{name: "consecutive failures", metric: "haagent_probe_check_consecutive_failures", labels: map[string]string{"check": "c"}, want: 2},
		{name: "duration count", metric: "haagent_probe_check_duration_seconds", labels: map[string]string{"check": "c"}, want: 2},
		{name: "node ready", metric: "haagent_probe_node_ready", want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := metricValue(t, tr.reg, tc.metric, tc.labels); got != tc.want {
				t.Fatalf("%s%v = %v, want %v", tc.metric, tc.labels, got, tc.want)
			}
		})
	}
}

// metricValue returns a gauge's or counter's value, or a histogram's sample count.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func TestNewRunner_errors(t *testing.T) {
	apiCheck := Check{Name: "api", APIServer: &APIServerAction{}}
	tests := []struct {
		name  string
		cfg   func() Config
		api   *APIServer
		setup func(reg *prometheus.Registry)
		want  string
	}{
		{
			name: "invalid config",
			cfg:  func() Config { c := DefaultConfig(); c.MaxConcurrent = 0; return c },
			want: "probe: --check-max-concurrent (0) must be at least 1",
		},
		{
			name: "apiServer check without client",
			cfg:  DefaultConfig,
			want: `probe: checks[2] "apiserver": apiServer needs an API server client, and none was given`,
		},
		{
			name: "bad API server URL",
			cfg:  func() Config { c := DefaultConfig(); c.Checks = []Check{apiCheck}; return c },
			api:  &APIServer{URL: "10.96.0.1:443", Client: &http.Client{}},
			want: `probe: API server URL ("10.96.0.1:443") must be an absolute http or https URL`,
		},
		{
			name: "metrics registered twice",
			cfg:  func() Config { c := DefaultConfig(); c.Checks = nil; return c },
			setup: func(reg *prometheus.Registry) {
				if _, err := NewRunner(Config{MaxConcurrent: 1}, Deps{Registerer: reg}); err != nil {
					t.Fatalf("first NewRunner: %v", err)
				}
			},
			want: "probe: metrics already registered",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			if tc.setup != nil {
				tc.setup(reg)
			}
			_, err := NewRunner(tc.cfg(), Deps{APIServer: tc.api, Registerer: reg})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("NewRunner error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRunner_realChecks wires the real checks and the real clock: a TCP listener that goes
// away turns the node not ready, with the check and the reason named.
func TestRunner_realChecks(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	_, port := hostPort(t, l.Addr().String())
	cfg := DefaultConfig()
	cfg.Checks = []Check{{
		Name:               "tcp",
		TCPSocket:          &TCPSocketAction{Port: port},
		PeriodMilliseconds: 100,
		FailureThreshold:   1,
	}}
	r, err := NewRunner(cfg, Deps{Logger: zaptest.NewLogger(t), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	tr := &testRunner{Runner: r}
	tr.start(t)
	waitFor(t, "ready", func() bool { return r.Verdict().Ready })
	if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	waitFor(t, "not ready, connection refused", func() bool {
		v := r.Verdict()
		return !v.Ready && v.FailingCheck == "tcp" && v.Reason == "connection refused"
	})
}
