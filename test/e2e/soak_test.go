package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/haagent/haagent/test/cluster"
)

// soakDuration is how long TestSoak_packetLoss runs: HAAGENT_SOAK_DURATION
// (make soak sets 20m), 2 minutes by default so that CI runs it too.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("HAAGENT_SOAK_DURATION")
	if v == "" {
		return 2 * time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 2*time.Hour {
		t.Fatalf("HAAGENT_SOAK_DURATION (%q) must be a duration between 0 and 2h", v)
	}
	return d
}

// TestSoak_packetLoss runs 20 nodes with 10 % of every node's packets
// dropped, for a bounded time: no node may be cordoned, tainted or lose a
// pod, and every agent's memory and goroutine count must stay flat.
func TestSoak_packetLoss(t *testing.T) {
	const nodes = 20
	duration := soakDuration(t)
	tc, tl := failoverCluster(t, nodes, fakeGround)
	names := nodeNames(tc.nodes)
	ctx := context.Background()

	type sample struct{ rss, goroutines float64 }
	// The scrape travels the same lossy loopback as gossip: a lost SYN
	// costs a second, so each scrape gets a few tries.
	scrape := func(n *cluster.Node) (cluster.Metrics, error) {
		var err error
		for try := 0; try < 5; try++ {
			var m cluster.Metrics
			if m, err = n.Agent().Metrics(ctx); err == nil {
				return m, nil
			}
			time.Sleep(time.Second)
		}
		return nil, err
	}
	read := func() map[string]sample {
		out := map[string]sample{}
		for _, n := range tc.nodes {
			m, err := scrape(n)
			if err != nil {
				t.Fatalf("metrics of %s (5 tries): %v", n.Name(), err)
			}
			rss, _ := m.Value("process_resident_memory_bytes")
			g, _ := m.Value("go_goroutines")
			out[n.Name()] = sample{rss, g}
		}
		return out
	}
	// Let the agents settle before the baseline.
	time.Sleep(10 * time.Second)
	before := read()

	start := time.Now()
	var faults []*cluster.Fault
	for _, n := range tc.nodes {
		f, err := tc.faults.Loss(n.IP(), 0.10)
		if err != nil {
			t.Fatal(err)
		}
		faults = append(faults, f)
	}
	tl.Fault(start, names...)
	t.Logf("10%% loss on all %d nodes for %s", nodes, duration)
	for time.Since(start) < duration {
		time.Sleep(15 * time.Second)
		t.Logf("soak: %s of %s", time.Since(start).Round(time.Second), duration)
	}
	// Any wrong action would already be in the timeline; the last scrape
	// runs without the loss so that it reads every agent.
	for _, f := range faults {
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
	}
	after := read()

	noActionOn(t, tl, names, -time.Hour)
	if recs := failoverRecords(ctx, t, tc.cp); len(recs) != 0 {
		t.Errorf("%d failover records under packet loss, want none", len(recs))
	}
	for _, name := range names {
		b, a := before[name], after[name]
		t.Logf("%s: RSS %.1f → %.1f MiB, goroutines %.0f → %.0f", name, b.rss/(1<<20), a.rss/(1<<20), b.goroutines, a.goroutines)
		// Generous: a leak grows with time, noise does not.
		if a.rss > 1.5*b.rss+16<<20 {
			t.Errorf("%s: RSS grew from %.1f to %.1f MiB", name, b.rss/(1<<20), a.rss/(1<<20))
		}
		if a.goroutines > 1.5*b.goroutines+20 {
			t.Errorf("%s: goroutines grew from %.0f to %.0f", name, b.goroutines, a.goroutines)
		}
	}
}
