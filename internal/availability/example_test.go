package availability_test

import (
	"fmt"
	"time"

	"github.com/haagent/haagent/internal/availability"
)

func ExampleKOfN() {
	// A three-member quorum of nodes that are each up 99.9% of the time.
	quorum, _ := availability.KOfN(0.999, 2, 3)
	nines, _ := availability.Nines(quorum)
	perYear, _ := availability.DowntimePerYear(quorum)
	fmt.Printf("%.7f, %.1f nines, %s a year\n", quorum, nines, availability.FormatDowntime(perYear))
	// Output: 0.9999970, 5.5 nines, 1m35s a year
}

func ExampleSummarize() {
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	window := availability.Window{Start: start, End: start.Add(30 * 24 * time.Hour)}
	failovers := []availability.Failover{{
		Node:      "worker-1",
		LastHeard: start.Add(100 * time.Hour),
		Confirmed: start.Add(100*time.Hour + 6*time.Second),
		Recovered: start.Add(100*time.Hour + 2*time.Minute),
	}}
	sum, _ := availability.Summarize(failovers, window, []string{"worker-1", "worker-2"})
	w1 := sum.Nodes["worker-1"]
	fmt.Println("worker-1:", w1.MTTD, w1.MTTR, w1.MTBF)
	fmt.Printf("node availability %.6f, cluster %.6f, all up %.6f\n",
		w1.Availability, sum.Cluster.Measured, sum.AllUp)
	// Output:
	// worker-1: 6s 2m0s 719h58m0s
	// node availability 0.999954, cluster 0.999977, all up 0.999954
}
