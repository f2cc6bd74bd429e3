package main

import (
	"fmt"
	"time"

	"k8s.io/utils/clock"
)

// clockOffsetEnv shifts the coordinator's wall clock, for end-to-end tests
// of clock skew between coordinators only: every agent of a test machine
// shares one clock, and a skewed coordinator is the case to show. It is
// not a flag, so that nobody sets it on a real cluster by mistake.
const clockOffsetEnv = "HAAGENT_TEST_CLOCK_OFFSET"

// coordinatorClock is the real clock, shifted by $HAAGENT_TEST_CLOCK_OFFSET
// when it is set.
func coordinatorClock(getenv func(string) string) (clock.WithTicker, error) {
	s := getenv(clockOffsetEnv)
	if s == "" {
		return clock.RealClock{}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < -24*time.Hour || d > 24*time.Hour {
		return nil, fmt.Errorf("$%s (%q) must be a duration between -24h and 24h", clockOffsetEnv, s)
	}
	return offsetClock{WithTicker: clock.RealClock{}, offset: d}, nil
}

// offsetClock reads the time d ahead (or behind). Durations between two of
// its readings are unchanged (the monotonic reading moves with the wall
// clock), as on a machine whose clock is set wrong; only comparisons with
// times from other machines see the offset.
type offsetClock struct {
	clock.WithTicker
	offset time.Duration
}

func (c offsetClock) Now() time.Time                  { return c.WithTicker.Now().Add(c.offset) }
func (c offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
