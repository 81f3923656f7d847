package ingesterpb

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

func TestCodecRoundTrip(t *testing.T) {
	sets := []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "node"),
		labels.FromStrings("__name__", "x", "long", string(make([]byte, 300))),
	}
	var buf []byte
	for k, ls := range sets {
		buf = AppendSeriesHeader(buf, AppendLabels(nil, ls), k+1)
		for i := 0; i <= k; i++ {
			buf = AppendSample(buf, int64(-i), math.NaN())
		}
	}
	r := NewSeriesReader(buf)
	var b labels.ScratchBuilder
	for k := 0; r.Next(); k++ {
		ls, err := DecodeLabels(&b, r.Labels())
		require.NoError(t, err)
		require.Equal(t, sets[k], ls)
		require.Equal(t, k+1, r.Len())
		i := 0
		for ts, v, ok := r.NextSample(); ok; ts, v, ok = r.NextSample() {
			require.Equal(t, int64(-i), ts)
			require.True(t, math.IsNaN(v))
			i++
		}
		require.Equal(t, k+1, i)
	}
	require.NoError(t, r.Err())
}

func testHistogram() *histogram.Histogram {
	return &histogram.Histogram{Schema: 2, ZeroThreshold: 1e-3, ZeroCount: 1, Count: 4, Sum: 7.5,
		PositiveSpans: []histogram.Span{{Offset: -1, Length: 2}}, PositiveBuckets: []int64{1, 1},
		NegativeSpans: []histogram.Span{{Offset: 3, Length: 1}}, NegativeBuckets: []int64{1}}
}

// Histogram series sit between float series and come back exactly, the
// integer ones as integers and the float ones as floats.
func TestHistogramsRoundTrip(t *testing.T) {
	h := testHistogram()
	fh := h.ToFloat(nil)
	fh.Sum = math.Inf(1)
	a, b := AppendLabels(nil, labels.FromStrings("a", "1")), AppendLabels(nil, labels.FromStrings("b", "2"))
	buf := AppendSample(AppendSeriesHeader(nil, a, 1), 1, 1)
	buf = AppendHistogramSeriesHeader(buf, b, 2)
	buf = AppendHistogram(buf, 2, h, nil)
	buf = AppendHistogram(buf, 3, nil, fh)
	buf = AppendSample(AppendSeriesHeader(buf, a, 1), 4, 4)

	r := NewSeriesReader(buf)
	require.True(t, r.Next())
	require.False(t, r.Histograms())
	require.True(t, r.Next())
	require.True(t, r.Histograms())
	require.Equal(t, b, r.Labels())
	require.Equal(t, 2, r.Len())
	_, _, ok := r.NextSample()
	require.False(t, ok, "a histogram series has no float samples")
	ts, gotH, gotFH, ok, err := r.NextHistogram()
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(2), ts)
	require.Nil(t, gotFH)
	require.True(t, h.Equals(gotH), "%v", gotH)
	ts, gotH, gotFH, ok, err = r.NextHistogram()
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(3), ts)
	require.Nil(t, gotH)
	require.True(t, fh.Equals(gotFH), "%v", gotFH)
	_, _, _, ok, _ = r.NextHistogram()
	require.False(t, ok)
	require.True(t, r.Next())
	ts, v, ok := r.NextSample()
	require.True(t, ok)
	require.Equal(t, int64(4), ts)
	require.Equal(t, 4.0, v)
	require.False(t, r.Next())
	require.NoError(t, r.Err())
}

// Exemplars follow their series' samples and come back with their labels,
// an empty label set too.
func TestExemplarsRoundTrip(t *testing.T) {
	a := AppendLabels(nil, labels.FromStrings("a", "1"))
	trace := AppendLabels(nil, labels.FromStrings("trace_id", "abc"))
	buf := AppendSample(AppendSeriesHeader(nil, a, 1), 1, 1)
	buf = AppendExemplarSeriesHeader(buf, a, 2)
	buf = AppendExemplar(buf, trace, 1, 0.5)
	buf = AppendExemplar(buf, nil, 2, math.NaN())
	r := NewSeriesReader(buf)
	require.True(t, r.Next())
	require.Equal(t, Floats, r.Kind())
	require.True(t, r.Next())
	require.Equal(t, Exemplars, r.Kind())
	require.Equal(t, a, r.Labels())
	_, _, ok := r.NextSample()
	require.False(t, ok)
	ls, ts, v, ok := r.NextExemplar()
	require.True(t, ok)
	require.Equal(t, trace, ls)
	require.Equal(t, int64(1), ts)
	require.Equal(t, 0.5, v)
	ls, ts, v, ok = r.NextExemplar()
	require.True(t, ok)
	require.Empty(t, ls)
	require.Equal(t, int64(2), ts)
	require.True(t, math.IsNaN(v))
	_, _, _, ok = r.NextExemplar()
	require.False(t, ok)
	require.False(t, r.Next())
	require.NoError(t, r.Err())
}

func FuzzSeriesReader(f *testing.F) {
	ls := AppendLabels(nil, labels.FromStrings("a", "b"))
	f.Add(AppendSample(AppendSeriesHeader(nil, ls, 1), 5, 1))
	f.Add(AppendHistogram(AppendHistogramSeriesHeader(nil, ls, 1), 5, testHistogram(), nil))
	f.Add(AppendHistogram(AppendHistogramSeriesHeader(nil, ls, 1), 5, nil, testHistogram().ToFloat(nil)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(AppendExemplar(AppendExemplarSeriesHeader(nil, ls, 1), ls, 5, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewSeriesReader(data)
		var b labels.ScratchBuilder
		for r.Next() {
			_, _ = DecodeLabels(&b, r.Labels())
			n := 0
			if r.Kind() == Exemplars {
				for _, _, _, ok := r.NextExemplar(); ok; _, _, _, ok = r.NextExemplar() {
					n++
				}
				require.Equal(t, r.Len(), n)
				continue
			}
			if r.Histograms() {
				for {
					_, h, fh, ok, err := r.NextHistogram()
					if err != nil || !ok {
						break
					}
					n++
					// What decodes must validate or be refused; neither
					// may panic.
					if h != nil {
						_ = h.Validate()
					} else {
						_ = fh.Validate()
					}
				}
				require.LessOrEqual(t, n, r.Len())
				continue
			}
			for _, _, ok := r.NextSample(); ok; _, _, ok = r.NextSample() {
				n++
			}
			require.Equal(t, r.Len(), n)
		}
	})
}

// FuzzDecodeLabels: any bytes decode or are refused without a panic, and
// DecodeLabels and RangeLabels agree on what they hold; a label set
// decodes back from its encoding.
func FuzzDecodeLabels(f *testing.F) {
	f.Add(AppendLabels(nil, labels.FromStrings("__name__", "up", "job", "node")))
	f.Add(AppendLabels(nil, labels.FromStrings("a", "")))
	f.Add([]byte{0x80})
	f.Add([]byte{0x05, 'a'})
	f.Add([]byte{0x01, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b labels.ScratchBuilder
		ls, err := DecodeLabels(&b, data)
		var pairs []string
		whole := RangeLabels(data, func(name, value []byte) { pairs = append(pairs, string(name), string(value)) })
		require.Equal(t, err == nil, whole)
		if err != nil {
			return
		}
		var got []string
		ls.Range(func(l labels.Label) { got = append(got, l.Name, l.Value) })
		require.Equal(t, pairs, got)
		again, err := DecodeLabels(&b, AppendLabels(nil, ls))
		require.NoError(t, err)
		require.True(t, labels.Equal(ls, again))
	})
}
