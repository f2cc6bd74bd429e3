package availability

import (
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
	"time"
)

const h = time.Hour

// hundredHours is the window most hand-computed cases use.
var hundredHours = Window{Start: t0, End: at(100 * h)}

// outage builds a failover of node from t0+lastHeard; a negative confirmed
// or recovered offset means the phase was not reached.
func outage(t *testing.T, node string, lastHeard, confirmed, recovered time.Duration) Failover {
	t.Helper()
	f := Failover{Node: node, LastHeard: at(lastHeard)}
	if confirmed >= 0 {
		f.Confirmed = at(lastHeard + confirmed)
	}
	if recovered >= 0 {
		f.Recovered = at(lastHeard + recovered)
	}
	return f
}

// sameStats reports the first difference between two Stats, or "".
// Counts and durations must match exactly, fractions to 1e-12.
func sameStats(got, want Stats) string {
	if got.Failures != want.Failures || got.Detected != want.Detected || got.Repaired != want.Repaired {
		return fmt.Sprintf("counts = %d/%d/%d; want %d/%d/%d (failures/detected/repaired)",
			got.Failures, got.Detected, got.Repaired, want.Failures, want.Detected, want.Repaired)
	}
	if got.Downtime != want.Downtime || got.MTTD != want.MTTD || got.MTTR != want.MTTR || got.MTBF != want.MTBF {
		return fmt.Sprintf("durations = %v/%v/%v/%v; want %v/%v/%v/%v (downtime/MTTD/MTTR/MTBF)",
			got.Downtime, got.MTTD, got.MTTR, got.MTBF, want.Downtime, want.MTTD, want.MTTR, want.MTBF)
	}
	if !near(got.Availability, want.Availability, 1e-12) || !near(got.Measured, want.Measured, 1e-12) {
		return fmt.Sprintf("availability, measured = %v, %v; want %v, %v",
			got.Availability, got.Measured, want.Availability, want.Measured)
	}
	return ""
}

func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol
}

func TestSummarize_handComputed(t *testing.T) {
	type want struct {
		nodes   map[string]Stats
		cluster Stats
		allUp   float64
		skipped int
	}
	cases := []struct {
		name      string
		window    Window
		nodes     []string
		failovers func(t *testing.T) []Failover
		want      want
	}{
		{
			name:      "no failures",
			window:    hundredHours,
			nodes:     []string{"a", "b"},
			failovers: func(*testing.T) []Failover { return nil },
			want: want{
				nodes: map[string]Stats{
					"a": {Availability: 1, Measured: 1},
					"b": {Availability: 1, Measured: 1},
				},
				cluster: Stats{Availability: 1, Measured: 1},
				allUp:   1,
			},
		},
		{
			name:      "empty cluster",
			window:    hundredHours,
			failovers: func(*testing.T) []Failover { return nil },
			want: want{
				nodes:   map[string]Stats{},
				cluster: Stats{Availability: 1, Measured: 1},
				allUp:   1,
			},
		},
		{
			// Downtime 1h + 3h; MTBF (100h − 4h) / 2 = 48h; A = 48 / 50.
			name:   "two repaired failures",
			window: hundredHours,
			failovers: func(t *testing.T) []Failover {
				return []Failover{
					outage(t, "a", 10*h, 30*time.Second, 1*h),
					outage(t, "a", 50*h, 90*time.Second, 3*h),
				}
			},
			want: want{
				nodes: map[string]Stats{"a": {
					Failures: 2, Detected: 2, Repaired: 2,
					Downtime: 4 * h, MTTD: time.Minute, MTTR: 2 * h, MTBF: 48 * h,
					Availability: 0.96, Measured: 0.96,
				}},
				cluster: Stats{
					Failures: 2, Detected: 2, Repaired: 2,
					Downtime: 4 * h, MTTD: time.Minute, MTTR: 2 * h, MTBF: 48 * h,
					Availability: 0.96, Measured: 0.96,
				},
				allUp: 0.96,
			},
		},
		{
			// Down from 90h to the end of the window; MTTR unknown.
			name:   "not yet recovered",
			window: hundredHours,
			failovers: func(t *testing.T) []Failover {
				return []Failover{outage(t, "a", 90*h, time.Minute, -1)}
			},
			want: want{
				nodes: map[string]Stats{"a": {
					Failures: 1, Detected: 1,
					Downtime: 10 * h, MTTD: time.Minute, MTBF: 90 * h,
					Measured: 0.9,
				}},
				cluster: Stats{
					Failures: 1, Detected: 1,
					Downtime: 10 * h, MTTD: time.Minute, MTBF: 90 * h,
					Measured: 0.9,
				},
				allUp: 0.9,
			},
		},
		{
			// Counts 3h of downtime but is a failure of the previous window.
			name:   "started before the window",
			window: hundredHours,
			failovers: func(t *testing.T) []Failover {
				return []Failover{outage(t, "a", -2*h, time.Minute, 5*h)}
			},
			want: want{
				nodes:   map[string]Stats{"a": {Downtime: 3 * h, Availability: 1, Measured: 0.97}},
				cluster: Stats{Downtime: 3 * h, Availability: 1, Measured: 0.97},
				allUp:   0.97,
			},
		},
		{
			// Repair time counted in full (4h), downtime clipped (2h).
			name:   "recovered after the window",
			window: hundredHours,
			failovers: func(t *testing.T) []Failover {
				return []Failover{outage(t, "a", 98*h, -1, 4*h)}
			},
			want: want{
				nodes: map[string]Stats{"a": {
					Failures: 1, Repaired: 1,
					Downtime: 2 * h, MTTR: 4 * h, MTBF: 98 * h,
					Availability: 98.0 / 102, Measured: 0.98,
				}},
				cluster: Stats{
					Failures: 1, Repaired: 1,
					Downtime: 2 * h, MTTR: 4 * h, MTBF: 98 * h,
					Availability: 98.0 / 102, Measured: 0.98,
				},
				allUp: 0.98,
			},
		},
		{
			// [10h, 14h) ∪ [12h, 16h) is 6h down; MTBF (100h − 6h) / 2.
			name:   "overlapping outages of one node",
			window: hundredHours,
			failovers: func(t *testing.T) []Failover {
				return []Failover{
					outage(t, "a", 12*h, -1, 4*h),
					outage(t, "a", 10*h, -1, 4*h),
				}
			},
			want: want{
				nodes: map[string]Stats{"a": {
					Failures: 2, Repaired: 2,
					Downtime: 6 * h, MTTR: 4 * h, MTBF: 47 * h,
					Availability: 47.0 / 51, Measured: 0.94,
				}},
				cluster: Stats{
					Failures: 2, Repaired: 2,
					Downtime: 6 * h, MTTR: 4 * h, MTBF: 47 * h,
					Availability: 47.0 / 51, Measured: 0.94,
				},
				allUp: 0.94,
			},
		},
		{
			// a down [10h, 20h), b down [15h, 25h), c never: the cluster
			// has 300h of node-time, 20h down, 2 failures; somebody was
			// down during [10h, 25h).
			name:   "independent nodes",
			window: hundredHours,
			nodes:  []string{"a", "b", "c"},
			failovers: func(t *testing.T) []Failover {
				return []Failover{
					outage(t, "a", 10*h, -1, 10*h),
					outage(t, "b", 15*h, -1, 10*h),
				}
			},
			want: want{
				nodes: map[string]Stats{
					"a": {Failures: 1, Repaired: 1, Downtime: 10 * h, MTTR: 10 * h, MTBF: 90 * h, Availability: 0.9, Measured: 0.9},
					"b": {Failures: 1, Repaired: 1, Downtime: 10 * h, MTTR: 10 * h, MTBF: 90 * h, Availability: 0.9, Measured: 0.9},
					"c": {Availability: 1, Measured: 1},
				},
				cluster: Stats{
					Failures: 2, Repaired: 2,
					Downtime: 20 * h, MTTR: 10 * h, MTBF: 140 * h,
					Availability: 140.0 / 150, Measured: 280.0 / 300,
				},
				allUp: 0.85,
			},
		},
		{
			name:   "invalid records skipped",
			window: hundredHours,
			failovers: func(t *testing.T) []Failover {
				return []Failover{
					{Node: "a", Recovered: at(time.Hour)},
					{Node: "a", LastHeard: at(2 * h), Recovered: at(1 * h)},
				}
			},
			want: want{
				nodes:   map[string]Stats{"a": {Availability: 1, Measured: 1}},
				cluster: Stats{Availability: 1, Measured: 1},
				allUp:   1,
				skipped: 2,
			},
		},
		{
			name:   "confirmation before last heard",
			window: hundredHours,
			failovers: func(t *testing.T) []Failover {
				f := outage(t, "a", 10*h, -1, 5*h)
				f.Confirmed = at(9 * h)
				return []Failover{f}
			},
			want: want{
				nodes: map[string]Stats{"a": {
					Failures: 1, Repaired: 1, Downtime: 5 * h, MTTR: 5 * h, MTBF: 95 * h,
					Availability: 0.95, Measured: 0.95,
				}},
				cluster: Stats{
					Failures: 1, Repaired: 1, Downtime: 5 * h, MTTR: 5 * h, MTBF: 95 * h,
					Availability: 0.95, Measured: 0.95,
				},
				allUp: 0.95,
			},
		},
		{
			name:   "window edges are half-open",
			window: hundredHours,
			failovers: func(t *testing.T) []Failover {
				return []Failover{
					outage(t, "a", 0, -1, 1*h),   // counts
					outage(t, "a", 100*h, -1, h), // next window
				}
			},
			want: want{
				nodes: map[string]Stats{"a": {
					Failures: 1, Repaired: 1, Downtime: h, MTTR: h, MTBF: 99 * h,
					Availability: 0.99, Measured: 0.99,
				}},
				cluster: Stats{
					Failures: 1, Repaired: 1, Downtime: h, MTTR: h, MTBF: 99 * h,
					Availability: 0.99, Measured: 0.99,
				},
				allUp: 0.99,
			},
		},
		{
			name:   "instant repair",
			window: hundredHours,
			failovers: func(t *testing.T) []Failover {
				return []Failover{outage(t, "a", 10*h, 0, 0)}
			},
			want: want{
				nodes: map[string]Stats{"a": {
					Failures: 1, Detected: 1, Repaired: 1, MTBF: 100 * h, Availability: 1, Measured: 1,
				}},
				cluster: Stats{Failures: 1, Detected: 1, Repaired: 1, MTBF: 100 * h, Availability: 1, Measured: 1},
				allUp:   1,
			},
		},
		{
			// No up time and a zero MTTR: MTBF / (MTBF + MTTR) is 0/0,
			// reported as 0 to match the measured figure.
			name:   "down throughout",
			window: hundredHours,
			failovers: func(t *testing.T) []Failover {
				return []Failover{
					outage(t, "a", 0, -1, -1),
					outage(t, "a", 5*h, -1, 0),
				}
			},
			want: want{
				nodes:   map[string]Stats{"a": {Failures: 2, Repaired: 1, Downtime: 100 * h}},
				cluster: Stats{Failures: 2, Repaired: 1, Downtime: 100 * h},
			},
		},
		{
			// 2 × 292 years of node-time up over one failure.
			name:   "cluster MTBF saturates",
			window: Window{Start: t0, End: t0.Add(math.MaxInt64)},
			nodes:  []string{"a", "b"},
			failovers: func(t *testing.T) []Failover {
				return []Failover{outage(t, "a", 0, -1, 0)}
			},
			want: want{
				nodes: map[string]Stats{
					"a": {Failures: 1, Repaired: 1, MTBF: math.MaxInt64, Availability: 1, Measured: 1},
					"b": {Availability: 1, Measured: 1},
				},
				cluster: Stats{Failures: 1, Repaired: 1, MTBF: math.MaxInt64, Availability: 1, Measured: 1},
				allUp:   1,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Summarize(tc.failovers(t), tc.window, tc.nodes)
			if err != nil {
				t.Fatalf("Summarize: %v", err)
			}
			if len(got.Nodes) != len(tc.want.nodes) {
				t.Errorf("got %d nodes; want %d", len(got.Nodes), len(tc.want.nodes))
			}
			for name, want := range tc.want.nodes {
				g, ok := got.Nodes[name]
				if !ok {
					t.Errorf("node %q missing", name)
					continue
				}
				if diff := sameStats(g, want); diff != "" {
					t.Errorf("node %q: %s", name, diff)
				}
			}
			if diff := sameStats(got.Cluster, tc.want.cluster); diff != "" {
				t.Errorf("cluster: %s", diff)
			}
			if !near(got.AllUp, tc.want.allUp, 1e-12) {
				t.Errorf("AllUp = %v; want %v", got.AllUp, tc.want.allUp)
			}
			if got.Skipped != tc.want.skipped {
				t.Errorf("Skipped = %d; want %d", got.Skipped, tc.want.skipped)
			}
			if got.Window != tc.window {
				t.Errorf("Window = %v; want %v", got.Window, tc.window)
			}
		})
	}
}

func TestStats_flags(t *testing.T) {
	cases := []struct {
		name                           string
		s                              Stats
		mttd, mttr, mtbf, availability bool
	}{
		{name: "no failures", s: Stats{}, availability: true},
		{name: "open outage", s: Stats{Failures: 1, Detected: 1}, mttd: true, mtbf: true},
		{name: "repaired", s: Stats{Failures: 2, Repaired: 1}, mttr: true, mtbf: true, availability: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := []bool{tc.s.HasMTTD(), tc.s.HasMTTR(), tc.s.HasMTBF(), tc.s.HasAvailability()}
			want := []bool{tc.mttd, tc.mttr, tc.mtbf, tc.availability}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("HasMTTD, HasMTTR, HasMTBF, HasAvailability = %v; want %v", got, want)
			}
		})
	}
}

func TestSummarize_invalidWindow(t *testing.T) {
	_, err := Summarize(nil, Window{Start: t0, End: t0}, nil)
	want := "availability: window end (2025-03-01T00:00:00Z) must be after start (2025-03-01T00:00:00Z)"
	if err == nil || err.Error() != want {
		t.Errorf("Summarize() error = %v; want %q", err, want)
	}
}

func TestSummarize_doesNotReorderInput(t *testing.T) {
	in := []Failover{
		outage(t, "a", 50*h, -1, h),
		outage(t, "a", 10*h, -1, h),
	}
	want := append([]Failover(nil), in...)
	if _, err := Summarize(in, hundredHours, nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("Summarize reordered its input: %v", in)
	}
}

// minuteScenario is a random cluster history in which every timestamp falls
// on a whole minute, so that sampling each minute measures downtime exactly.
type minuteScenario struct {
	window    Window
	nodes     []string
	failovers []Failover
}

func (minuteScenario) Generate(r *rand.Rand, _ int) reflect.Value {
	names := []string{"n0", "n1", "n2", "n3", "n4"}
	minutes := func(m int) time.Duration { return time.Duration(m) * time.Minute }
	start := t0.Add(minutes(r.Intn(10000)))
	length := 1 + r.Intn(2000)
	s := minuteScenario{window: Window{Start: start, End: start.Add(minutes(length))}}
	for _, n := range names {
		if r.Intn(3) == 0 {
			s.nodes = append(s.nodes, n)
		}
	}
	for range r.Intn(13) {
		f := Failover{Node: names[r.Intn(len(names))]}
		if r.Intn(20) != 0 {
			f.LastHeard = start.Add(minutes(r.Intn(length+400) - 200))
		}
		base := f.LastHeard
		if base.IsZero() {
			base = start
		}
		if r.Intn(5) != 0 {
			f.Confirmed = base.Add(minutes(r.Intn(36) - 5))
		}
		if r.Intn(4) != 0 {
			f.Recovered = base.Add(minutes(r.Intn(310) - 10))
		}
		s.failovers = append(s.failovers, f)
	}
	return reflect.ValueOf(s)
}

// referenceSummary computes a Summary the slow and obvious way: it looks at
// every minute of the window and asks each node's records whether the node
// was down then. It shares no code with Summarize.
func referenceSummary(s minuteScenario) Summary {
	start, end := s.window.Start, s.window.End
	length := end.Sub(start)
	minutes := int(length / time.Minute)

	valid := func(f Failover) bool {
		return !f.LastHeard.IsZero() && (f.Recovered.IsZero() || !f.Recovered.Before(f.LastHeard))
	}
	byNode := map[string][]Failover{}
	for _, n := range s.nodes {
		byNode[n] = nil
	}
	skipped := 0
	for _, f := range s.failovers {
		byNode[f.Node] = append(byNode[f.Node], f)
		if !valid(f) {
			skipped++
		}
	}
	downAt := func(fs []Failover, t time.Time) bool {
		for _, f := range fs {
			if valid(f) && !f.LastHeard.After(t) && (f.Recovered.IsZero() || f.Recovered.After(t)) {
				return true
			}
		}
		return false
	}

	type totals struct {
		failures, detected, repaired int
		detect, repair, up, down     time.Duration
	}
	figures := func(tt totals) Stats {
		st := Stats{Failures: tt.failures, Detected: tt.detected, Repaired: tt.repaired, Downtime: tt.down}
		st.Measured = float64(tt.up) / float64(tt.up+tt.down)
		if tt.up+tt.down == 0 {
			st.Measured = 1
		}
		if tt.detected > 0 {
			st.MTTD = tt.detect / time.Duration(tt.detected)
		}
		if tt.repaired > 0 {
			st.MTTR = tt.repair / time.Duration(tt.repaired)
		}
		switch {
		case tt.failures == 0:
			st.Availability = 1
		case tt.repaired == 0:
			st.MTBF = tt.up / time.Duration(tt.failures)
		default:
			st.MTBF = tt.up / time.Duration(tt.failures)
			mtbf := float64(tt.up) / float64(tt.failures)
			mttr := float64(tt.repair) / float64(tt.repaired)
			if mtbf+mttr > 0 {
				st.Availability = mtbf / (mtbf + mttr)
			}
		}
		return st
	}

	sum := Summary{Window: s.window, Nodes: map[string]Stats{}, Skipped: skipped}
	var cluster totals
	var measuredSum float64
	for name, fs := range byNode {
		var tt totals
		for m := range minutes {
			if downAt(fs, start.Add(time.Duration(m)*time.Minute)) {
				tt.down += time.Minute
			} else {
				tt.up += time.Minute
			}
		}
		for _, f := range fs {
			if !valid(f) || f.LastHeard.Before(start) || !f.LastHeard.Before(end) {
				continue
			}
			tt.failures++
			if !f.Confirmed.IsZero() && !f.Confirmed.Before(f.LastHeard) {
				tt.detected++
				tt.detect += f.Confirmed.Sub(f.LastHeard)
			}
			if !f.Recovered.IsZero() {
				tt.repaired++
				tt.repair += f.Recovered.Sub(f.LastHeard)
			}
		}
		st := figures(tt)
		sum.Nodes[name] = st
		measuredSum += st.Measured
		cluster.failures += tt.failures
		cluster.detected += tt.detected
		cluster.repaired += tt.repaired
		cluster.detect += tt.detect
		cluster.repair += tt.repair
		cluster.up += tt.up
		cluster.down += tt.down
	}
	sum.Cluster = figures(cluster)
	if len(byNode) > 0 {
		// The mean of the per-node figures, as documented.
		sum.Cluster.Measured = measuredSum / float64(len(byNode))
	}
	allUp := 0
	for m := range minutes {
		t := start.Add(time.Duration(m) * time.Minute)
		anyDown := false
		for _, fs := range byNode {
			anyDown = anyDown || downAt(fs, t)
		}
		if !anyDown {
			allUp++
		}
	}
	sum.AllUp = float64(allUp) / float64(minutes)
	return sum
}

func TestSummarize_matchesMinuteReference(t *testing.T) {
	check := func(s minuteScenario) bool {
		got, err := Summarize(s.failovers, s.window, s.nodes)
		if err != nil {
			t.Logf("Summarize: %v", err)
			return false
		}
		want := referenceSummary(s)
		ok := true
		if len(got.Nodes) != len(want.Nodes) {
			t.Logf("%d nodes; want %d", len(got.Nodes), len(want.Nodes))
			ok = false
		}
		for name, w := range want.Nodes {
			if diff := sameStats(got.Nodes[name], w); diff != "" {
				t.Logf("node %q: %s", name, diff)
				ok = false
			}
		}
		if diff := sameStats(got.Cluster, want.Cluster); diff != "" {
			t.Logf("cluster: %s", diff)
			ok = false
		}
		if !near(got.AllUp, want.AllUp, 1e-12) || got.Skipped != want.Skipped {
			t.Logf("AllUp, Skipped = %v, %d; want %v, %d", got.AllUp, got.Skipped, want.AllUp, want.Skipped)
			ok = false
		}
		if !ok {
			t.Logf("scenario: window %v, nodes %v, failovers %+v", s.window, s.nodes, s.failovers)
		}
		return ok
	}
	if err := quick.Check(check, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
}
