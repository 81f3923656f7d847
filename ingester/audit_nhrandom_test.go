package ingester

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
)

// auditRandomHist is a random walk of counter histograms: buckets appear
// and vanish, counts reset, the zero threshold and schema change, stale
// markers and gauge runs come and go.
func auditRandomHists(r *rand.Rand, n int, float bool) []chunks.Sample {
	var out []chunks.Sample
	counts := map[int32]uint64{}
	schema := int32(3)
	zt := 1e-3
	var zc uint64
	gauge := false
	for k := 0; k < n; k++ {
		t := int64(k+1) * 1000
		switch x := r.Intn(40); {
		case x == 0:
			out = append(out, chunks.Sample{T: t, H: &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}})
			continue
		case x == 1:
			clear(counts)
			zc = 0
		case x == 2 && schema > -4:
			schema--
			clear(counts)
		case x == 3:
			zt *= 2
		case x == 4:
			gauge = !gauge
		case x == 5:
			for b := range counts {
				delete(counts, b)
				break
			}
		}
		for j := r.Intn(4); j > 0; j-- {
			b := int32(r.Intn(30) - 10)
			counts[b] += uint64(r.Intn(5))
		}
		zc += uint64(r.Intn(2))
		if gauge {
			for b := range counts {
				counts[b] = uint64(r.Intn(5))
			}
		}
		h := &histogram.Histogram{Schema: schema, ZeroThreshold: zt, ZeroCount: zc, Count: zc}
		prev, last := int64(0), int32(math.MinInt32)
		for b := int32(-10); b < 20; b++ {
			c, ok := counts[b]
			if !ok {
				continue
			}
			if last != math.MinInt32 && b == last+1 {
				h.PositiveSpans[len(h.PositiveSpans)-1].Length++
			} else {
				off := b
				if last != math.MinInt32 {
					off = b - last - 1
				}
				h.PositiveSpans = append(h.PositiveSpans, histogram.Span{Offset: off, Length: 1})
			}
			h.PositiveBuckets = append(h.PositiveBuckets, int64(c)-prev)
			prev, last = int64(c), b
			h.Count += c
			h.Sum += float64(c) * 1.5
		}
		switch {
		case gauge:
			h.CounterResetHint = histogram.GaugeType
		case r.Intn(30) == 0:
			// An explicit reset the counts do not show (OTLP start time).
			h.CounterResetHint = histogram.CounterReset
		}
		if err := h.Validate(); err != nil {
			panic(err)
		}
		s := chunks.Sample{T: t, H: h}
		if float {
			s = chunks.Sample{T: t, FH: h.ToFloat(nil)}
		}
		out = append(out, s)
	}
	return out
}

// resetsSeen is how PromQL reads counter resets off samples: the hint,
// or, when unknown, a comparison with the previous histogram.
func resetsSeen(smps []chunks.Sample) []bool {
	out := make([]bool, len(smps))
	for k := 1; k < len(smps); k++ {
		cur, prev := smps[k], smps[k-1]
		var a, b *histogram.FloatHistogram
		switch {
		case cur.H != nil:
			a = cur.H.ToFloat(nil)
		case cur.FH != nil:
			a = cur.FH
		default:
			continue
		}
		switch {
		case prev.H != nil:
			b = prev.H.ToFloat(nil)
		case prev.FH != nil:
			b = prev.FH
		default:
			continue
		}
		if value.IsStaleNaN(a.Sum) || value.IsStaleNaN(b.Sum) {
			continue
		}
		switch a.CounterResetHint {
		case histogram.CounterReset:
			out[k] = true
		case histogram.NotCounterReset, histogram.GaugeType:
		default:
			out[k] = a.DetectReset(b)
		}
	}
	return out
}

// Random histogram walks survive memory, WAL replay, a checkpoint and the
// store, sample for sample and with the same counter resets as seen by
// PromQL.
func TestAuditRandomHistogramsSurviveEveryPath(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			dir := t.TempDir()
			ti := newTestIngester(t, dir, testConfig())
			ints, floats := auditRandomHists(r, 300, false), auditRandomHists(r, 300, true)
			for k := 0; k < 300; {
				n := 1 + r.Intn(20)
				n = min(n, 300-k)
				require.NoError(t, ti.push(t, "a", histPush("ints", ints[k:k+n]...), histPush("floats", floats[k:k+n]...)))
				k += n
			}
			want := map[string][]chunks.Sample{}
			for _, name := range []string{"ints", "floats"} {
				want[name] = ti.allSamples(t, "a", name)
			}
			ti = throughEveryPath(t, ti, dir, func(ti *testIngester, when string) {
				for name, src := range map[string][]chunks.Sample{"ints": ints, "floats": floats} {
					got := ti.allSamples(t, "a", name)
					requireSamples(t, src, got)
					require.Equal(t, resetsSeen(want[name]), resetsSeen(got), "%s %s: counter resets", when, name)
				}
			})
			ti.stop(t)
		})
	}
}
