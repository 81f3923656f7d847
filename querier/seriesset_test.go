package querier

import (
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
	set, err := newChunkSeriesSet(wire)
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
