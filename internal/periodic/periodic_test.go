package periodic

import (
	"context"
	"math"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// quiet is how long a test waits to see that something does not happen.
const quiet = 50 * time.Millisecond

// loop runs Every in the background and reports its calls and its return.
type loop struct {
	calls  chan struct{}
	done   chan error
	cancel context.CancelFunc
}

func start(t *testing.T, clk *clocktesting.FakeClock, period time.Duration, jitter float64, fn func(context.Context)) *loop {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &loop{calls: make(chan struct{}, 100), done: make(chan error, 1), cancel: cancel}
	go func() {
		l.done <- Every(ctx, clk, period, jitter, func(ctx context.Context) {
			if fn != nil {
				fn(ctx)
			}
			l.calls <- struct{}{}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-l.done
	})
	return l
}

// waitWaiting blocks until the loop waits on clk.
func waitWaiting(t *testing.T, clk *clocktesting.FakeClock) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("the loop never waited on the clock")
		}
		time.Sleep(time.Millisecond)
	}
}

func (l *loop) wantCall(t *testing.T, what string) {
	t.Helper()
	select {
	case <-l.calls:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no call", what)
	}
}

func (l *loop) wantNoCall(t *testing.T, what string) {
	t.Helper()
	select {
	case <-l.calls:
		t.Fatalf("%s: a call", what)
	case <-time.After(quiet):
	}
}

func TestEvery_withoutJitterCallsOncePerPeriod(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	const period = 10 * time.Second
	l := start(t, clk, period, 0, nil)
	waitWaiting(t, clk)
	l.wantNoCall(t, "at start")
	for range 5 {
		clk.Step(period - time.Nanosecond)
		l.wantNoCall(t, "a nanosecond before the period")
		clk.Step(time.Nanosecond)
		l.wantCall(t, "at the period")
	}
	l.wantNoCall(t, "after the last period")
}

func TestEvery_withoutJitterKeepsTheCadence(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	const period = 10 * time.Second
	// Each call takes 3 s of the clock: a ticker's next call still comes
	// at the next multiple of the period, not 3 s after it.
	l := start(t, clk, period, 0, func(context.Context) { clk.Step(3 * time.Second) })
	waitWaiting(t, clk)
	clk.Step(period)
	l.wantCall(t, "first period")
	clk.Step(period - 3*time.Second - time.Nanosecond)
	l.wantNoCall(t, "before the second period")
	clk.Step(time.Nanosecond)
	l.wantCall(t, "at the second period")
}

func TestEvery_jitterBoundsEachWait(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	const period, jitter = 10 * time.Second, 0.2
	lo, hi := 8*time.Second, 12*time.Second
	l := start(t, clk, period, jitter, nil)
	early, late := 0, 0
	for range 30 {
		waitWaiting(t, clk)
		clk.Step(lo - time.Nanosecond)
		l.wantNoCall(t, "before period×(1-jitter)")
		clk.Step(period - lo + time.Nanosecond)
		select {
		case <-l.calls:
			early++
			continue
		case <-time.After(quiet):
			late++
		}
		clk.Step(hi - period)
		l.wantCall(t, "at period×(1+jitter)")
	}
	// Each wait ends by the period with a chance of one half: 30 on the
	// same side but for a chance of 2e-9.
	if early == 0 || late == 0 {
		t.Errorf("%d waits ended by the period, %d after it: want both, the waits are not jittered", early, late)
	}
	l.wantNoCall(t, "after the last wait")
}

func TestJittered_spreadsOverTheWholeRange(t *testing.T) {
	const d, jitter, draws = 10 * time.Second, 0.25, 20000
	lo, hi := 7500*time.Millisecond, 12500*time.Millisecond
	minSeen, maxSeen := time.Duration(math.MaxInt64), time.Duration(0)
	var sum float64
	for range draws {
		w := Jittered(d, jitter)
		if w < lo || w > hi {
			t.Fatalf("Jittered(%s, %g) = %s, want within [%s, %s]", d, jitter, w, lo, hi)
		}
		minSeen, maxSeen = min(minSeen, w), max(maxSeen, w)
		sum += float64(w)
	}
	// Uniform over 5 s: 20000 draws come within 50 ms of either end but
	// for a chance of about e^-200.
	if minSeen > lo+50*time.Millisecond || maxSeen < hi-50*time.Millisecond {
		t.Errorf("draws spread over [%s, %s], want about [%s, %s]", minSeen, maxSeen, lo, hi)
	}
	// The mean of 20000 uniform draws is within 3% of the range's
	// half-width of its middle but for a chance below 1e-6.
	if mean := time.Duration(sum / draws); mean < d-75*time.Millisecond || mean > d+75*time.Millisecond {
		t.Errorf("mean wait %s, want about %s", mean, d)
	}
	if got := Jittered(d, 0); got != d {
		t.Errorf("Jittered(%s, 0) = %s, want %s", d, got, d)
	}
}

func TestEvery_returnsWhenContextEnds(t *testing.T) {
	for _, jitter := range []float64{0, 0.5} {
		clk := clocktesting.NewFakeClock(time.Unix(0, 0))
		l := start(t, clk, time.Second, jitter, nil)
		waitWaiting(t, clk)
		l.cancel()
		select {
		case err := <-l.done:
			if err != nil {
				t.Errorf("jitter %g: Every returned %v after the context ended, want nil", jitter, err)
			}
			l.done <- err // for the cleanup
		case <-time.After(10 * time.Second):
			t.Fatalf("jitter %g: Every did not return after the context ended", jitter)
		}
		l.wantNoCall(t, "after the end")
	}
}

func TestEvery_returnsOnlyAfterTheCallUnderWay(t *testing.T) {
	for _, jitter := range []float64{0, 0.5} {
		clk := clocktesting.NewFakeClock(time.Unix(0, 0))
		entered, release := make(chan struct{}), make(chan struct{})
		l := start(t, clk, time.Second, jitter, func(context.Context) {
			close(entered)
			<-release
		})
		waitWaiting(t, clk)
		clk.Step(2 * time.Second)
		<-entered
		l.cancel()
		select {
		case <-l.done:
			t.Fatalf("jitter %g: Every returned while its call was under way", jitter)
		case <-time.After(quiet):
		}
		close(release)
		select {
		case err := <-l.done:
			l.done <- err
		case <-time.After(10 * time.Second):
			t.Fatalf("jitter %g: Every did not return after its call", jitter)
		}
	}
}

func TestEvery_realClockWhenNil(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := 0
	err := Every(ctx, nil, time.Millisecond, 0, func(context.Context) {
		if calls++; calls == 3 {
			cancel()
		}
	})
	if err != nil || calls != 3 {
		t.Fatalf("Every on the real clock: %d calls, err %v; want 3 calls, nil", calls, err)
	}
}

func TestEvery_refusesBadArguments(t *testing.T) {
	cases := []struct {
		name    string
		period  time.Duration
		jitter  float64
		wantErr string
	}{
		{"zero period", 0, 0, "periodic: period (0s) must be positive"},
		{"negative period", -time.Second, 0, "periodic: period (-1s) must be positive"},
		{"negative jitter", time.Second, -0.1, "periodic: jitter (-0.1) must be between 0 and 0.9"},
		{"jitter too large", time.Second, 1, "periodic: jitter (1) must be between 0 and 0.9"},
		{"jitter NaN", time.Second, math.NaN(), "periodic: jitter (NaN) must be between 0 and 0.9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			err := Every(context.Background(), clocktesting.NewFakeClock(time.Unix(0, 0)), tc.period, tc.jitter,
				func(context.Context) { called = true })
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("Every = %v, want %q", err, tc.wantErr)
			}
			if called {
				t.Fatal("fn called despite the error")
			}
		})
	}
}
