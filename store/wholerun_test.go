package store

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// A run handed on whole stands for exactly the chunks a never-compacted
// store would select: expanded without filtering to the range, it must
// give the same chunks (so no chunk outside the range, none superseded).
func TestWholeRunIsExactlyTheSelectedChunks(t *testing.T) {
	for seed := range uint64(3) {
		r := rand.New(rand.NewPCG(seed, 66))
		data := randomChunks(t, r, 10)
		ref, cmp := openTest(t, testOptions(t)), openTest(t, testOptions(t))
		for _, st := range []*Store{ref, cmp} {
			require.NoError(t, st.Put("t", data))
		}
		_, err := cmp.Compact(context.Background(), 4*activeWidth)
		require.NoError(t, err)
		var late []SeriesChunks
		for k, sc := range data {
			for j, c := range sc.Chunks {
				if (j+k)%4 != 1 {
					continue
				}
				// Under c's key, samples far before c (a long merged chunk), or a few.
				if j%3 == 0 {
					late = append(late, seriesOf(sc.Labels, stepChunk(t, c.MaxTime, 3, 1+int64(r.IntN(40_000_000)))))
				} else {
					late = append(late, seriesOf(sc.Labels, stepChunk(t, c.MaxTime, 2, 5)))
				}
			}
		}
		edges := []int64{0, activeWidth - 1, activeWidth, activeWidth + 1, 2 * activeWidth, 3 * activeWidth}
		for _, sc := range data {
			for _, c := range sc.Chunks {
				edges = append(edges, c.MinTime-1, c.MinTime, c.MaxTime, c.MaxTime+1)
			}
		}
		compare := func(step string) {
			for range 400 {
				a, b := edges[r.IntN(len(edges))], edges[r.IntN(len(edges))]
				mint, maxt := min(a, b), max(a, b)
				want, err := ref.Select("t", mint, maxt)
				require.NoError(t, err)
				got, err := cmp.Select("t", mint, maxt)
				require.NoError(t, err)
				require.Equal(t, canonicalChunks(want), canonicalChunks(expandRuns(t, got, math.MinInt64, math.MaxInt64)), "%s seed %d: range [%d, %d]", step, seed, mint, maxt)
			}
		}
		compare("compacted")
		for _, st := range []*Store{ref, cmp} {
			require.NoError(t, st.Put("t", late))
		}
		compare("late")
		_, err = cmp.Compact(context.Background(), 4*activeWidth)
		require.NoError(t, err)
		compare("compacted again")
	}
}
