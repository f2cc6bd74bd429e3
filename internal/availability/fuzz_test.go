package availability

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"
)

func FuzzKOfN(f *testing.F) {
	f.Add(0.9, 2, 3)
	f.Add(0.5, 500, 999)
	f.Add(1e-300, 1, MaxReplicas)
	f.Add(1-0x1p-53, MaxReplicas, MaxReplicas)
	f.Add(0.0, 0, 1)
	f.Add(1.0, 1, 1)
	f.Add(math.NaN(), 1, 3)
	f.Add(0.9, 4, 3)
	f.Fuzz(func(t *testing.T, a float64, k, n int) {
		got, err := KOfN(a, k, n)
		valid := a >= 0 && a <= 1 && n >= 1 && n <= MaxReplicas && k >= 0 && k <= n
		if valid != (err == nil) {
			t.Fatalf("KOfN(%v, %d, %d) error = %v; want an error: %v", a, k, n, err, !valid)
		}
		if !valid {
			return
		}
		if !(got >= 0 && got <= 1) {
			t.Fatalf("KOfN(%v, %d, %d) = %v; want a value in [0, 1]", a, k, n, got)
		}
		if k == 0 && got != 1 {
			t.Fatalf("KOfN(%v, 0, %d) = %v; want 1", a, n, got)
		}
		if k == 1 {
			r, err := Replicated(a, n)
			if err != nil || !closeTo(got, r, 1e-11, 0x1p-1000) {
				t.Fatalf("KOfN(%v, 1, %d) = %v; Replicated gives %v, %v", a, n, got, r, err)
			}
		}
		if k < n {
			next, err := KOfN(a, k+1, n)
			if err != nil || next > got {
				t.Fatalf("KOfN(%v, %d, %d) = %v, %v; more than KOfN(…, %d, …) = %v", a, k+1, n, next, err, k, got)
			}
		}
		if nines, err := Nines(got); err != nil || !(nines >= 0) {
			t.Fatalf("Nines(%v) = %v, %v; want a non-negative value", got, nines, err)
		}
	})
}

// fuzzInput writes the byte layout that decodeScenario reads, for seeds.
type fuzzInput []byte

func (b fuzzInput) byte(v byte) fuzzInput { return append(b, v) }

func (b fuzzInput) offset(d time.Duration) fuzzInput {
	return binary.LittleEndian.AppendUint64(append(b, 0), uint64(d))
}

// byteSource hands out fuzz bytes, then zeros once they run out.
type byteSource struct{ data []byte }

func (s *byteSource) byte() byte {
	if len(s.data) == 0 {
		return 0
	}
	b := s.data[0]
	s.data = s.data[1:]
	return b
}

// offset reads a duration scaled down by a shift, so that both extreme and
// everyday values are common.
func (s *byteSource) offset() time.Duration {
	shift := s.byte() % 64
	var b [8]byte
	for i := range b {
		b[i] = s.byte()
	}
	return time.Duration(int64(binary.LittleEndian.Uint64(b[:])) >> shift)
}

// decodeScenario turns fuzz bytes into a window, a node list and records:
// a flags byte (bit 0 clears the window start), the start and length
// offsets, a node count, then records of node, flags (bits 0–2 clear
// LastHeard, Confirmed, Recovered) and three offsets.
func decodeScenario(data []byte) (Window, []string, []Failover) {
	s := &byteSource{data: data}
	flags := s.byte()
	start := t0.Add(s.offset())
	w := Window{Start: start, End: start.Add(s.offset())}
	if flags&1 != 0 {
		w.Start = time.Time{}
	}
	var nodes []string
	for i := range int(s.byte() % 5) {
		nodes = append(nodes, fmt.Sprintf("n%d", i))
	}
	var failovers []Failover
	for len(s.data) > 0 {
		f := Failover{Node: fmt.Sprintf("n%d", s.byte()%6)}
		flags := s.byte()
		f.LastHeard = start.Add(s.offset())
		f.Confirmed = f.LastHeard.Add(s.offset())
		f.Recovered = f.LastHeard.Add(s.offset())
		if flags&1 != 0 {
			f.LastHeard = time.Time{}
		}
		if flags&2 != 0 {
			f.Confirmed = time.Time{}
		}
		if flags&4 != 0 {
			f.Recovered = time.Time{}
		}
		failovers = append(failovers, f)
	}
	return w, nodes, failovers
}

func FuzzSummarize(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(fuzzInput{}.byte(0).offset(0).offset(100 * time.Hour).byte(3).
		byte(0).byte(0).offset(10 * time.Hour).offset(time.Minute).offset(time.Hour).
		byte(1).byte(4).offset(95 * time.Hour).offset(time.Second).offset(0).
		byte(0).byte(0).offset(-2 * time.Hour).offset(0).offset(3 * time.Hour)))
	f.Add([]byte(fuzzInput{}.byte(0).offset(math.MinInt64).offset(math.MaxInt64).byte(4).
		byte(2).byte(6).offset(math.MaxInt64).offset(0).offset(0).
		byte(3).byte(0).offset(0).offset(math.MaxInt64).offset(math.MaxInt64)))
	f.Add([]byte(fuzzInput{}.byte(1).offset(0).offset(time.Hour)))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, nodes, failovers := decodeScenario(data)
		sum, err := Summarize(failovers, w, nodes)
		if wantErr := w.Validate(); (err != nil) != (wantErr != nil) {
			t.Fatalf("Summarize error = %v; Validate says %v", err, wantErr)
		}
		if err != nil {
			return
		}
		length := w.Length()
		checkStats := func(who string, s Stats) {
			t.Helper()
			for _, v := range []float64{s.Availability, s.Measured} {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("%s: %+v has a fraction outside [0, 1]", who, s)
				}
			}
			if s.Failures < 0 || s.Detected < 0 || s.Repaired < 0 || s.Detected > s.Failures || s.Repaired > s.Failures {
				t.Fatalf("%s: %+v has inconsistent counts", who, s)
			}
			if s.Downtime < 0 || s.MTTD < 0 || s.MTTR < 0 || s.MTBF < 0 {
				t.Fatalf("%s: %+v has a negative duration", who, s)
			}
			if !s.HasMTBF() && (s.MTBF != 0 || s.Availability != 1) {
				t.Fatalf("%s: %+v without failures; want MTBF 0 and availability 1", who, s)
			}
			if !s.HasAvailability() && s.Availability != 0 {
				t.Fatalf("%s: %+v without a repair; want availability 0", who, s)
			}
		}

		failures, minMeasured, sumDown := 0, 1.0, 0.0
		for _, name := range nodes {
			if _, ok := sum.Nodes[name]; !ok {
				t.Fatalf("listed node %q missing", name)
			}
		}
		for _, f := range failovers {
			if _, ok := sum.Nodes[f.Node]; !ok {
				t.Fatalf("node %q of a record missing", f.Node)
			}
		}
		for name, s := range sum.Nodes {
			checkStats(name, s)
			if s.Downtime > length {
				t.Fatalf("%s: downtime %v exceeds the window %v", name, s.Downtime, length)
			}
			if want := float64(length-s.Downtime) / float64(length); s.Measured != want {
				t.Fatalf("%s: measured %v; want %v", name, s.Measured, want)
			}
			failures += s.Failures
			minMeasured = min(minMeasured, s.Measured)
			sumDown += 1 - s.Measured
		}
		checkStats("cluster", sum.Cluster)
		if sum.Cluster.Failures != failures {
			t.Fatalf("cluster failures %d; nodes add up to %d", sum.Cluster.Failures, failures)
		}
		if !(sum.AllUp >= 0 && sum.AllUp <= minMeasured) || sum.AllUp < 1-sumDown-1e-9 {
			t.Fatalf("AllUp %v; want between %v and %v", sum.AllUp, 1-sumDown, minMeasured)
		}
		if sum.Skipped < 0 || sum.Skipped > len(failovers) {
			t.Fatalf("Skipped %d of %d records", sum.Skipped, len(failovers))
		}
	})
}
