package main

import (
	"testing"
	"time"
)

func TestCoordinatorClock(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == clockOffsetEnv {
				return v
			}
			return ""
		}
	}
	clk, err := coordinatorClock(env(""))
	if err != nil {
		t.Fatal(err)
	}
	if d := clk.Now().Sub(time.Now()); d < -time.Second || d > time.Second {
		t.Errorf("no offset: clock off by %s", d)
	}
	clk, err = coordinatorClock(env("60s"))
	if err != nil {
		t.Fatal(err)
	}
	// Round drops the monotonic reading: the wall clocks are compared, as
	// a time written by another machine would be.
	if d := clk.Now().Round(0).Sub(time.Now().Round(0)); d < 59*time.Second || d > 61*time.Second {
		t.Errorf("offset 60s: clock ahead by %s", d)
	}
	start := clk.Now()
	time.Sleep(10 * time.Millisecond)
	if d := clk.Since(start); d < 10*time.Millisecond || d > time.Second {
		t.Errorf("durations on an offset clock: %s, want about 10ms", d)
	}
	for _, bad := range []string{"soon", "25h"} {
		if _, err := coordinatorClock(env(bad)); err == nil || err.Error() != `$HAAGENT_TEST_CLOCK_OFFSET ("`+bad+`") must be a duration between -24h and 24h` {
			t.Errorf("offset %q: err = %v", bad, err)
		}
	}
}
