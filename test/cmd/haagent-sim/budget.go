package main

import (
	"fmt"
	"math"
	"time"

	"github.com/haagent/haagent/agent/gossip"
)

// estimator guesses how long a run takes, so that -budget can pick the
// runs it can afford. Before any run has finished the guess comes from the
// protocol's timings and a start-up cost per member; after one, from what
// the last finished run of the same profile measured, scaled to the size:
// start-up a little worse than linearly in N (the process is shared by
// every member), each crash with the suspicion timeout (log10 N).
type estimator struct {
	o    options
	last map[string]runResult // profile -> latest finished run
}

// startupPerMember is the a priori start-up and convergence cost of one
// member, in seconds, on a small machine.
const startupPerMember = 0.15

// fixedRunCost covers the child process's start, the stop of every member
// and the writing of its result.
const fixedRunCost = 15 * time.Second

func newEstimator(o options) *estimator { return &estimator{o: o, last: map[string]runResult{}} }

// observe keeps a finished run's measurements.
func (e *estimator) observe(r runResult) {
	if r.Converged && r.ConvergenceS > 0 {
		e.last[r.Profile] = r
	}
}

// estimate is the expected duration of the run of spec.
func (e *estimator) estimate(spec runSpec) time.Duration {
	p, _ := gossip.LookupProfile(spec.profile)
	lo, _ := suspicionTimeouts(p, spec.n)
	n := float64(spec.n)
	startup := startupPerMember * n
	perCrash := (2*lo + 4*p.ProbeInterval + 2*time.Second).Seconds()
	if prev, ok := e.last[spec.profile]; ok {
		ratio := n / float64(prev.N)
		startup = prev.ConvergenceS * ratio * math.Sqrt(max(ratio, 1))
		if c, ok := prev.phase(phaseCrash); ok && len(prev.Crashes) > 0 {
			logRatio := math.Max(1, math.Log10(n)) / math.Max(1, math.Log10(float64(prev.N)))
			perCrash = c.WallS / float64(len(prev.Crashes)) * logRatio
		}
	}
	total := startup + e.o.quiet.Seconds() + float64(e.o.crashes)*perCrash
	return time.Duration(total*float64(time.Second)) + fixedRunCost
}

// plan orders the runs: smallest size first; at each size the loss rates
// (-loss-sizes restricts the ones after the first), then the profiles side
// by side. A budget cut then drops the largest sizes, not a whole profile
// or loss rate.
func (o options) plan() []runSpec {
	var out []runSpec
	for _, n := range o.sizes {
		for i, loss := range o.losses {
			if i > 0 && len(o.lossSizes) > 0 && !contains(o.lossSizes, n) {
				continue
			}
			for _, p := range o.profiles {
				out = append(out, runSpec{n: n, profile: p, loss: loss})
			}
		}
	}
	return out
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// budgetSkip says why spec is skipped under the budget, or "" to run it.
func budgetSkip(est time.Duration, left time.Duration) string {
	if est <= left {
		return ""
	}
	return fmt.Sprintf("skipped: estimated to take %s, and %s of the -budget is left", est.Round(time.Second), max(left, 0).Round(time.Second))
}
