package querier

import (
	"testing"

	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// Audit: chunkMerge trusted the wire's declared MaxTimeMs to drop chunks
// in Seek without decoding them, so a chunk declared to end before its
// real last sample lost on Seek what Next returned. It no longer reads
// declared times: here a declares 30 and holds 40, and Seek finds 40 as
// Next and upstream's chain do.
func TestAudit4SeekReadsChunksItPasses(t *testing.T) {
	a := auditChunk(t, []int64{10, 20, 30, 40}, []float64{1, 2, 3, 4}, false)
	b := auditChunk(t, []int64{15, 25}, []float64{1.5, 2.5}, false)
	chunks := []chunkenc.Chunk{a, b}

	// Next reaches 40.
	m := newChunkMerge(nil, chunks)
	var next []int64
	for m.Next() != chunkenc.ValNone {
		next = append(next, m.AtT())
	}
	require.Equal(t, []int64{10, 15, 20, 25, 30, 40}, next)

	// Upstream's chain seeks to 40.
	up := storage.ChainSampleIteratorFromIterables(nil, []chunkenc.Iterable{a, b})
	require.Equal(t, chunkenc.ValFloat, up.Seek(35))
	require.Equal(t, int64(40), up.AtT())

	m = newChunkMerge(nil, chunks)
	require.Equal(t, chunkenc.ValFloat, m.Seek(35), "Seek(35) found nothing, Next finds 40")
	require.Equal(t, int64(40), m.AtT())
}
