package store

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// Selects that use the active index answer as a scan of every chunk does:
// random series with chunks of random spans (within a partition, across
// several, longer than a week, at extreme times), random ranges, before
// and after retention dropped old partitions, and over a tenant reopened.
func TestActiveIndexSelectsAsAScan(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed))
			opts := testOptions(t)
			st := openTest(t, opts)
			type stored struct {
				ls         labels.Labels
				mint, maxt int64
			}
			var all []stored
			randTime := func() int64 {
				switch rng.IntN(20) {
				case 0:
					return math.MinInt64 + rng.Int64N(1000)
				case 1:
					return math.MaxInt64 - 1_000_000 - rng.Int64N(1000)
				default:
					return rng.Int64N(40*activeWidth) - 10*activeWidth
				}
			}
			for k := range 60 {
				ls := labels.FromStrings("__name__", "m", "pod", fmt.Sprint(k), "job", fmt.Sprint(k%3))
				var batch []Chunk
				for range 1 + rng.IntN(4) {
					mint := randTime()
					span := []int64{rng.Int64N(activeWidth / 4), rng.Int64N(3 * activeWidth), rng.Int64N(100 * activeWidth)}[rng.IntN(3)]
					if mint > math.MaxInt64-span-1_000_000 {
						span = 0
					}
					c := xorChunk(t, mint, 2, max(span, 1))
					batch = append(batch, c)
					all = append(all, stored{ls, c.MinTime, c.MaxTime})
				}
				require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, batch...)}))
			}
			check := func(cutoff int64) {
				t.Helper()
				for range 200 {
					a, b := randTime(), randTime()
					if rng.IntN(2) == 0 {
						b = a + rng.Int64N(5*activeWidth)
					}
					mint, maxt := min(a, b), max(a, b)
					if mint < cutoff && cutoff > math.MinInt64 {
						// Retention's promise covers samples within it.
						mint = cutoff
					}
					if mint > maxt {
						continue
					}
					ms := [][]*labels.Matcher{nil, {labels.MustNewMatcher(labels.MatchEqual, "job", "1")}, {labels.MustNewMatcher(labels.MatchRegexp, "pod", "1.*")}}[rng.IntN(3)]
					want := map[string]int{}
					for _, s := range all {
						matches := true
						for _, m := range ms {
							matches = matches && m.Matches(s.ls.Get(m.Name))
						}
						if s.maxt < cutoff || s.mint > maxt || s.maxt < mint || !matches {
							continue
						}
						want[s.ls.String()]++
					}
					got := map[string]int{}
					scs, err := st.Select("t", mint, maxt, ms...)
					require.NoError(t, err)
					for _, sc := range scs {
						got[sc.Labels.String()] = len(sc.Chunks)
					}
					require.Equal(t, want, got, "[%d, %d] %v", mint, maxt, ms)
				}
			}
			check(math.MinInt64)
			now := time.UnixMilli(15 * activeWidth)
			_, err := st.ApplyRetention(now, func(string) time.Duration { return 5 * time.Duration(activeWidth) * time.Millisecond })
			require.NoError(t, err)
			check(now.UnixMilli() - 5*activeWidth)
			require.NoError(t, st.Close())
			st = openTest(t, opts)
			check(now.UnixMilli() - 5*activeWidth)
		})
	}
}

func TestPartitionOf(t *testing.T) {
	for _, tc := range []struct{ t, want int64 }{
		{0, 0}, {activeWidth - 1, 0}, {activeWidth, activeWidth}, {-1, -activeWidth}, {-activeWidth, -activeWidth}, {-activeWidth - 1, -2 * activeWidth},
	} {
		require.Equal(t, tc.want, partitionOf(tc.t), "%d", tc.t)
	}
	_, _, ok := partitions(math.MinInt64, 0)
	require.False(t, ok)
	_, _, ok = partitions(0, math.MaxInt64)
	require.False(t, ok)
	first, last, ok := partitions(-1, activeWidth)
	require.True(t, ok)
	require.Equal(t, []int64{-activeWidth, activeWidth}, []int64{first, last})
	_, _, ok = partitions(0, maxActivePartitions*activeWidth)
	require.False(t, ok)
	require.True(t, slices.IsSorted([]string{string(timeKey(-activeWidth)), string(timeKey(0)), string(timeKey(activeWidth))}))
}

// After churn (a job's pods replaced every period), a select over the
// last hour reads the labels of the series active then, not of every pod
// the job ever had, with matchers or without; one over all time still
// reads them all.
func TestActiveIndexVisitsOnlyActiveSeries(t *testing.T) {
	st := openTest(t, testOptions(t))
	const pods, periods = 20, 30
	for p := range periods {
		c := xorChunk(t, int64(p)*activeWidth, 10, activeWidth/10)
		batch := make([]SeriesChunks, pods)
		for k := range batch {
			batch[k] = seriesOf(labels.FromStrings("__name__", "cpu", "job", "kubelet", "pod", fmt.Sprintf("api-%d-%d", p, k)), c)
		}
		require.NoError(t, st.Put("t", batch))
	}
	end := int64(periods)*activeWidth - 1
	visited := func(mint, maxt int64, ms ...*labels.Matcher) (visited, found int) {
		t.Helper()
		require.NoError(t, st.view("t", func(r *reader) error {
			err := r.each(mint, maxt, ms, nil, skips{}, false, func(uint64, []labels.Label, []byte, []Chunk) error { found++; return nil })
			visited = r.visited
			return err
		}))
		return visited, found
	}
	job := labels.MustNewMatcher(labels.MatchEqual, "job", "kubelet")
	pod := labels.MustNewMatcher(labels.MatchRegexp, "pod", "api-.*")
	for _, ms := range [][]*labels.Matcher{{job}, {job, pod}, nil} {
		v, f := visited(end-3600_000, end, ms...)
		require.Equal(t, [2]int{pods, pods}, [2]int{v, f}, "%v", ms)
	}
	v, f := visited(math.MinInt64, math.MaxInt64, job)
	require.Equal(t, [2]int{pods * periods, pods * periods}, [2]int{v, f}, "over all time, every series")
}
