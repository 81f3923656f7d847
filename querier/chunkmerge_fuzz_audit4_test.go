package querier

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
)

// auditChunk builds a chunk from ts (floats or histograms).
func auditChunk(t *testing.T, ts []int64, vals []float64, hist bool) chunkenc.Chunk {
	t.Helper()
	var c chunkenc.Chunk
	if hist {
		c = chunkenc.NewHistogramChunk()
	} else {
		c = chunkenc.NewXORChunk()
	}
	app, err := c.Appender()
	require.NoError(t, err)
	for k, x := range ts {
		if hist {
			h := tsdbutil.GenerateTestHistogram(int64(k))
			var nc chunkenc.Chunk
			nc, _, app, err = app.AppendHistogram(nil, 0, x, h, true)
			require.NoError(t, err)
			require.Nil(t, nc)
		} else {
			app.Append(0, x, vals[k])
		}
	}
	return c
}

// Timestamps-only differential against upstream's chain, with inputs the
// existing test does not produce: chunks of one replica overlapping each
// other (out-of-order chunks), conflicting values at one time, Seek
// backwards, forwards past everything, to MinInt64, reuse across
// different chunk sets.
func TestAudit4ChunkMergeFuzzTimestamps(t *testing.T) {
	var reuse chunkenc.Iterator
	for seed := range uint64(3000) {
		rng := rand.New(rand.NewPCG(seed, 99))
		n := 1 + rng.IntN(7)
		hist := seed%4 == 0
		var chunks []chunkenc.Chunk
		for range n {
			k := rng.IntN(15)
			start := rng.Int64N(200) - 100
			var ts []int64
			var vs []float64
			x := start
			for range k {
				x += 1 + rng.Int64N(5)
				ts = append(ts, x)
				vs = append(vs, float64(x%7))
			}
			chunks = append(chunks, auditChunk(t, ts, vs, hist))
		}
		var ops []readOp
		for range 40 {
			switch rng.IntN(6) {
			case 0:
				ops = append(ops, readOp{seek: true, t: rng.Int64N(300) - 150})
			case 1:
				ops = append(ops, readOp{seek: true, t: math.MinInt64 + rng.Int64N(2)})
			default:
				ops = append(ops, readOp{})
			}
		}
		iterables := make([]chunkenc.Iterable, len(chunks))
		for k, c := range chunks {
			iterables[k] = c
		}
		tsOnly := func(it chunkenc.Iterator) []string {
			var out []string
			for _, op := range ops {
				var typ chunkenc.ValueType
				if op.seek {
					typ = it.Seek(op.t)
				} else {
					typ = it.Next()
				}
				if typ == chunkenc.ValNone {
					return append(out, fmt.Sprintf("%v none err=%v", op, it.Err()))
				}
				var tt int64
				switch typ {
				case chunkenc.ValFloat:
					tt, _ = it.At()
				case chunkenc.ValHistogram:
					var h *histogram.Histogram
					tt, h = it.AtHistogram(nil)
					_ = h
				}
				out = append(out, fmt.Sprintf("%v %d %d", op, tt, it.AtT()))
			}
			return out
		}
		want := tsOnly(storage.ChainSampleIteratorFromIterables(nil, iterables))
		got := tsOnly(newChunkMerge(nil, chunks))
		require.Equal(t, want, got, "seed %d", seed)
		m := newChunkMerge(reuse, chunks)
		require.Equal(t, want, tsOnly(m), "seed %d reused", seed)
		reuse = m
	}
}
