package frontend

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSplitRangeProperties: for random ranges, steps and intervals
// (negative times too), the parts start at the query's start, each starts
// one step after the previous one ends, the last ends on the query's last
// step, and none holds steps of two intervals.
func TestSplitRangeProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		step := 1 + rng.Int64N(600_000)
		interval := 1 + rng.Int64N(3_600_000)
		start := rng.Int64N(10_000_000_000) - 5_000_000_000
		end := start + rng.Int64N(400*step)
		parts := splitRange(start, end, step, interval)
		require.NotEmpty(t, parts)
		require.Equal(t, start, parts[0].start)
		require.Equal(t, lastStep(start, end, step), parts[len(parts)-1].end)
		for k, p := range parts {
			require.LessOrEqual(t, p.start, p.end)
			require.Zero(t, floorMod(p.start-start, step), "part starts off the step grid")
			require.Zero(t, floorMod(p.end-start, step), "part ends off the step grid")
			require.Equal(t, floorDiv(p.start, interval), floorDiv(p.end, interval), "part %v crosses an interval boundary (%d)", p, interval)
			if k > 0 {
				require.Equal(t, parts[k-1].end+step, p.start, "parts %v and %v", parts[k-1], p)
				require.NotEqual(t, floorDiv(parts[k-1].end, interval), floorDiv(p.start, interval), "two parts in one interval")
			}
		}
	}
}

func TestSplitRangeExamples(t *testing.T) {
	f := func(start, end, step, interval int64, want ...span) {
		t.Helper()
		require.Equal(t, want, splitRange(start, end, step, interval))
	}
	// Steps at 0, 25, 50, ..., 200 over intervals of 100.
	f(0, 200, 25, 100, span{0, 75}, span{100, 175}, span{200, 200})
	// A start off the interval grid keeps its own step grid.
	f(10, 230, 30, 100, span{10, 70}, span{100, 190}, span{220, 220})
	// One step.
	f(5, 5, 10, 100, span{5, 5})
	// No split.
	f(0, 1000, 7, 0, span{0, 994})
	// Negative times floor to the interval below.
	f(-150, 50, 50, 100, span{-150, -150}, span{-100, -50}, span{0, 50})
}
