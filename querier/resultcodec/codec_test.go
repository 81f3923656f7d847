package resultcodec

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/stats"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"
)

func answer(v parser.Value) *v1.Response {
	return &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: v.Type(), Result: v},
		Warnings: []string{"PromQL warning: w (1:2)"}, Infos: []string{"PromQL info: i"}}
}

func TestRoundTrip(t *testing.T) {
	m := promql.Matrix{
		{Metric: labels.FromStrings("__name__", "a", "job", "x"), Floats: []promql.FPoint{{T: -5000, F: 1}, {T: 0, F: math.NaN()}, {T: 60000, F: math.Inf(-1)}}},
		{Metric: labels.EmptyLabels(), Floats: []promql.FPoint{{T: math.MaxInt64, F: -0.5}}},
		{Metric: labels.FromStrings("ü", "\x00"), Floats: nil},
	}
	vec := promql.Vector{{Metric: labels.FromStrings("a", "b"), T: 1234, F: 2}, {Metric: labels.FromStrings("a", "c"), T: 1234, F: math.MaxFloat64}}
	for _, c := range []struct {
		v    parser.Value
		want func(*testing.T, *Result)
	}{
		{m, func(t *testing.T, r *Result) {
			require.Equal(t, parser.ValueTypeMatrix, r.Type)
			require.Len(t, r.Matrix, 3)
			for k := range m {
				require.True(t, labels.Equal(m[k].Metric, r.Matrix[k].Metric))
				require.Len(t, r.Matrix[k].Floats, len(m[k].Floats))
				for i, p := range m[k].Floats {
					require.Equal(t, p.T, r.Matrix[k].Floats[i].T)
					require.Equal(t, math.Float64bits(p.F), math.Float64bits(r.Matrix[k].Floats[i].F))
				}
			}
		}},
		{vec, func(t *testing.T, r *Result) {
			require.Equal(t, parser.ValueTypeVector, r.Type)
			require.Len(t, r.Matrix, 2)
			require.Equal(t, []promql.FPoint{{T: 1234, F: math.MaxFloat64}}, r.Matrix[1].Floats)
		}},
		{promql.Scalar{T: 7, V: 3.5}, func(t *testing.T, r *Result) {
			require.Equal(t, promql.Scalar{T: 7, V: 3.5}, r.Scalar)
		}},
		{promql.String{T: 7, V: "hi"}, func(t *testing.T, r *Result) {
			require.Equal(t, promql.String{T: 7, V: "hi"}, r.String)
		}},
	} {
		resp := answer(c.v)
		require.True(t, Codec{}.CanEncode(resp))
		b, err := Codec{}.Encode(resp)
		require.NoError(t, err)
		r, err := Decode(b)
		require.NoError(t, err)
		require.Equal(t, resp.Warnings, r.Warnings)
		require.Equal(t, resp.Infos, r.Infos)
		c.want(t, r)
		// Every truncation is an error, never a panic.
		for n := range len(b) {
			_, err := Decode(b[:n])
			require.Error(t, err, "truncated to %d of %d", n, len(b))
		}
	}
}

// The codec declines what it cannot carry, so the API answers JSON.
func TestDeclines(t *testing.T) {
	h := &histogram.FloatHistogram{Count: 1}
	for name, resp := range map[string]*v1.Response{
		"histogram matrix": answer(promql.Matrix{{Metric: labels.EmptyLabels(), Histograms: []promql.HPoint{{T: 1, H: h}}}}),
		"histogram vector": answer(promql.Vector{{Metric: labels.EmptyLabels(), H: h}}),
		"error":            {Status: "error", Error: "x"},
		"not a query":      {Status: "success", Data: []string{"a"}},
	} {
		require.False(t, Codec{}.CanEncode(resp), name)
	}
	withStats := answer(promql.Scalar{})
	withStats.Data.(*v1.QueryData).Stats = stats.NewQueryStats(&stats.Statistics{Timers: stats.NewQueryTimers(), Samples: stats.NewQuerySamples(false)})
	require.False(t, Codec{}.CanEncode(withStats))
}

func FuzzDecode(f *testing.F) {
	b, _ := Codec{}.Encode(answer(promql.Matrix{{Metric: labels.FromStrings("a", "b"), Floats: []promql.FPoint{{T: 1, F: 2}}}}))
	f.Add(b)
	b, _ = Codec{}.Encode(answer(promql.Scalar{T: 1, V: 2}))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		// What decodes must encode back to the same bytes.
		var v parser.Value
		switch r.Type {
		case parser.ValueTypeMatrix:
			v = r.Matrix
		case parser.ValueTypeScalar:
			v = r.Scalar
		case parser.ValueTypeString:
			v = r.String
		default:
			return
		}
		out, err := Codec{}.Encode(&v1.Response{Status: "success", Data: &v1.QueryData{ResultType: v.Type(), Result: v}, Warnings: r.Warnings, Infos: r.Infos})
		require.NoError(t, err)
		if r.Type != parser.ValueTypeMatrix {
			require.Equal(t, b, out)
		}
	})
}
