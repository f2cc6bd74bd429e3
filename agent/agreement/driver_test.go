package agreement

import (
	"context"
	"time"

	"github.com/haagent/haagent/agent/failover"
)

// set forms an opinion directly, as the events that lead to it would, and
// carries out what follows (the vote, or its suppression).
func set(a *Agreement, target string, op failover.Opinion) {
	a.stepWith(func(now time.Time) []effect {
		var out effects
		a.core.set(&out, target, op, now)
		return out
	})
}

// startForTest makes a as Run would before it loops: checks run under ctx.
func startForTest(a *Agreement, ctx context.Context) {
	a.mu.Lock()
	a.runCtx = ctx
	a.mu.Unlock()
	a.step(started{})
}
