package main

import (
	"github.com/haagent/haagent/test/cmd/internal/plot"

	"fmt"
	"math"
	"os"
	"strings"
)

// detectionTarget is the tracker's target for the simulated detection p99
// at N=1000, drawn on the detection chart.
const detectionTarget = 5.0

// chartPrefix is where the charts go: -svg, or -json without ".json".
func (o options) chartPrefix() string {
	if o.svgPrefix != "" {
		return o.svgPrefix
	}
	if o.jsonPath == "" {
		return ""
	}
	return strings.TrimSuffix(o.jsonPath, ".json")
}

// charts builds the two charts of the results: detection time against N,
// p50 and p99 per profile and loss rate, and bytes per second per member
// against N. Runs without the measure leave a gap.
func charts(res *results) (detection, traffic lineChart) {
	type key struct {
		profile string
		loss    float64
	}
	var order []key
	byKey := map[key][]runResult{}
	for _, r := range res.Runs {
		k := key{r.Profile, r.Loss}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], r)
	}
	detection = lineChart{
		Title:      "Crash until half of the survivors see it dead",
		XLabel:     "members (N)",
		YLabel:     "seconds",
		LogX:       true,
		References: []refLine{{Label: fmt.Sprintf("target p99 %g s", detectionTarget), Y: detectionTarget}},
	}
	traffic = lineChart{Title: "Gossip traffic sent per member, quiet period", XLabel: "members (N)", YLabel: "bytes per second", LogX: true}
	for i, k := range order {
		name := k.profile
		if k.loss > 0 {
			name += fmt.Sprintf(", %g%% loss", 100*k.loss)
		}
		color := plot.LinePalette[i%len(plot.LinePalette)]
		p50 := lineSeries{Name: name + " p50", Color: color}
		p99 := lineSeries{Name: name + " p99", Color: color, Dashed: true}
		bps := lineSeries{Name: name, Color: color}
		for _, r := range byKey[k] {
			h := r.Detection[keyHalf]
			p50.X, p50.Y = append(p50.X, float64(r.N)), append(p50.Y, orNaN(h.P50))
			p99.X, p99.Y = append(p99.X, float64(r.N)), append(p99.Y, orNaN(h.P99))
			y := math.NaN()
			if q, ok := r.traffic(phaseQuiet); ok && q.Members > 0 {
				y = q.SentBytesPerMemberS
			}
			bps.X, bps.Y = append(bps.X, float64(r.N)), append(bps.Y, y)
		}
		detection.Series = append(detection.Series, p50, p99)
		traffic.Series = append(traffic.Series, bps)
	}
	return detection, traffic
}

func orNaN(f *float64) float64 {
	if f == nil {
		return math.NaN()
	}
	return *f
}

// writeCharts writes the charts beside the JSON and returns a line for each
// file written or not.
func writeCharts(o options, res *results) []string {
	prefix := o.chartPrefix()
	if prefix == "" {
		return nil
	}
	detection, traffic := charts(res)
	var out []string
	for _, c := range []struct {
		path  string
		chart lineChart
	}{{prefix + "-detection.svg", detection}, {prefix + "-traffic.svg", traffic}} {
		b, err := c.chart.SVG()
		if err == nil {
			err = os.WriteFile(c.path, b, 0o644)
		}
		if err != nil {
			out = append(out, fmt.Sprintf("chart %s not written: %v", c.path, err))
			continue
		}
		out = append(out, "chart written to "+c.path)
	}
	return out
}
