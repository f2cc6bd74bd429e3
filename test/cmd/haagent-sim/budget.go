package main

import (
	"fmt"
	"math"
	"time"

	hacoord "github.com/haagent/haagent/agent/coordinator"
)

// estimator guesses how long a run takes in wall time, so that -budget can
// pick the runs it can afford: the run's simulated length times the wall
// seconds one simulated second costs. Before any run of a profile has
// finished, both come from the protocol's timings and a cost per member;
// after one, from what the last finished run of the same profile
// measured, scaled to the size: the simulated start-up with the number of
// batches, each crash with the suspicion timeout (log10 N), and the wall
// cost of a simulated second a little worse than linearly in N (every
// member's push-pull carries the whole group).
type estimator struct {
	o    options
	last map[string]runResult // profile -> latest finished run
}

// wallPerMemberSecond is the a priori wall time one simulated second of
// one member costs at the fast profile's 200 ms probe interval, on a small
// shared machine; a longer probe interval costs proportionally less.
const wallPerMemberSecond = 0.004

// fixedRunCost covers the child process's start, the stop of every member
// and the writing of its result.
const fixedRunCost = 5 * time.Second

func newEstimator(o options) *estimator { return &estimator{o: o, last: map[string]runResult{}} }

// observe keeps a finished run's measurements (of one run, not repeated:
// see merge).
func (e *estimator) observe(r runResult) {
	if r.Converged && r.ConvergenceS > 0 && r.VirtualS > 0 && r.WallS > 0 && r.Repeats <= 1 {
		e.last[r.Profile] = r
	}
}

// estimate is the expected wall time of the run of spec.
func (e *estimator) estimate(spec runSpec) time.Duration {
	p := gossipConfig(e.o, "sim", spec.profile, spec.n).Effective()
	lo, _ := suspicionTimeouts(p, spec.n)
	n := float64(spec.n)
	batches := math.Ceil(n / float64(e.o.batch))
	converge := batches*20*p.GossipInterval.Seconds() + 10
	perCrash := (2*lo + 6*p.ProbeInterval + 2*time.Second).Seconds()
	settle := min(20, e.o.settle.Seconds())
	perMember := wallPerMemberSecond * (200 * time.Millisecond).Seconds() / p.ProbeInterval.Seconds()
	if prev, ok := e.last[spec.profile]; ok {
		converge = prev.ConvergenceS * batches / math.Ceil(float64(prev.N)/float64(e.o.batch))
		settle = prev.SettleS
		others := 0 // the crashes of phaseCrash: not those of the Lease holder
		for _, c := range prev.Crashes {
			if !c.LeaseHolder {
				others++
			}
		}
		if c, ok := prev.phase(phaseCrash); ok && others > 0 {
			logRatio := math.Max(1, math.Log10(n)) / math.Max(1, math.Log10(float64(prev.N)))
			perCrash = c.VirtualS / float64(others) * logRatio
		}
		perMember = prev.WallS / prev.VirtualS / float64(prev.N) * math.Sqrt(max(n/float64(prev.N), 1))
	}
	// A crash of the Lease holder waits, besides, for the old holder to
	// stop acting: about a Lease duration.
	holderCrash := perCrash + hacoord.DefaultLeaseConfig().Duration.Seconds()
	virtual := converge + settle + e.o.quiet.Seconds() + float64(e.o.crashes)*perCrash + float64(e.o.coordinatorCrashes)*holderCrash
	one := time.Duration(virtual*n*perMember*float64(time.Second)) + fixedRunCost
	return time.Duration(e.o.repeat) * one
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
