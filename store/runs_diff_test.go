package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/runchunk"
)

// randomChunks are series' chunks over three partitions: mostly 120-sample
// chunks of 15 s, some long sparse ones (a large maxSpan), some crossing a
// partition edge.
func randomChunks(tb testing.TB, r *rand.Rand, n int) []SeriesChunks {
	var out []SeriesChunks
	for k := range n {
		var cs []Chunk
		t := int64(r.IntN(60_000))
		for t < 3*activeWidth {
			step := int64(15_000)
			if r.IntN(10) == 0 {
				step = 300_000 // a long chunk: 10 h of span for 120 samples
			}
			size := 1 + r.IntN(120)
			c := stepChunk(tb, t+int64(size-1)*step, size, step)
			cs = append(cs, c)
			t = c.MaxTime + step + int64(r.IntN(3))*step
		}
		out = append(out, seriesOf(labels.FromStrings("__name__", "m", "k", fmt.Sprint(k)), cs...))
	}
	return out
}

// canonicalChunks sorts each series' chunks so that two reads compare as sets.
func canonicalChunks(scs []SeriesChunks) []string {
	var out []string
	for _, sc := range scs {
		for _, c := range sc.Chunks {
			out = append(out, fmt.Sprintf("%s [%d,%d] %d %x", sc.Labels, c.MinTime, c.MaxTime, c.Encoding, c.Data))
		}
	}
	slices.Sort(out)
	return out
}

// A store that compacted, its runs expanded to the range, selects
// exactly the chunks a store that never compacted selects, for any
// range: at chunk and partition edges, with late chunks put under a run's
// key (some outside the range scanned for hot chunks) or beside it, and
// after retention cut inside a partition. Through Refs and ChunksOf too.
func TestCompactedSelectsAsNeverCompacted(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	data := randomChunks(t, r, 12)
	ref, cmp := openTest(t, testOptions(t)), openTest(t, testOptions(t))
	for _, st := range []*Store{ref, cmp} {
		require.NoError(t, st.Put("t", data))
	}
	_, err := cmp.Compact(context.Background(), 3*activeWidth+activeWidth)
	require.NoError(t, err)
	edges := []int64{0, activeWidth - 1, activeWidth, activeWidth + 1, 2 * activeWidth}
	for _, sc := range data {
		for _, c := range sc.Chunks[:min(len(sc.Chunks), 10)] {
			edges = append(edges, c.MinTime-1, c.MinTime, c.MaxTime, c.MaxTime+1)
		}
	}
	compare := func(step string) {
		t.Helper()
		ranges := [][2]int64{{math.MinInt64, math.MaxInt64}}
		for range 300 {
			a, b := edges[r.IntN(len(edges))], edges[r.IntN(len(edges))]
			ranges = append(ranges, [2]int64{min(a, b), max(a, b)})
		}
		runs := 0
		for _, rg := range ranges {
			want, err := ref.Select("t", rg[0], rg[1])
			require.NoError(t, err)
			got, err := cmp.Select("t", rg[0], rg[1])
			require.NoError(t, err)
			for _, sc := range got {
				for _, c := range sc.Chunks {
					if c.Encoding == runchunk.Encoding {
						runs++
					}
				}
			}
			require.Equal(t, canonicalChunks(want), canonicalChunks(expandRuns(t, got, rg[0], rg[1])), "%s: range %v", step, rg)
			refs, err := cmp.Refs("t", rg[0], rg[1], nil, chunks.Known{})
			require.NoError(t, err)
			require.Len(t, refs, len(want), "%s: Refs of %v", step, rg)
			viaRefs, err := cmp.ChunksOf("t", rg[0], rg[1], refs)
			require.NoError(t, err)
			require.Equal(t, canonicalChunks(want), canonicalChunks(expandRuns(t, viaRefs, rg[0], rg[1])), "%s: ChunksOf %v", step, rg)
		}
		require.Positive(t, runs, "%s: runs were read", step)
	}
	compare("compacted")
	// Late chunks: under run keys (merged), and beside them.
	var late []SeriesChunks
	for k, sc := range data {
		if k%2 == 0 {
			continue
		}
		for j, c := range sc.Chunks {
			if j%5 != 2 || c.MaxTime >= 2*activeWidth {
				continue
			}
			// Under c's key: 3 samples ending at c.MaxTime, 7 ms apart.
			late = append(late, seriesOf(sc.Labels, stepChunk(t, c.MaxTime, 3, 7)))
			if j%10 == 2 {
				// Beside it: ending 1 ms after c, overlapping it.
				late = append(late, seriesOf(sc.Labels, stepChunk(t, c.MaxTime+1, 2, 3)))
			}
		}
	}
	for _, st := range []*Store{ref, cmp} {
		require.NoError(t, st.Put("t", late))
	}
	compare("late chunks")
	// Retention into the middle of the first partition.
	cut := activeWidth / 2
	for _, st := range []*Store{ref, cmp} {
		_, err := st.ApplyRetention(time.UnixMilli(cut).Add(time.Hour), func(string) time.Duration { return time.Hour })
		require.NoError(t, err)
	}
	compare("retention")
	_, err = cmp.Compact(context.Background(), 4*activeWidth)
	require.NoError(t, err)
	compare("compacted again")
}

// Reads sharing cached blocks (a small cache, so entries are evicted and
// charged for run bounds while others read them) see the same chunks as
// alone, under the race detector.
func TestConcurrentRunReads(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	data := randomChunks(t, r, 40)
	opts := testOptions(t)
	opts.BlockCacheBytes = 64 << 10
	st := openTest(t, opts)
	require.NoError(t, st.Put("t", data))
	_, err := st.Compact(context.Background(), 4*activeWidth)
	require.NoError(t, err)
	type q struct{ mint, maxt int64 }
	var qs []q
	for range 40 {
		a, b := r.Int64N(3*activeWidth), r.Int64N(3*activeWidth)
		qs = append(qs, q{min(a, b), max(a, b)})
	}
	want := make([][]string, len(qs))
	for k, x := range qs {
		got, err := st.Select("t", x.mint, x.maxt)
		require.NoError(t, err)
		want[k] = canonicalChunks(got)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range qs {
				x := qs[(k+g*7)%len(qs)]
				got, err := st.Select("t", x.mint, x.maxt)
				if err != nil {
					errs <- err
					return
				}
				if !slices.Equal(want[(k+g*7)%len(qs)], canonicalChunks(got)) {
					errs <- fmt.Errorf("select %v differs when concurrent", x)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
