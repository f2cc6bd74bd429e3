package availability

import (
	"math"
	"math/big"
	"math/bits"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
)

// closeTo reports whether got is within a relative tolerance rel of want,
// or within abs of it for values too small for a relative comparison.
func closeTo(got, want, rel, abs float64) bool {
	return math.Abs(got-want) <= max(rel*math.Abs(want), abs)
}

func TestReplicated(t *testing.T) {
	cases := []struct {
		name string
		a    float64
		n    int
		want float64
	}{
		{name: "single replica", a: 0.9, n: 1, want: 0.9},
		{name: "two nines from two", a: 0.9, n: 2, want: 0.99},
		{name: "three nines from three", a: 0.9, n: 3, want: 0.999},
		{name: "coin flips", a: 0.5, n: 10, want: 1 - 1.0/1024},
		{name: "never up", a: 0, n: 5, want: 0},
		{name: "always up", a: 1, n: 3, want: 1},
		// 1 − (1 − 1e-12)^2 = 2e-12 − 1e-24; the naive form loses most digits.
		{name: "tiny availability", a: 1e-12, n: 2, want: 2e-12 - 1e-24},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Replicated(tc.a, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if !closeTo(got, tc.want, 1e-14, 0) {
				t.Errorf("Replicated(%v, %d) = %v; want %v", tc.a, tc.n, got, tc.want)
			}
		})
	}
}

func TestKOfN(t *testing.T) {
	cases := []struct {
		name string
		a    float64
		k, n int
		want float64
	}{
		{name: "none needed", a: 0.9, k: 0, n: 3, want: 1},
		{name: "all of three", a: 0.9, k: 3, n: 3, want: 0.729},
		// 3·0.9²·0.1 + 0.9³
		{name: "quorum of three", a: 0.9, k: 2, n: 3, want: 0.972},
		// 3·0.999²·0.001 + 0.999³
		{name: "quorum of three, three nines", a: 0.999, k: 2, n: 3, want: 0.999997002},
		// 1 − P(0) − P(1) − P(2) = 1 − (1e-10 + 4.95e-8 + 9.801e-6)
		{name: "quorum of five, two nines", a: 0.99, k: 3, n: 5, want: 0.9999901494},
		{name: "fair coin, majority of three", a: 0.5, k: 2, n: 3, want: 0.5},
		// By symmetry P(X ≥ 500) = P(X ≤ 499) = 1/2 for X ~ Bin(999, 1/2).
		{name: "fair coin, majority of 999", a: 0.5, k: 500, n: 999, want: 0.5},
		// 2^-1000 is far below what binomial coefficients times powers
		// could reach without overflow or underflow.
		{name: "all of 1000 fair coins", a: 0.5, k: 1000, n: 1000, want: 0x1p-1000},
		{name: "one of 1000 fair coins", a: 0.5, k: 1, n: 1000, want: 1},
		{name: "underflows to zero", a: 0.1, k: 1000, n: 1000, want: 0},
		{name: "never up", a: 0, k: 1, n: 7, want: 0},
		{name: "always up", a: 1, k: 7, n: 7, want: 1},
		// (1 − C(65536, 32768) / 2^65536) / 2, evaluated exactly.
		{name: "largest n", a: 0.5, k: MaxReplicas/2 + 1, n: MaxReplicas, want: 0.49844163766187377},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := KOfN(tc.a, tc.k, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if !closeTo(got, tc.want, 1e-12, 0) {
				t.Errorf("KOfN(%v, %d, %d) = %v; want %v", tc.a, tc.k, tc.n, got, tc.want)
			}
		})
	}
}

func TestProbabilityErrors(t *testing.T) {
	kOfN := func(a float64, k, n int) func() error {
		return func() error { _, err := KOfN(a, k, n); return err }
	}
	replicated := func(a float64, n int) func() error {
		return func() error { _, err := Replicated(a, n); return err }
	}
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{name: "KOfN a above 1", call: kOfN(1.5, 1, 3), want: "availability: a (1.5) must be between 0 and 1"},
		{name: "KOfN a negative", call: kOfN(-0.25, 1, 3), want: "availability: a (-0.25) must be between 0 and 1"},
		{name: "KOfN a NaN", call: kOfN(math.NaN(), 1, 3), want: "availability: a (NaN) must be between 0 and 1"},
		{name: "KOfN a infinite", call: kOfN(math.Inf(1), 1, 3), want: "availability: a (+Inf) must be between 0 and 1"},
		{name: "KOfN n zero", call: kOfN(0.9, 0, 0), want: "availability: n (0) must be between 1 and 65536"},
		{name: "KOfN n too large", call: kOfN(0.9, 1, MaxReplicas+1), want: "availability: n (65537) must be between 1 and 65536"},
		{name: "KOfN k above n", call: kOfN(0.9, 5, 3), want: "availability: k (5) must be between 0 and n (3)"},
		{name: "KOfN k negative", call: kOfN(0.9, -1, 3), want: "availability: k (-1) must be between 0 and n (3)"},
		{name: "Replicated a above 1", call: replicated(2, 3), want: "availability: a (2) must be between 0 and 1"},
		{name: "Replicated n zero", call: replicated(0.9, 0), want: "availability: n (0) must be at least 1"},
		{name: "Replicated n negative", call: replicated(0.9, -2), want: "availability: n (-2) must be at least 1"},
		{name: "KOfN valid", call: kOfN(0.9, 3, 3)},
		{name: "Replicated valid", call: replicated(0, 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error = %v; want nil", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("error = %v; want %q", err, tc.want)
			}
		})
	}
}

// prob is a probability for testing/quick, drawn to hit the edges that
// matter: exactly 0 and 1, tiny values, values a hair below 1, and the rest
// uniformly.
type prob float64

func (prob) Generate(r *rand.Rand, _ int) reflect.Value {
	var p float64
	switch r.Intn(8) {
	case 0:
		p = float64(r.Intn(2))
	case 1:
		p = math.Pow(10, -20*r.Float64())
	case 2:
		p = 1 - math.Pow(10, -16*r.Float64())
	case 3:
		p = 0.5
	default:
		p = r.Float64()
	}
	return reflect.ValueOf(prob(p))
}

// enumeratedKOfN is the naive reference: it walks all 2^n up/down states of
// n replicas, counts those with at least k up, and weighs each count with
// exact rational arithmetic.
func enumeratedKOfN(a float64, k, n int) float64 {
	up := new(big.Rat).SetFloat64(a)
	down := new(big.Rat).Sub(big.NewRat(1, 1), up)
	statesWithUp := make([]int64, n+1)
	for state := uint32(0); state < 1<<n; state++ {
		statesWithUp[bits.OnesCount32(state)]++
	}
	sum := new(big.Rat)
	for j := k; j <= n; j++ {
		term := new(big.Rat).SetInt64(statesWithUp[j])
		for range j {
			term.Mul(term, up)
		}
		for range n - j {
			term.Mul(term, down)
		}
		sum.Add(sum, term)
	}
	f, _ := sum.Float64()
	return f
}

func TestKOfN_matchesEnumeration(t *testing.T) {
	check := func(a prob, nSeed, kSeed uint8) bool {
		n := 1 + int(nSeed)%16
		k := int(kSeed) % (n + 1)
		got, err := KOfN(float64(a), k, n)
		if err != nil {
			t.Logf("KOfN(%v, %d, %d): %v", a, k, n, err)
			return false
		}
		want := enumeratedKOfN(float64(a), k, n)
		if !closeTo(got, want, 1e-13, 0x1p-1000) {
			t.Logf("KOfN(%v, %d, %d) = %v; enumeration gives %v", a, k, n, got, want)
			return false
		}
		return true
	}
	if err := quick.Check(check, &quick.Config{MaxCount: 300}); err != nil {
		t.Error(err)
	}
}

// binomialKOfN sums the binomial terms in 256-bit floating point, whose
// exponent range holds C(1000, 500) and 1e-20^1000 alike.
func binomialKOfN(a float64, k, n int) float64 {
	const prec = 256
	newFloat := func(x float64) *big.Float { return new(big.Float).SetPrec(prec).SetFloat64(x) }
	up := newFloat(a)
	down := new(big.Float).SetPrec(prec).Sub(newFloat(1), up)
	upPow := make([]*big.Float, n+1)
	downPow := make([]*big.Float, n+1)
	upPow[0], downPow[0] = newFloat(1), newFloat(1)
	for j := 1; j <= n; j++ {
		upPow[j] = new(big.Float).SetPrec(prec).Mul(upPow[j-1], up)
		downPow[j] = new(big.Float).SetPrec(prec).Mul(downPow[j-1], down)
	}
	sum := newFloat(0)
	choose := big.NewInt(1) // C(n, j)
	for j := 0; j <= n; j++ {
		if j >= k {
			term := new(big.Float).SetPrec(prec).SetInt(choose)
			term.Mul(term, upPow[j]).Mul(term, downPow[n-j])
			sum.Add(sum, term)
		}
		choose.Mul(choose, big.NewInt(int64(n-j)))
		choose.Quo(choose, big.NewInt(int64(j+1)))
	}
	f, _ := sum.Float64()
	return f
}

func TestKOfN_matchesBinomialSum(t *testing.T) {
	check := func(a prob, nSeed, kSeed uint16) bool {
		n := 1 + int(nSeed)%1000
		k := int(kSeed) % (n + 1)
		got, err := KOfN(float64(a), k, n)
		if err != nil {
			t.Logf("KOfN(%v, %d, %d): %v", a, k, n, err)
			return false
		}
		want := binomialKOfN(float64(a), k, n)
		if !closeTo(got, want, 1e-11, 0x1p-1000) {
			t.Logf("KOfN(%v, %d, %d) = %v; binomial sum gives %v", a, k, n, got, want)
			return false
		}
		return true
	}
	if err := quick.Check(check, &quick.Config{MaxCount: 300}); err != nil {
		t.Error(err)
	}
}

func TestKOfN_properties(t *testing.T) {
	size := func(nSeed, kSeed uint16) (k, n int) {
		n = 1 + int(nSeed)%1000
		return int(kSeed) % (n + 1), n
	}
	// An error turns into NaN, which fails every comparison below.
	must := func(p float64, err error) float64 {
		if err != nil {
			return math.NaN()
		}
		return p
	}
	properties := []struct {
		name  string
		check any
	}{
		{
			name: "none needed is certain",
			check: func(a prob, nSeed, kSeed uint16) bool {
				_, n := size(nSeed, kSeed)
				return must(KOfN(float64(a), 0, n)) == 1
			},
		},
		{
			name: "one of n is Replicated",
			check: func(a prob, nSeed, kSeed uint16) bool {
				_, n := size(nSeed, kSeed)
				got, want := must(KOfN(float64(a), 1, n)), must(Replicated(float64(a), n))
				return closeTo(got, want, 1e-12, 0x1p-1000)
			},
		},
		{
			name: "all of n is a^n",
			check: func(a prob, nSeed, kSeed uint16) bool {
				_, n := size(nSeed, kSeed)
				got, want := must(KOfN(float64(a), n, n)), math.Pow(float64(a), float64(n))
				return closeTo(got, want, 1e-11, 0x1p-1000)
			},
		},
		{
			name: "never increases with k",
			check: func(a prob, nSeed, kSeed uint16) bool {
				k, n := size(nSeed, kSeed)
				if k == n {
					return true
				}
				return must(KOfN(float64(a), k+1, n)) <= must(KOfN(float64(a), k, n))
			},
		},
		{
			name: "never decreases with a",
			check: func(a, b prob, nSeed, kSeed uint16) bool {
				k, n := size(nSeed, kSeed)
				lo, hi := min(float64(a), float64(b)), max(float64(a), float64(b))
				pLo, pHi := must(KOfN(lo, k, n)), must(KOfN(hi, k, n))
				return pLo <= pHi+1e-12*pHi
			},
		},
		{
			name: "within [0, 1]",
			check: func(a prob, nSeed, kSeed uint16) bool {
				k, n := size(nSeed, kSeed)
				p := must(KOfN(float64(a), k, n))
				return p >= 0 && p <= 1
			},
		},
	}
	for _, p := range properties {
		t.Run(p.name, func(t *testing.T) {
			if err := quick.Check(p.check, &quick.Config{MaxCount: 1000}); err != nil {
				t.Error(err)
			}
		})
	}
}
