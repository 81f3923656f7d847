// Package runchunktest holds the sample series the run encoding's tests
// and the store's tests of runs share.
package runchunktest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// Case is a series' samples as a test draws them.
type Case struct {
	Name string
	T    []int64
	V    []float64
}

// Cases covers the value forms runs choose between and the edges of the
// XOR format: every timestamp bucket of delta-of-delta, values that are
// NaN with payloads, stale markers, infinities, -0, subnormals.
func Cases(rng *rand.Rand) []Case {
	times := func(n int, step func(k int) int64) []int64 {
		ts := make([]int64, n)
		t := int64(1_700_000_000_000) + rng.Int64N(1000)
		for k := range ts {
			ts[k] = t
			t += step(k)
		}
		return ts
	}
	regular := func(n int) []int64 { return times(n, func(int) int64 { return 15_000 }) }
	values := func(n int, f func(k int) float64) []float64 {
		vs := make([]float64, n)
		for k := range vs {
			vs[k] = f(k)
		}
		return vs
	}
	counter := 0.0
	var cases []Case
	for _, n := range []int{1, 2, 3, 120, 479} {
		cases = append(cases,
			Case{fmt.Sprintf("integer counter/%d", n), regular(n), values(n, func(int) float64 { counter += float64(rng.IntN(100)); return counter })},
			Case{fmt.Sprintf("two decimals/%d", n), regular(n), values(n, func(int) float64 { return float64(rng.IntN(100000)) / 100 })},
			Case{fmt.Sprintf("noisy floats/%d", n), regular(n), values(n, func(k int) float64 { return 1e6 + float64(k)*1.5 + rng.Float64() })},
			Case{fmt.Sprintf("jittered times/%d", n), times(n, func(int) int64 { return 15_000 + rng.Int64N(200) - 100 }), values(n, func(int) float64 { return rng.NormFloat64() })},
		)
	}
	specials := []float64{math.NaN(), math.Float64frombits(value.StaleNaN), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, 5e-324, -1e308, math.MaxFloat64, 0.1, 1e-20}
	cases = append(cases,
		Case{"specials", regular(len(specials)), specials},
		Case{"decimals ending stale", regular(200), values(200, func(k int) float64 {
			if k >= 190 {
				return math.Float64frombits(value.StaleNaN)
			}
			return float64(k) / 10
		})},
		Case{"every dod bucket", times(12, func(k int) int64 {
			return []int64{1, 15_000, 15_001, 30_000, 1 << 13, 1 << 16, 1 << 19, 1 << 21, 1 << 40, 1, 7, 1 << 50}[k]
		}), values(12, func(k int) float64 { return float64(k) })},
		Case{"negative times", times(50, func(int) int64 { return 1000 }), values(50, func(k int) float64 { return -float64(k) * 0.25 })},
		Case{"constant", regular(300), values(300, func(int) float64 { return 42 })},
	)
	for k := range cases[len(cases)-2].T {
		cases[len(cases)-2].T[k] -= 1_700_000_100_000
	}
	return cases
}

// XOR is the chunk chunkenc's own appender writes.
func XOR(tb testing.TB, ts []int64, vs []float64) []byte {
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	require.NoError(tb, err)
	for k := range ts {
		app.Append(0, ts[k], vs[k])
	}
	return c.Bytes()
}
