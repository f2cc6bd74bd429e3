package main

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/probe"
)

// apiCheckTime is the longest the apiserver check (the one apiReachable
// reads) takes to fail after the API server became unreachable: a period,
// then its timeout.
func apiCheckTime(checks []probe.Check) time.Duration {
	var d time.Duration
	for i := range checks {
		if checks[i].Name == "apiserver" {
			d = max(d, checks[i].FirstFailureWithin())
		}
	}
	return d
}

// apiReachable reads the API server check of the node checks: reachable
// when its last run passed. Before its first run it counts as reachable for
// at most grace from now (the check's period and timeout, which the fence
// bound allows for): a starting agent does not count itself isolated
// before it could know. Without such a check there is no evidence, and
// isolation is judged by gossip alone.
func apiReachable(runner *probe.Runner, grace time.Duration) func() bool {
	start := time.Now()
	return func() bool {
		for _, s := range runner.Statuses() {
			if s.Name != "apiserver" {
				continue
			}
			if s.Runs == 0 {
				return time.Since(start) < grace
			}
			return s.ConsecutiveFailures == 0
		}
		return false
	}
}

// publishReadiness puts each new node verdict into the gossip metadata.
func publishReadiness(ctx context.Context, runner *probe.Runner, members *gossip.Membership, log *zap.Logger) {
	verdicts, cancel := runner.Subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case v, ok := <-verdicts:
			if !ok {
				return
			}
			reason := ""
			if !v.Ready {
				reason = v.FailingCheck + ": " + v.Reason
			}
			if err := members.SetReadiness(v.Ready, reason); err != nil {
				log.Warn("publish readiness", zap.Error(err))
			}
		}
	}
}

func withoutAPIServerChecks(checks []probe.Check) []probe.Check {
	var out []probe.Check
	for _, c := range checks {
		if c.APIServer == nil {
			out = append(out, c)
		}
	}
	return out
}
