package ingester

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
)

// audit2Sample is a random sample at t: a float, an integer histogram or a
// float histogram, with a value that tells samples apart.
func audit2Sample(r *rand.Rand, t int64, mixTypes bool) chunks.Sample {
	k := r.IntN(30)
	typ := 0
	if mixTypes {
		typ = r.IntN(6)
	}
	switch typ {
	case 3:
		h := testHist(k)
		h.CounterResetHint = histogram.GaugeType
		return chunks.Sample{T: t, H: h}
	case 4:
		return chunks.Sample{T: t, V: math.Float64frombits(value.StaleNaN)}
	case 5:
		h := testHist(k)
		h.CounterResetHint = histogram.CounterReset
		return chunks.Sample{T: t, FH: h.ToFloat(nil)}
	case 1:
		return chunks.Sample{T: t, H: testHist(k)}
	case 2:
		return chunks.Sample{T: t, FH: testHist(k).ToFloat(nil)}
	}
	return chunks.Sample{T: t, V: r.Float64()}
}

// audit2Check checks mergeOOO's invariants and compares the series'
// out-of-order chunks and unencoded samples with the model.
func audit2Check(t *testing.T, s *memSeries, cfg *Config, model map[int64]chunks.Sample, what string) {
	t.Helper()
	age := max(cfg.MaxChunkAge.Milliseconds(), 1)
	var got []chunks.Sample
	for k, mc := range s.oooChunks {
		require.Equal(t, floorDiv(mc.minT, age), floorDiv(mc.maxT, age), "%s: chunk %d [%d,%d] within one period", what, k, mc.minT, mc.maxT)
		require.LessOrEqual(t, mc.c.NumSamples(), cfg.MaxChunkSamples, "%s: chunk %d samples", what, k)
		require.LessOrEqual(t, mc.minT, mc.maxT, "%s: chunk %d", what, k)
		if k > 0 {
			require.Greater(t, mc.minT, s.oooChunks[k-1].maxT, "%s: chunk %d starts after chunk %d ends", what, k, k-1)
		}
		smps := decodeChunk(mc)
		require.NotEmpty(t, smps)
		require.Equal(t, mc.minT, smps[0].T, "%s: chunk %d minT", what, k)
		require.Equal(t, mc.maxT, smps[len(smps)-1].T, "%s: chunk %d maxT", what, k)
		got = append(got, smps...)
	}
	// The unencoded samples are kept apart from the chunks' times.
	byT := map[int64]chunks.Sample{}
	for _, smp := range got {
		_, dup := byT[smp.T]
		require.False(t, dup, "%s: time %d in two chunks", what, smp.T)
		byT[smp.T] = smp
	}
	for _, smp := range s.ooo {
		if _, dup := byT[smp.T]; !dup {
			byT[smp.T] = smp
		}
	}
	require.Len(t, byT, len(model), what)
	for tt, want := range model {
		g, ok := byT[tt]
		require.True(t, ok, "%s: sample at %d lost", what, tt)
		require.True(t, chunks.Same(want, g), "%s: sample at %d: want %v, got %v", what, tt, want, g)
		// sampleAt finds every sample, through the binary search.
		smp, found, _ := s.sampleAt(tt)
		require.True(t, found, "%s: sampleAt(%d)", what, tt)
		require.True(t, chunks.Same(want, smp), "%s: sampleAt(%d): want %v, got %v", what, tt, want, smp)
	}
	// And none where there is none.
	for _, mc := range s.oooChunks {
		for _, tt := range []int64{mc.minT - 1, mc.maxT + 1} {
			if _, ok := model[tt]; ok {
				continue
			}
			_, found, _ := s.sampleAt(tt)
			require.False(t, found, "%s: sampleAt(%d) found a sample never added", what, tt)
		}
	}
}

// mergeOOO keeps its promises under random inputs: every sample kept
// exactly once (the first value of a time kept), chunks sorted, apart,
// each within one max-chunk-age period and at most max-chunk-samples
// long, whatever the periods, chunk sizes, types and timestamps (negative,
// at either end of int64), through repeated merges and inserts.
func TestAudit2MergeOOOMatchesModel(t *testing.T) {
	bases := []int64{0, -5_000_000, math.MinInt64, math.MaxInt64 - 3_000_000, 1_700_000_000_000}
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 99))
		cfg := &Config{
			MaxChunkSamples: 1 + r.IntN(40),
			MaxChunkAge:     time.Duration(1+r.IntN(5000)) * time.Millisecond,
		}
		if r.IntN(5) == 0 {
			cfg.MaxChunkAge = time.Duration(r.IntN(1000)) * time.Microsecond // under a millisecond
		}
		base := bases[r.IntN(len(bases))]
		span := int64(1 + r.IntN(20_000))
		mix := r.IntN(2) == 0
		at := func() int64 {
			off := r.Int64N(span)
			if base > 0 && base > math.MaxInt64-span {
				return math.MaxInt64 - off
			}
			return base + off
		}
		what := fmt.Sprintf("seed %d (samples %d, age %s, base %d, span %d)", seed, cfg.MaxChunkSamples, cfg.MaxChunkAge, base, span)
		s := &memSeries{}
		model := map[int64]chunks.Sample{}
		for round := range 1 + r.IntN(12) {
			switch r.IntN(3) {
			case 0:
				// A direct merge of a sorted run, as replay of a
				// checkpoint's chunk does.
				n := 1 + r.IntN(80)
				byT := map[int64]chunks.Sample{}
				for range n {
					tt := at()
					byT[tt] = audit2Sample(r, tt, mix)
				}
				run := make([]chunks.Sample, 0, len(byT))
				for _, smp := range byT {
					run = append(run, smp)
				}
				slices.SortFunc(run, func(a, b chunks.Sample) int { return cmpT(a.T, b.T) })
				// Everything first in memory is kept: the unencoded samples
				// are merged first only by cutOOO, so cut them now.
				s.cutOOO(cfg)
				for _, smp := range run {
					if _, ok := model[smp.T]; !ok {
						model[smp.T] = smp
					}
				}
				s.mergeOOO(run, cfg)
			default:
				// Inserts, as pushes make them: never a time held already.
				for range 1 + r.IntN(70) {
					tt := at()
					if _, ok := model[tt]; ok {
						continue
					}
					smp := audit2Sample(r, tt, mix)
					model[tt] = smp
					s.insertOOO(smp, cfg)
				}
			}
			audit2Check(t, s, cfg, model, fmt.Sprintf("%s round %d", what, round))
		}
		s.cutOOO(cfg)
		audit2Check(t, s, cfg, model, what+" after cut")
	}
}

func cmpT(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
