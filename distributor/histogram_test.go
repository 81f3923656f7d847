package distributor

import (
	"net/http"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
)

func testHistogram() *histogram.Histogram {
	return &histogram.Histogram{Schema: 1, ZeroThreshold: 1e-3, ZeroCount: 1, Count: 10, Sum: 20,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 4}}, PositiveBuckets: []int64{1, 1, 0, 0},
		NegativeSpans: []histogram.Span{{Offset: 0, Length: 2}}, NegativeBuckets: []int64{1, 0}}
}

func nhcb() *histogram.Histogram {
	return &histogram.Histogram{Schema: histogram.CustomBucketsSchema, Count: 3, Sum: 2,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []int64{1, 0, 0},
		CustomValues: []float64{0.1, 1}}
}

func histSeries(name string, hs ...prompb.Histogram) prompb.TimeSeries {
	return prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}}, Histograms: hs}
}

// Integer, float and custom-bucket histograms of 1.0 and 2.0 requests
// reach the ingesters as they were sent, a series' floats and histograms
// both, and 2.0's response says how many histograms were written.
func TestHistogramsArePushed(t *testing.T) {
	d, clients := newTestDistributor(t, 1)
	fh := testHistogram().ToFloat(nil)
	fh.Sum = 0.25
	mixed := histSeries("m", prompb.FromIntHistogram(3000, testHistogram()))
	mixed.Samples = []prompb.Sample{{Timestamp: 1000, Value: 1}}
	w := post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		histSeries("h", prompb.FromIntHistogram(1000, testHistogram()), prompb.FromIntHistogram(2000, testHistogram())),
		histSeries("f", prompb.FromFloatHistogram(1000, fh)),
		histSeries("c", prompb.FromIntHistogram(1000, nhcb())),
		mixed,
	}}), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	got := clients["ing-0"].histograms
	require.Len(t, got, 5)
	require.True(t, testHistogram().Equals(got[0].h))
	require.Equal(t, int64(2000), got[1].t)
	require.True(t, fh.Equals(got[2].fh))
	require.True(t, nhcb().Equals(got[3].h))
	require.Equal(t, "m", got[4].ls.Get("__name__"))
	require.Len(t, clients["ing-0"].series, 5, "the mixed series is a float entry and a histogram entry")

	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "v2"), nil),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: 1000}},
		Histograms: []writev2.Histogram{writev2.FromIntHistogram(0, 2000, testHistogram()), writev2.FromFloatHistogram(0, 3000, fh)},
	}}}
	req.Symbols = st.Symbols()
	w = post(d, encodeV2(t, req), v2Header)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, "1", w.Header().Get("X-Prometheus-Remote-Write-Samples-Written"))
	require.Equal(t, "2", w.Header().Get("X-Prometheus-Remote-Write-Histograms-Written"))
	require.Len(t, clients["ing-0"].histograms, 7)
}

// A histogram that breaks Prometheus's rules is discarded with a 400
// naming it; the rest of the request, the same series' other samples
// included, is written and counted.
func TestInvalidHistogramsAreDiscardedAlone(t *testing.T) {
	badCount := testHistogram()
	badCount.Count = 2
	badSpans := testHistogram()
	badSpans.PositiveSpans = []histogram.Span{{Offset: 0, Length: 7}}
	unknownSchema := testHistogram()
	unknownSchema.Schema = 60
	for name, c := range map[string]struct {
		h    prompb.Histogram
		want string
	}{
		"count":          {prompb.FromIntHistogram(2000, badCount), "invalid-native-histogram"},
		"spans":          {prompb.FromIntHistogram(2000, badSpans), "invalid-native-histogram"},
		"unknown schema": {prompb.FromIntHistogram(2000, unknownSchema), "unknown schema"},
		"out of order":   {prompb.FromIntHistogram(500, testHistogram()), "out of order"},
		"garbage":        {prompb.Histogram{NegativeDeltas: []int64{1}, NegativeSpans: []prompb.BucketSpan{{Offset: 1 << 30, Length: 1 << 31}}, Timestamp: 2000}, "invalid-native-histogram"},
	} {
		t.Run(name, func(t *testing.T) {
			d, clients := newTestDistributor(t, 1)
			w := post(d, encodeV2(t, v2WithHistograms(t, prompb.FromIntHistogram(1000, testHistogram()), c.h, prompb.FromIntHistogram(3000, testHistogram()))), v2Header)
			require.Equal(t, http.StatusBadRequest, w.Code)
			require.Contains(t, w.Body.String(), c.want)
			if name == "out of order" {
				require.Equal(t, "2", w.Header().Get("X-Prometheus-Remote-Write-Histograms-Written"))
				return
			}
			require.Equal(t, "2", w.Header().Get("X-Prometheus-Remote-Write-Histograms-Written"))
			require.Len(t, clients["ing-0"].histograms, 2)
		})
	}
}

// v2WithHistograms is a 2.0 request of one series with these histograms,
// 1.0's message re-encoded as 2.0's (the fields are the same).
func v2WithHistograms(t *testing.T, hs ...prompb.Histogram) *writev2.Request {
	t.Helper()
	st := writev2.NewSymbolTable()
	ts := writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "h"), nil)}
	for _, h := range hs {
		raw, err := h.Marshal()
		require.NoError(t, err)
		var h2 writev2.Histogram
		require.NoError(t, h2.Unmarshal(raw))
		ts.Histograms = append(ts.Histograms, h2)
	}
	return &writev2.Request{Symbols: st.Symbols(), Timeseries: []writev2.TimeSeries{ts}}
}

// Over the tenant's bucket limit a histogram has its resolution halved
// until it fits, as Prometheus's scrape limit does; without reduction, or
// with custom buckets that cannot be merged, it is discarded. A schema
// finer than 8 is reduced to 8 as Prometheus reduces it.
func TestHistogramBucketLimit(t *testing.T) {
	wide := &histogram.Histogram{Schema: 3, Count: 16, Sum: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 16}}, PositiveBuckets: make([]int64, 16)}
	wide.PositiveBuckets[0] = 1
	fine := testHistogram()
	fine.Schema = 10
	send := func(reduce bool, hs ...*histogram.Histogram) ([]pushedHistogram, *http.Response) {
		l := &fixedLimits{l: limits.Limits{MaxNativeHistogramBuckets: 4, ReduceNativeHistogramOverMaxBuckets: reduce}}
		d, clients := newLimitedDistributor(t, 1, l)
		var phs []prompb.Histogram
		for k, h := range hs {
			phs = append(phs, prompb.FromIntHistogram(int64(k+1)*1000, h))
		}
		w := post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{histSeries("h", phs...)}}), nil)
		return clients["ing-0"].histograms, w.Result()
	}
	got, resp := send(true, wide, fine)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Len(t, got, 2)
	require.LessOrEqual(t, len(got[0].h.PositiveBuckets), 4)
	require.Equal(t, int32(0), got[0].h.Schema, "buckets 0..15 at schema 3 are 0..8, 0..4 and then 0..2 at schema 0")
	require.Equal(t, uint64(16), got[0].h.Count)
	require.Equal(t, int32(8), got[1].h.Schema, "schema 10 read as 8, where its buckets fit")

	got, resp = send(false, wide, testHistogram())
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Len(t, got, 0, "6 buckets without reduction")

	custom := nhcb()
	custom.CustomValues = []float64{1, 2, 3, 4, 5}
	custom.PositiveSpans = []histogram.Span{{Offset: 0, Length: 6}}
	custom.PositiveBuckets = []int64{1, 0, 0, 0, 0, 0}
	custom.Count = 6
	got, resp = send(true, custom)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Len(t, got, 0)
}
