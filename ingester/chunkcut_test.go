package ingester

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReplicasCutAtTheSamePeriodBoundaries: a replica that missed one
// sample cuts its chunks at other sample counts than its peers until the
// next max-chunk-age period starts; from there on its chunks are the
// peers' byte for byte, so a querier decodes them once (it merges sample by
// sample only chunks that differ).
func TestReplicasCutAtTheSamePeriodBoundaries(t *testing.T) {
	cfg := &Config{MaxChunkSamples: 120, MaxChunkAge: 2 * time.Hour}
	const step = 15_000
	start := int64(1_796_207_160_000) // not on a period boundary
	full, missed := &memSeries{}, &memSeries{}
	for k := range 4 * 480 {
		smp := sample{T: start + int64(k)*step, V: float64(k % 13)}
		full.append(smp, cfg, 0)
		if k != 30 {
			missed.append(smp, cfg, 0)
		}
	}
	full.completeHead()
	missed.completeHead()

	period := cfg.MaxChunkAge.Milliseconds()
	firstBoundary := periodEnd(start, period) + 1
	identical := func(a, b []*memChunk) map[int64]bool {
		out := map[int64]bool{}
		for _, ca := range a {
			for _, cb := range b {
				if ca.minT == cb.minT && ca.maxT == cb.maxT && bytes.Equal(ca.c.Bytes(), cb.c.Bytes()) {
					out[ca.minT] = true
				}
			}
		}
		return out
	}
	same := identical(full.chunks, missed.chunks)
	for _, c := range full.chunks {
		require.Equal(t, periodEnd(c.minT, period), periodEnd(c.maxT, period), "chunk [%d, %d] crosses a period boundary", c.minT, c.maxT)
		require.LessOrEqual(t, c.c.NumSamples(), cfg.MaxChunkSamples)
		if c.minT >= firstBoundary {
			require.True(t, same[c.minT], "chunk from %d, after the first period boundary, differs between replicas", c.minT)
		}
	}
	require.False(t, same[start], "the chunk missing a sample differs")
}
