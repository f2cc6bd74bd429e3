package availability

import (
	"fmt"
	"math"
	"time"
)

// maxDuration is the largest time.Duration, about 292 years.
const maxDuration = time.Duration(math.MaxInt64)

// Failover holds the phase timestamps of one failover that availability
// figures need. A zero time means the phase was not reached (or not
// recorded).
type Failover struct {
	// Node is the name of the node that failed.
	Node string
	// LastHeard is the last time any peer heard from the node. The outage
	// is taken to start here, not at detection, because the workloads were
	// already unreachable.
	LastHeard time.Time
	// Confirmed is when a quorum of peers agreed that the node was down.
	Confirmed time.Time
	// Recovered is when every affected workload was back to its desired
	// number of ready replicas. The outage ends here.
	Recovered time.Time
}

// TimeToDetect returns Confirmed − LastHeard. It reports false when either
// phase is missing or Confirmed is before LastHeard. Like time.Time.Sub, the
// result saturates at the largest Duration.
func TimeToDetect(f Failover) (time.Duration, bool) {
	return elapsed(f.LastHeard, f.Confirmed)
}

// TimeToRepair returns Recovered − LastHeard. It reports false when either
// phase is missing or Recovered is before LastHeard. Like time.Time.Sub, the
// result saturates at the largest Duration.
func TimeToRepair(f Failover) (time.Duration, bool) {
	return elapsed(f.LastHeard, f.Recovered)
}

func elapsed(from, to time.Time) (time.Duration, bool) {
	from, to = from.Round(0), to.Round(0)
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return 0, false
	}
	return to.Sub(from), true
}

// Window is the half-open measurement interval [Start, End).
type Window struct {
	Start time.Time
	End   time.Time
}

// Length returns End − Start; it is meaningful only for a valid window.
func (w Window) Length() time.Duration {
	return w.End.Round(0).Sub(w.Start.Round(0))
}

// Validate reports whether the window is set, not empty, and short enough
// (about 292 years) for its length to be a time.Duration.
func (w Window) Validate() error {
	start, end := w.Start.Round(0), w.End.Round(0)
	switch {
	case start.IsZero():
		return fmt.Errorf("availability: window start must be set")
	case !end.After(start):
		return fmt.Errorf("availability: window end (%s) must be after start (%s)",
			end.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano))
	case !start.Add(end.Sub(start)).Equal(end):
		return fmt.Errorf("availability: window (%s to %s) must be at most %s long",
			start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano), maxDuration)
	}
	return nil
}
