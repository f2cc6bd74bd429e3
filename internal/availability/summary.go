package availability

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"time"
)

// Stats are the reliability figures of one node, or of the whole cluster,
// over a window. The package documentation defines each figure.
type Stats struct {
	// Failures counts failovers whose LastHeard lies inside the window.
	Failures int
	// Detected counts those failures with a usable time to detect.
	Detected int
	// Repaired counts those failures with a usable time to repair.
	Repaired int

	// Downtime is the time the node was down inside the window. For the
	// cluster it is the sum over nodes (node-time), saturating at the
	// largest Duration.
	Downtime time.Duration
	// MTTD is the mean time to detect, rounded down to the nanosecond;
	// zero unless HasMTTD.
	MTTD time.Duration
	// MTTR is the mean time to repair, rounded down to the nanosecond;
	// zero unless HasMTTR. Repairs that end after the window are counted in
	// full; failovers not yet repaired are left out, so MTTR is optimistic
	// while an outage is open (Measured is not).
	MTTR time.Duration
	// MTBF is the mean up time between failures, (up time) / Failures,
	// rounded down to the nanosecond and saturating at the largest
	// Duration; zero unless HasMTBF.
	MTBF time.Duration

	// Availability is MTBF / (MTBF + MTTR), the steady-state estimate. It
	// is 1 when there were no failures, and 0 when the window was entirely
	// down. It is 0 and HasAvailability is false when there were failures
	// but none was repaired, because MTTR is then unknown.
	Availability float64
	// Measured is the fraction of the window the node was up: 1 − Downtime
	// / window length. For the cluster it is the mean over nodes.
	Measured float64
}

// HasMTTD reports whether MTTD is defined (some failure was confirmed).
func (s Stats) HasMTTD() bool { return s.Detected > 0 }

// HasMTTR reports whether MTTR is defined (some failure was repaired).
func (s Stats) HasMTTR() bool { return s.Repaired > 0 }

// HasMTBF reports whether MTBF is defined. With no failures the time
// between failures is unbounded; Availability is then 1.
func (s Stats) HasMTBF() bool { return s.Failures > 0 }

// HasAvailability reports whether Availability is defined: there were no
// failures, or at least one was repaired.
func (s Stats) HasAvailability() bool { return s.Failures == 0 || s.Repaired > 0 }

// Summary holds the figures for each node and for the cluster.
type Summary struct {
	// Window is the measurement window the figures cover.
	Window Window
	// Nodes maps each node name to its figures.
	Nodes map[string]Stats
	// Cluster pools the failures of all nodes and counts up time and
	// downtime in node-time; see the package documentation.
	Cluster Stats
	// AllUp is the fraction of the window during which no node was down.
	// It is at most the smallest per-node Measured.
	AllUp float64
	// Skipped counts records that were ignored because LastHeard was
	// missing or Recovered was before LastHeard.
	Skipped int
}

// Summarize computes per-node and cluster figures over the window.
//
// The cluster is the nodes listed in nodes together with every node named
// in a record; a listed node with no failovers counts as up for the whole
// window. Passing the full membership matters: without it the cluster
// figures only cover nodes that failed. Outages of one node that overlap
// are merged for its downtime but each record still counts as a failure.
// Outages of different nodes are independent.
//
// Records that start before the window add downtime but are not failures of
// this window; records that start at or after its end are ignored. Summarize
// fails only for a window that Validate rejects.
func Summarize(failovers []Failover, window Window, nodes []string) (Summary, error) {
	if err := window.Validate(); err != nil {
		return Summary{}, err
	}
	start, end := window.Start.Round(0), window.End.Round(0)
	length := end.Sub(start)

	perNode := make(map[string]*nodeTally, len(nodes))
	tallyOf := func(name string) *nodeTally {
		t, ok := perNode[name]
		if !ok {
			t = &nodeTally{}
			perNode[name] = t
		}
		return t
	}
	for _, name := range nodes {
		tallyOf(name)
	}

	sum := Summary{Window: window}
	var everyOutage []span
	for _, f := range failovers {
		t := tallyOf(f.Node)
		lastHeard, recovered := f.LastHeard.Round(0), f.Recovered.Round(0)
		if lastHeard.IsZero() || (!recovered.IsZero() && recovered.Before(lastHeard)) {
			sum.Skipped++
			continue
		}

		from, to := lastHeard, end
		if from.Before(start) {
			from = start
		}
		if !recovered.IsZero() && recovered.Before(end) {
			to = recovered
		}
		if from.Before(to) {
			s := span{from: from.Sub(start), to: to.Sub(start)}
			t.outages = append(t.outages, s)
			everyOutage = append(everyOutage, s)
		}

		if lastHeard.Before(start) || !lastHeard.Before(end) {
			continue
		}
		t.failures++
		if d, ok := TimeToDetect(f); ok {
			t.detected++
			t.detect.add(uint64(d))
		}
		if d, ok := TimeToRepair(f); ok {
			t.repaired++
			t.repair.add(uint64(d))
		}
	}

	sum.Nodes = make(map[string]Stats, len(perNode))
	var cluster nodeTally
	for name, t := range perNode {
		down := covered(t.outages)
		t.down.add(uint64(down))
		t.up.add(uint64(length - down))
		sum.Nodes[name] = t.stats()
		cluster.merge(t)
	}
	sum.Cluster = cluster.stats()
	sum.AllUp = float64(length-covered(everyOutage)) / float64(length)
	return sum, nil
}

// nodeTally accumulates one node's (or the cluster's) figures. Sums of
// durations are 128-bit so that they cannot overflow however many records
// or nodes there are.
type nodeTally struct {
	failures, detected, repaired int
	detect, repair               uint128 // sums of times to detect / repair
	up, down                     uint128 // node-time up and down in the window
	outages                      []span
}

func (t *nodeTally) merge(o *nodeTally) {
	t.failures += o.failures
	t.detected += o.detected
	t.repaired += o.repaired
	t.detect.addWide(o.detect)
	t.repair.addWide(o.repair)
	t.up.addWide(o.up)
	t.down.addWide(o.down)
}

func (t *nodeTally) stats() Stats {
	s := Stats{
		Failures: t.failures,
		Detected: t.detected,
		Repaired: t.repaired,
		Downtime: t.down.quotient(1),
		Measured: 1,
	}
	observed := t.up
	observed.addWide(t.down)
	if observed != (uint128{}) {
		// up ≤ observed, and rounding to float64 is monotone, so the ratio
		// cannot exceed 1.
		s.Measured = t.up.float() / observed.float()
	}
	if t.detected > 0 {
		s.MTTD = t.detect.quotient(uint64(t.detected))
	}
	if t.repaired > 0 {
		s.MTTR = t.repair.quotient(uint64(t.repaired))
	}
	if t.failures == 0 {
		s.Availability = 1
		return s
	}
	s.MTBF = t.up.quotient(uint64(t.failures))
	if t.repaired == 0 {
		return s
	}
	// From the exact sums, so that a saturated MTBF does not skew it.
	mtbf := t.up.float() / float64(t.failures)
	mttr := t.repair.float() / float64(t.repaired)
	if mtbf+mttr > 0 {
		s.Availability = mtbf / (mtbf + mttr)
	}
	return s
}

// span is a half-open interval [from, to) of offsets from the window start.
type span struct {
	from, to time.Duration
}

// covered returns the length of the union of the spans. It sorts them in
// place.
func covered(spans []span) time.Duration {
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.from, b.from) })
	var total, from, to time.Duration
	for _, s := range spans {
		if s.from > to {
			total += to - from
			from, to = s.from, s.to
			continue
		}
		to = max(to, s.to)
	}
	return total + to - from
}

// uint128 is an unsigned 128-bit integer, enough for sums of up to 2^64
// non-negative durations.
type uint128 struct {
	hi, lo uint64
}

func (u *uint128) add(v uint64) {
	var carry uint64
	u.lo, carry = bits.Add64(u.lo, v, 0)
	u.hi += carry
}

func (u *uint128) addWide(v uint128) {
	var carry uint64
	u.lo, carry = bits.Add64(u.lo, v.lo, 0)
	u.hi += v.hi + carry
}

// quotient returns u / d rounded down, saturating at the largest Duration.
// d must be positive.
func (u uint128) quotient(d uint64) time.Duration {
	if u.hi >= d {
		return maxDuration
	}
	q, _ := bits.Div64(u.hi, u.lo, d)
	if q > math.MaxInt64 {
		return maxDuration
	}
	return time.Duration(q)
}

func (u uint128) float() float64 {
	return float64(u.hi)*0x1p64 + float64(u.lo)
}
