package main

import (
	"testing"

	"github.com/haagent/haagent/test/cmd/internal/plot"
)

func svgElements(t *testing.T, svg []byte) map[string]int {
	t.Helper()
	counts, err := plot.ElementCounts(svg)
	if err != nil {
		t.Fatalf("%v\n%s", err, svg)
	}
	return counts
}
