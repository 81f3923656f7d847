package store

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
)

func auditWalk(r *rand.Rand, n int) []chunks.Sample {
	var out []chunks.Sample
	base := uint64(0)
	for k := 0; k < n; k++ {
		t := int64(k+1) * 1000
		if r.Intn(15) == 0 {
			out = append(out, chunks.Sample{T: t, V: float64(k)})
			continue
		}
		switch r.Intn(12) {
		case 0:
			base = 0 // a reset the counts show
		}
		base += uint64(r.Intn(3))
		h := &histogram.Histogram{Count: base, Sum: float64(base), PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{int64(base)}}
		if k%7 > 3 {
			h.Count += 1
			h.PositiveSpans = append(h.PositiveSpans, histogram.Span{Offset: 2, Length: 1})
			h.PositiveBuckets = append(h.PositiveBuckets, 1-int64(base))
		}
		if r.Intn(10) == 0 {
			h.CounterResetHint = histogram.CounterReset // one the counts do not show
		}
		out = append(out, chunks.Sample{T: t, H: h})
	}
	return out
}

// resetsRead is what PromQL reads as counter resets from an iterator:
// the hint, or a comparison when it is unknown.
func resetsRead(t *testing.T, it chunkenc.Iterator) map[int64]bool {
	out := map[int64]bool{}
	var prev *histogram.FloatHistogram
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		if vt != chunkenc.ValHistogram {
			prev = nil
			continue
		}
		ts, fh := it.AtFloatHistogram(nil)
		if prev != nil {
			switch fh.CounterResetHint {
			case histogram.CounterReset:
				out[ts] = true
			case histogram.NotCounterReset:
				out[ts] = false
			default:
				out[ts] = fh.DetectReset(prev)
			}
		}
		prev = fh
	}
	require.NoError(t, it.Err())
	return out
}

func iterOf(cs []chunks.Chunk) chunkenc.Iterator {
	its := make([]chunkenc.Iterable, 0, len(cs))
	for _, c := range cs {
		chk, _ := chunkenc.FromData(c.Encoding, c.Data)
		its = append(its, chk)
	}
	return storage.ChainSampleIteratorFromIterables(nil, its)
}

// Two replicas' chunks of the same histogram series, each missing other
// samples but cut at the same times, merge in the store into the union,
// with the counter resets the whole series has, explicit ones included.
func TestAuditHistogramMergeKeepsResets(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			all := auditWalk(r, 120)
			var a, b []chunks.Sample
			for k, s := range all {
				last := k%10 == 9
				switch {
				case last:
					a, b = append(a, s), append(b, s)
				case r.Intn(5) == 0:
					a = append(a, s)
				case r.Intn(4) == 0:
					b = append(b, s)
				default:
					a, b = append(a, s), append(b, s)
				}
			}
			enc := func(smps []chunks.Sample) []chunks.Chunk {
				var out []chunks.Chunk
				for lo := 0; lo < len(smps); {
					hi := lo
					for hi < len(smps) && (smps[hi].T/1000-1)/10 == (smps[lo].T/1000-1)/10 {
						hi++
					}
					cs, err := chunks.Encode(smps[lo:hi], 0)
					require.NoError(t, err)
					out = append(out, cs...)
					lo = hi
				}
				return out
			}
			wantChunks, err := chunks.Encode(all, 0)
			require.NoError(t, err)
			want := resetsRead(t, iterOf(wantChunks))

			st := openTest(t, testOptions(t))
			ls := labels.FromStrings("__name__", "h")
			require.NoError(t, st.Put("t", []SeriesChunks{{Labels: ls, Chunks: enc(a)}}))
			require.NoError(t, st.Put("t", []SeriesChunks{{Labels: ls, Chunks: enc(b)}}))
			var got []chunks.Chunk
			require.NoError(t, st.SelectBatches("t", 0, 1<<40, 10, nil, func(scs []SeriesChunks) error {
				for _, sc := range scs {
					got = append(got, sc.Chunks...)
				}
				return nil
			}, labels.MustNewMatcher(labels.MatchEqual, "__name__", "h")))
			var n int
			it := iterOf(got)
			for it.Next() != chunkenc.ValNone {
				n++
			}
			require.Equal(t, len(all), n, "every sample of the union")
			require.Equal(t, want, resetsRead(t, iterOf(got)), "counter resets")
		})
	}
}
