package main

import "github.com/haagent/haagent/test/cmd/internal/plot"

// The simulator's charts are internal/plot's line charts.
type (
	lineChart  = plot.LineChart
	lineSeries = plot.LineSeries
	refLine    = plot.RefLine
)
