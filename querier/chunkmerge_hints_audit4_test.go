package querier

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// Replicas of a histogram counter with resets, each missing random
// samples and cut at random counts, merged: resets/increase as on the
// full series.
func TestAudit4HistogramResetsAcrossReplicas(t *testing.T) {
	engine := NewEngine(Config{LookbackDelta: 5 * time.Minute, MaxSamples: 1e7}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ls := labels.FromStrings("__name__", "h")
	mk := func(c uint64) *histogram.Histogram {
		return &histogram.Histogram{Count: c, Sum: float64(c), PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{int64(c)}}
	}
	toWire := func(cs []chunks.Chunk) []*ingesterpb.Chunk {
		var w []*ingesterpb.Chunk
		for _, c := range cs {
			w = append(w, &ingesterpb.Chunk{MinTimeMs: c.MinTime, MaxTimeMs: c.MaxTime, Encoding: uint32(c.Encoding), Data: c.Data})
		}
		return w
	}
	for seed := range uint64(150) {
		rng := rand.New(rand.NewPCG(seed, 5))
		var truth []chunks.Sample
		c := uint64(0)
		for k := range 200 {
			if rng.IntN(15) == 0 {
				c = uint64(rng.IntN(3))
			} else {
				c += uint64(rng.IntN(4))
			}
			truth = append(truth, chunks.Sample{T: int64(k+1) * 15_000, H: mk(c)})
		}
		var wire []*ingesterpb.Chunk
		held := map[int64]bool{}
		for range 3 {
			var mine []chunks.Sample
			for _, s := range truth {
				if rng.Float64() > 0.2 {
					mine = append(mine, chunks.Sample{T: s.T, H: s.H.Copy()})
					held[s.T] = true
				}
			}
			cs, err := chunks.Encode(mine, 1+rng.IntN(40))
			require.NoError(t, err)
			wire = append(wire, toWire(cs)...)
		}
		var union []chunks.Sample
		for _, s := range truth {
			if held[s.T] {
				union = append(union, s)
			}
		}
		full, err := chunks.Encode(union, 0)
		require.NoError(t, err)
		fullMS, err := newMergedSeries(ls, toWire(full), -1<<63)
		require.NoError(t, err)
		ms, err := newMergedSeries(ls, wire, -1<<63)
		require.NoError(t, err)
		// Upstream chain over the same chunks, for comparison.
		up := &storage.SeriesEntry{Lset: ls, SampleIteratorFn: func(it chunkenc.Iterator) chunkenc.Iterator {
			its := make([]chunkenc.Iterable, len(ms.chunks))
			for k, c := range ms.chunks {
				its[k] = c
			}
			return storage.ChainSampleIteratorFromIterables(it, its)
		}}
		at := time.UnixMilli(201 * 15_000)
		for _, q := range []string{`resets(h[1h])`, `histogram_count(increase(h[1h]))`} {
			run := func(st storage.Queryable) string { return instantAnswer(t, engine, st, q, at) }
			want := run(auditOneSeries{fullMS})
			got := run(auditOneSeries{ms})
			upstream := run(auditOneSeries{up})
			require.Equal(t, want, got, "seed %d %s (upstream chain: %s)", seed, q, upstream)
		}
	}
}
