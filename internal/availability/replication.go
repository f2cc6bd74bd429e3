package availability

import (
	"fmt"
	"math"
)

// MaxReplicas is the largest n that KOfN accepts. Its cost is linear in n;
// the bound keeps a single call well under a millisecond.
const MaxReplicas = 1 << 16

// Replicated returns 1 − (1 − a)^n, the probability that at least one of n
// independent replicas, each up with probability a, is up.
func Replicated(a float64, n int) (float64, error) {
	if err := checkProbability(a); err != nil {
		return 0, err
	}
	if n < 1 {
		return 0, fmt.Errorf("availability: n (%d) must be at least 1", n)
	}
	if a == 0 {
		return 0, nil
	}
	// −expm1(n·log1p(−a)) keeps full relative precision when a is tiny,
	// where 1 − (1 − a)^n would cancel to a few digits.
	return -math.Expm1(float64(n) * math.Log1p(-a)), nil
}

// KOfN returns the probability that at least k of n independent replicas,
// each up with probability a, are up: the sum over j from k to n of
// C(n, j)·a^j·(1 − a)^(n−j). It accepts 0 ≤ a ≤ 1, 1 ≤ n ≤ MaxReplicas and
// 0 ≤ k ≤ n. A quorum of a 2f+1 member group is KOfN(a, f+1, 2f+1).
func KOfN(a float64, k, n int) (float64, error) {
	if err := checkProbability(a); err != nil {
		return 0, err
	}
	if n < 1 || n > MaxReplicas {
		return 0, fmt.Errorf("availability: n (%d) must be between 1 and %d", n, MaxReplicas)
	}
	if k < 0 || k > n {
		return 0, fmt.Errorf("availability: k (%d) must be between 0 and n (%d)", k, n)
	}
	switch {
	case k == 0 || a == 1:
		return 1, nil
	case a == 0:
		return 0, nil
	}

	// Binomial coefficients overflow float64 beyond n ≈ 1000 and a^j
	// underflows, so the terms are built by the ratio between neighbours,
	// scaled so that the largest term (at the mode) is 1. Every term is then
	// at most about 1, smaller ones underflow harmlessly to zero, and the
	// scale cancels in tail / total. Working outwards from the mode, terms
	// only shrink, so a zero term ends each direction.
	q := 1 - a
	mode := min(int(float64(n+1)*a), n)
	var total, tail float64
	term := 1.0
	for j := mode; j <= n && term > 0; j++ {
		if j > mode {
			term *= float64(n-j+1) / float64(j) * a / q
		}
		total += term
		if j >= k {
			tail += term
		}
	}
	term = 1.0
	for j := mode - 1; j >= 0 && term > 0; j-- {
		term *= float64(j+1) / float64(n-j) * q / a
		total += term
		if j >= k {
			tail += term
		}
	}
	return tail / total, nil
}

func checkProbability(a float64) error {
	if !(a >= 0 && a <= 1) {
		return fmt.Errorf("availability: a (%v) must be between 0 and 1", a)
	}
	return nil
}
