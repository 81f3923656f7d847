package store

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/runchunk"
)

// fourChunkSeries stores n series of four 120-sample chunks in the first
// partition, compacts them and returns the store and what it read before.
func fourChunkSeries(t *testing.T, n int) (*Store, []SeriesChunks) {
	t.Helper()
	st := openTest(t, testOptions(t))
	var batch []SeriesChunks
	for k := range n {
		var cs []Chunk
		for c := range int64(4) {
			cs = append(cs, stepChunk(t, 1_800_000*(c+1)-1, 120, 15000))
		}
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "m", "k", fmt.Sprint(k)), cs...))
	}
	require.NoError(t, st.Put("t", batch))
	before, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	_, err = st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	return st, before
}

// A select of compacted data hands each series' run on as one chunk
// where every chunk it stands for overlaps the range; expanded, it is
// exactly what the chunks bucket read. A range over part of a run gets
// the chunks it overlaps, as before compaction: a limit on the samples a
// query fetches, or a remote read, sees the same chunks either way.
func TestSelectHandsRunsOnWhole(t *testing.T) {
	st, before := fourChunkSeries(t, 3)
	first, last := before[0].Chunks[0], before[0].Chunks[3]
	for _, r := range [][2]int64{{math.MinInt64, math.MaxInt64}, {first.MaxTime, last.MinTime}} {
		got, err := st.Select("t", r[0], r[1])
		require.NoError(t, err)
		for _, sc := range got {
			require.Len(t, sc.Chunks, 1)
			require.Equal(t, runchunk.Encoding, sc.Chunks[0].Encoding)
			require.Equal(t, [2]int64{first.MinTime, last.MaxTime}, [2]int64{sc.Chunks[0].MinTime, sc.Chunks[0].MaxTime})
		}
		require.Equal(t, before, expandRuns(t, got, r[0], r[1]))
	}
	// The middle two chunks' range only: those two, rebuilt.
	mint, maxt := before[0].Chunks[1].MinTime, before[0].Chunks[2].MaxTime
	got, err := st.Select("t", mint, maxt)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for _, sc := range got {
		require.Equal(t, before[0].Chunks[1:3], sc.Chunks)
	}
	// Between two chunks (a gap of one step): no chunk overlaps, no series.
	got, err = st.Select("t", before[0].Chunks[1].MaxTime+1, before[0].Chunks[2].MinTime-1)
	require.NoError(t, err)
	require.Empty(t, got)
}

// A chunk put later under a compacted chunk's key answers alone for that
// chunk (putChunk merges both): the run then cannot stand for the series'
// chunks, which are read one by one as before.
func TestSupersededRunIsReadAsItsChunks(t *testing.T) {
	st, before := fourChunkSeries(t, 2)
	late := stepChunk(t, before[0].Chunks[2].MaxTime, 3, 7)
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(before[0].Labels, late)}))
	got, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	for _, c := range got[0].Chunks {
		require.NotEqual(t, runchunk.Encoding, c.Encoding, "series 0 has a chunk in the chunks bucket under a run's key")
	}
	require.Equal(t, runchunk.Encoding, got[1].Chunks[0].Encoding)
	require.Equal(t, seriesSamples(t, before, math.MinInt64, math.MaxInt64)[before[1].Labels.String()], seriesSamples(t, got, math.MinInt64, math.MaxInt64)[before[1].Labels.String()])
}

// Retention that passes part of a run (retained_from inside a partition)
// leaves the run to its records: the passed chunks stay hidden.
func TestRunPassedByRetentionIsReadAsItsChunks(t *testing.T) {
	st, before := fourChunkSeries(t, 1)
	cutoff := before[0].Chunks[1].MaxTime + 1
	_, err := st.ApplyRetention(time.UnixMilli(cutoff).Add(time.Hour), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	got, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Len(t, got, 1)
	for _, c := range got[0].Chunks {
		require.GreaterOrEqual(t, c.MinTime, cutoff, "a chunk retention passed came back")
	}
}

// Put stores a run (a peer's compacted data in a transfer) as the XOR
// chunks it was made from; reads and compaction then work on those.
func TestPutStoresRunsAsTheirChunks(t *testing.T) {
	st, before := fourChunkSeries(t, 2)
	runs, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	other := openTest(t, testOptions(t))
	require.NoError(t, other.Put("t", runs))
	got, err := other.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Equal(t, before, got, "stored as the chunks, byte for byte")
	err = other.Put("t", []SeriesChunks{seriesOf(before[0].Labels, Chunk{MinTime: 0, MaxTime: 1, Encoding: runchunk.Encoding, Data: []byte{1, 5, 0xff}})})
	require.ErrorIs(t, err, runchunk.ErrCorrupt, "a damaged run is refused, naming the damage")
}
