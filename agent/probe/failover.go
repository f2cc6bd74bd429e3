package probe

import "time"

// NotReadyFailover is the answer of NotReadyFailoverDue.
type NotReadyFailover struct {
	// Due is true when the node has been not ready, without a break, for at least the
	// configured bound (and the bound is not 0).
	Due bool
	// NotReadySince is when the unbroken not-ready spell began; zero when the latest
	// verdict is ready or there is none.
	NotReadySince time.Time
	// FailingCheck and Reason are those of the latest verdict, for the failover record.
	FailingCheck string
	Reason       string
}

// NotReadyFailoverDue tells whether a node that is alive on gossip but not ready has been so
// for long enough (after, Config.NotReadyFailoverAfter; 0 is off) to be failed over.
// history holds the verdicts seen for the node, oldest first, each with Since set to when
// the observer saw it, on the observer's clock (a peer's own clock may be skewed). Only the
// unbroken run of not-ready verdicts at the end counts: one ready verdict restarts it.
// Whether the node is alive on gossip is for the caller to know.
func NotReadyFailoverDue(history []Verdict, now time.Time, after time.Duration) NotReadyFailover {
	if len(history) == 0 || history[len(history)-1].Ready {
		return NotReadyFailover{}
	}
	latest := history[len(history)-1]
	since := latest.Since
	for i := len(history) - 2; i >= 0 && !history[i].Ready; i-- {
		since = history[i].Since
	}
	return NotReadyFailover{
		Due:           after > 0 && now.Sub(since) >= after,
		NotReadySince: since,
		FailingCheck:  latest.FailingCheck,
		Reason:        latest.Reason,
	}
}
