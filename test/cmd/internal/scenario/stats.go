package scenario

import (
	"math"
	"slices"
)

// Stats summarizes samples (seconds) by the nearest-rank method: the
// q-quantile is the smallest sample with at least a fraction q of the
// samples at or below it, so every figure is a measured value, never an
// interpolation. With fewer than 100 samples p99 is the maximum.
type Stats struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Summarize returns the Stats of xs; N is 0 when xs is empty.
func Summarize(xs []float64) Stats {
	if len(xs) == 0 {
		return Stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return Stats{N: len(s), P50: nearestRank(s, 0.5), P90: nearestRank(s, 0.9), P99: nearestRank(s, 0.99), Max: s[len(s)-1]}
}

// nearestRank is the q-quantile of sorted s.
func nearestRank(s []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
