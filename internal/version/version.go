// Package version holds the build stamp of the haagent binary. The values
// are set at link time (-ldflags -X) by the Makefile, the version from the
// file VERSION at the repository root; a plain `go build` reports "dev".
package version

import (
	"fmt"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// Set at link time; see the Makefile.
var (
	Version   = "dev"
	Commit    = "unknown"
	BuildDate = "unknown"
)

// String is the one-line version text.
func String() string {
	return fmt.Sprintf("haagent %s (commit %s, built %s, %s %s/%s)",
		Version, Commit, BuildDate, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Collector exports haagent_build_info{version,revision,goversion} = 1.
func Collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "haagent",
		Name:      "build_info",
		Help:      "Build of this agent; always 1.",
		ConstLabels: prometheus.Labels{
			"version":   Version,
			"revision":  Commit,
			"goversion": runtime.Version(),
		},
	})
	g.Set(1)
	return g
}
