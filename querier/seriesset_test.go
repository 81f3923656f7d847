package querier

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ingesterpb"
)

func wireChunk(t *testing.T, ts ...int64) *ingesterpb.Chunk {
	t.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	require.NoError(t, err)
	for _, x := range ts {
		app.Append(0, x, float64(x))
	}
	return &ingesterpb.Chunk{MinTimeMs: ts[0], MaxTimeMs: ts[len(ts)-1], Encoding: uint32(chunkenc.EncXOR), Data: c.Bytes()}
}

// Replicas and in-memory/stored copies of the same series overlap; the
// merged series must hold each sample once, in order.
func TestMergeDeduplicatesReplicas(t *testing.T) {
	up := ingesterpb.FromLabels(labels.FromStrings("__name__", "up", "job", "a"))
	down := ingesterpb.FromLabels(labels.FromStrings("__name__", "down"))
	wire := []*ingesterpb.ChunkSeries{
		{Labels: up, Chunks: []*ingesterpb.Chunk{wireChunk(t, 1, 2, 3)}},
		{Labels: down, Chunks: []*ingesterpb.Chunk{wireChunk(t, 5)}},
		{Labels: up, Chunks: []*ingesterpb.Chunk{wireChunk(t, 2, 3, 4), wireChunk(t, 6)}},
	}
	set, err := newChunkSeriesSet(wire, math.MinInt64)
	require.NoError(t, err)
	got := map[string][]int64{}
	var order []string
	for set.Next() {
		s := set.At()
		name := s.Labels().Get("__name__")
		order = append(order, name)
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			require.Equal(t, float64(ts), v)
			got[name] = append(got[name], ts)
		}
		require.NoError(t, it.Err())
	}
	require.Equal(t, []string{"down", "up"}, order, "sorted by labels")
	require.Equal(t, []int64{1, 2, 3, 4, 6}, got["up"])
	require.Equal(t, []int64{5}, got["down"])
}

// Under max_query_lookback a whole chunk may reach back past the oldest
// time the query may read; its older samples stay hidden, whether the
// reader steps or seeks, and whether one chunk or several are merged.
func TestMergedSeriesHidesSamplesBeforeMint(t *testing.T) {
	up := ingesterpb.FromLabels(labels.FromStrings("__name__", "up"))
	for _, c := range []struct {
		name   string
		chunks []*ingesterpb.Chunk
		seek   int64 // 0: step from the start
		want   []int64
	}{
		{"one chunk", []*ingesterpb.Chunk{wireChunk(t, 1, 2, 3, 4, 5)}, 0, []int64{3, 4, 5}},
		{"replicas", []*ingesterpb.Chunk{wireChunk(t, 1, 2, 3), wireChunk(t, 2, 3, 4)}, 0, []int64{3, 4}},
		{"seek before mint", []*ingesterpb.Chunk{wireChunk(t, 1, 2, 3, 4, 5)}, 1, []int64{3, 4, 5}},
		{"seek after mint", []*ingesterpb.Chunk{wireChunk(t, 1, 2, 3, 4, 5)}, 4, []int64{4, 5}},
		{"all older", []*ingesterpb.Chunk{wireChunk(t, 1, 2)}, 0, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			set, err := newChunkSeriesSet([]*ingesterpb.ChunkSeries{{Labels: up, Chunks: c.chunks}}, 3)
			require.NoError(t, err)
			require.True(t, set.Next())
			var got []int64
			it := set.At().Iterator(nil)
			vt := chunkenc.ValNone
			if c.seek != 0 {
				vt = it.Seek(c.seek)
			} else {
				vt = it.Next()
			}
			for ; vt == chunkenc.ValFloat; vt = it.Next() {
				ts, _ := it.At()
				got = append(got, ts)
			}
			require.NoError(t, it.Err())
			require.Equal(t, c.want, got)
		})
	}
}

// An ingester streams the in-memory and the stored part of a series in
// messages of their own, memory first, and a chunk flushed while it
// streams comes in both: the querier must join the parts by labels,
// whatever their order, and keep each sample once.
func TestMergeJoinsASeriesSentInParts(t *testing.T) {
	up := ingesterpb.FromLabels(labels.FromStrings("__name__", "up"))
	other := ingesterpb.FromLabels(labels.FromStrings("__name__", "zz"))
	wire := []*ingesterpb.ChunkSeries{
		{Labels: up, Chunks: []*ingesterpb.Chunk{wireChunk(t, 7, 8), wireChunk(t, 9)}},
		{Labels: other, Chunks: []*ingesterpb.Chunk{wireChunk(t, 1)}},
		{Labels: up, Chunks: []*ingesterpb.Chunk{wireChunk(t, 1, 2, 3)}},
		{Labels: up, Chunks: []*ingesterpb.Chunk{wireChunk(t, 4, 5, 6), wireChunk(t, 7, 8)}},
	}
	set, err := newChunkSeriesSet(wire, math.MinInt64)
	require.NoError(t, err)
	require.True(t, set.Next())
	require.Equal(t, "up", set.At().Labels().Get("__name__"))
	var got []int64
	it := set.At().Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		ts, _ := it.At()
		got = append(got, ts)
	}
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}, got)
	require.True(t, set.Next())
	require.Equal(t, "zz", set.At().Labels().Get("__name__"))
	require.False(t, set.Next())
}

// Replicas' identical chunks are kept once, so they are decoded once;
// chunks that differ (a replica cut its chunk elsewhere, or missed
// samples) are all kept and merged.
func TestIdenticalChunksAreKeptOnce(t *testing.T) {
	up := ingesterpb.FromLabels(labels.FromStrings("__name__", "up"))
	a, b := wireChunk(t, 1, 2, 3), wireChunk(t, 4, 5, 6)
	cut := wireChunk(t, 1, 2, 3, 4)
	wire := []*ingesterpb.ChunkSeries{
		{Labels: up, Chunks: []*ingesterpb.Chunk{a, b}},
		{Labels: up, Chunks: []*ingesterpb.Chunk{wireChunk(t, 1, 2, 3), wireChunk(t, 4, 5, 6)}},
		{Labels: up, Chunks: []*ingesterpb.Chunk{b, a}},
	}
	set, err := newChunkSeriesSet(wire, math.MinInt64)
	require.NoError(t, err)
	require.True(t, set.Next())
	ms := set.At().(*mergedSeries)
	require.Len(t, ms.chunks, 2)
	require.Len(t, wire[0].Chunks, 2, "the caller's wire series are left alone")
	require.Equal(t, a, wire[0].Chunks[0])

	set, err = newChunkSeriesSet(append(wire, &ingesterpb.ChunkSeries{Labels: up, Chunks: []*ingesterpb.Chunk{cut}}), math.MinInt64)
	require.NoError(t, err)
	require.True(t, set.Next())
	ms = set.At().(*mergedSeries)
	require.Len(t, ms.chunks, 3)
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6}, stepAll(t, ms.Iterator(nil)))
}

func stepAll(t *testing.T, it chunkenc.Iterator) []int64 {
	t.Helper()
	var out []int64
	for it.Next() == chunkenc.ValFloat {
		ts, v := it.At()
		require.Equal(t, float64(ts), v)
		out = append(out, ts)
	}
	require.NoError(t, it.Err())
	return out
}

// Whatever chunks replicas send (copies, disjoint runs, overlaps, in any
// order) the series reads as the sorted union of their samples, stepping
// or seeking to any time, with a reused iterator or a fresh one.
func TestMergedSeriesReadsTheUnionOfItsChunks(t *testing.T) {
	up := ingesterpb.FromLabels(labels.FromStrings("__name__", "up"))
	rnd := rand.New(rand.NewPCG(1, 2))
	var reuse chunkenc.Iterator
	for round := range 500 {
		var wire []*ingesterpb.ChunkSeries
		union := map[int64]bool{}
		for range 1 + rnd.IntN(4) {
			ws := &ingesterpb.ChunkSeries{Labels: up}
			from := int64(rnd.IntN(30))
			for range 1 + rnd.IntN(4) {
				var ts []int64
				for x := from; x < from+int64(1+rnd.IntN(8)); x++ {
					if rnd.IntN(4) > 0 || len(ts) == 0 {
						ts = append(ts, x)
						union[x] = true
					}
				}
				ws.Chunks = append(ws.Chunks, wireChunk(t, ts...))
				from = ts[len(ts)-1] + 1 + int64(rnd.IntN(3))
			}
			wire = append(wire, ws)
			if rnd.IntN(3) == 0 {
				wire = append(wire, ws) // a replica's identical copy
			}
		}
		want := slices.Sorted(maps.Keys(union))
		mint := int64(math.MinInt64)
		if round%5 == 0 {
			mint = int64(rnd.IntN(20))
			want = slices.DeleteFunc(want, func(x int64) bool { return x < mint })
		}
		set, err := newChunkSeriesSet(wire, mint)
		require.NoError(t, err)
		require.True(t, set.Next())
		s := set.At()
		reuse = s.Iterator(reuse)
		require.Equal(t, want, nilIfEmpty(stepAll(t, reuse)), "round %d", round)
		for _, seek := range []int64{-1, 0, 3, 10, 17, 25, 40, 100} {
			it := s.Iterator(nil)
			var got []int64
			for vt := it.Seek(seek); vt == chunkenc.ValFloat; vt = it.Next() {
				ts, _ := it.At()
				got = append(got, ts)
			}
			require.NoError(t, it.Err())
			wantFrom := slices.DeleteFunc(slices.Clone(want), func(x int64) bool { return x < seek })
			require.Equal(t, nilIfEmpty(wantFrom), nilIfEmpty(got), "round %d seek %d", round, seek)
		}
		// Seek to where the iterator already is has no effect.
		it := s.Iterator(nil)
		if len(want) > 1 && it.Next() == chunkenc.ValFloat && it.Next() == chunkenc.ValFloat {
			at := it.AtT()
			require.Equal(t, chunkenc.ValFloat, it.Seek(at-1))
			require.Equal(t, at, it.AtT())
		}
	}
}

func nilIfEmpty(ts []int64) []int64 {
	if len(ts) == 0 {
		return nil
	}
	return ts
}
