package periodic

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"k8s.io/utils/clock"
)

// MaxJitter bounds the jitter: at 1 a wait could be zero.
const MaxJitter = 0.9

// Every calls fn once every period until ctx ends, then returns nil once
// the call under way, if any, has returned. The first call comes after a
// period, not at once. clk nil means the real clock.
//
// jitter is a fraction of the period: 0 keeps the exact cadence of a
// ticker (a call that overruns the period delays the next by the overrun
// only, and missed ticks are dropped). Above 0 each wait, counted from the
// end of the previous call, is drawn uniformly from
// [period×(1−jitter), period×(1+jitter)], so the mean period is kept.
//
// It returns an error, without calling fn, when period is not positive or
// jitter is outside [0, MaxJitter].
func Every(ctx context.Context, clk clock.WithTicker, period time.Duration, jitter float64, fn func(context.Context)) error {
	if period <= 0 {
		return fmt.Errorf("periodic: period (%s) must be positive", period)
	}
	if !(jitter >= 0 && jitter <= MaxJitter) { // also refuses NaN
		return fmt.Errorf("periodic: jitter (%g) must be between 0 and %g", jitter, MaxJitter)
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	if jitter == 0 {
		return ticking(ctx, clk, period, fn)
	}
	for {
		t := clk.NewTimer(Jittered(period, jitter))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
		if ctx.Err() != nil {
			return nil
		}
		fn(ctx)
	}
}

func ticking(ctx context.Context, clk clock.WithTicker, period time.Duration, fn func(context.Context)) error {
	t := clk.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		// A tick and the end of ctx may arrive together: do not start a
		// call after the end.
		if ctx.Err() != nil {
			return nil
		}
		fn(ctx)
	}
}

// Jittered draws a duration uniformly from [d×(1−jitter), d×(1+jitter)],
// for loops that wait on something else besides time and so cannot use
// Every. jitter must be in [0, 1].
func Jittered(d time.Duration, jitter float64) time.Duration {
	spread := time.Duration(math.Round(float64(d) * jitter))
	if spread <= 0 {
		return d
	}
	return d - spread + rand.N(2*spread+1)
}
