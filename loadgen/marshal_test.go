package loadgen

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

func TestAppendRequestRoundTrip(t *testing.T) {
	g := New(11, 2)
	tests := []struct {
		name     string
		from, to int
		step     int
		ts       int64
	}{
		{"first batch", 0, 100, 0, 1_700_000_000_000},
		{"whole catalogue", 0, g.Len(), 31, 1_700_000_015_000},
		{"middle", 150, 260, 7, 1},
		{"empty", 5, 5, 1, 1},
		{"zero and negative timestamps", 0, 3, 2, -15_000},
		{"zero timestamp", 3, 6, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			buf := g.AppendRequest(prefix, tt.from, tt.to, tt.step, tt.ts)
			require.Equal(t, "keep", string(buf[:4]), "AppendRequest must append, not overwrite")
			var req prompb.WriteRequest
			require.NoError(t, req.Unmarshal(buf[4:]))
			require.Len(t, req.Timeseries, tt.to-tt.from)
			for j, ts := range req.Timeseries {
				i := tt.from + j
				got := labels.New(toLabels(ts.Labels)...)
				require.Equal(t, g.Series()[i].String(), got.String())
				require.Equal(t, []prompb.Sample{{Value: g.Value(i, tt.step), Timestamp: tt.ts}}, ts.Samples)
			}
		})
	}
}

func TestAppendRequestMatchesReferenceMarshal(t *testing.T) {
	g := New(2, 2)
	tests := []struct {
		name string
		step int
		ts   int64
	}{
		{"typical", 3, 1_700_000_000_000},
		{"zero timestamp", 40, 0},
		{"negative timestamp", 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want prompb.WriteRequest
			for i, ls := range g.Series() {
				var pl []prompb.Label
				ls.Range(func(l labels.Label) { pl = append(pl, prompb.Label{Name: l.Name, Value: l.Value}) })
				want.Timeseries = append(want.Timeseries, prompb.TimeSeries{
					Labels:  pl,
					Samples: []prompb.Sample{{Value: g.Value(i, tt.step), Timestamp: tt.ts}},
				})
			}
			wantBytes, err := want.Marshal()
			require.NoError(t, err)
			require.Equal(t, wantBytes, g.AppendRequest(nil, 0, g.Len(), tt.step, tt.ts))
		})
	}
}

func TestAppendRequestRejectsBadRange(t *testing.T) {
	g := New(1, 1)
	require.Panics(t, func() { g.AppendRequest(nil, -1, 2, 0, 0) })
	require.Panics(t, func() { g.AppendRequest(nil, 0, g.Len()+1, 0, 0) })
	require.Panics(t, func() { g.AppendRequest(nil, 3, 2, 0, 0) })
}

func toLabels(pl []prompb.Label) []labels.Label {
	out := make([]labels.Label, len(pl))
	for i, l := range pl {
		out[i] = labels.Label{Name: l.Name, Value: l.Value}
	}
	return out
}

func BenchmarkAppendRequest(b *testing.B) {
	g := NewWithSeries(1, 100_000)
	const batch = 2000
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	b.SetBytes(int64(len(g.AppendRequest(nil, 0, batch, 0, 0))))
	for i := 0; b.Loop(); i++ {
		from := (i * batch) % g.Len()
		buf = g.AppendRequest(buf[:0], from, from+batch, i/50, int64(i)*15000)
	}
}

func BenchmarkAppendRequestCompressed(b *testing.B) {
	g := NewWithSeries(1, 100_000)
	const batch = 2000
	buf := make([]byte, 0, 1<<20)
	out := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		from := (i * batch) % g.Len()
		buf = g.AppendRequest(buf[:0], from, from+batch, i/50, int64(i)*15000)
		out = Compress(out, buf)
	}
}

// The histogram request decodes as prompb does, each series with its valid
// histogram and its labels.
func TestAppendHistogramRequestMatchesPrompb(t *testing.T) {
	g := NewWithSeries(1, 50)
	var req prompb.WriteRequest
	require.NoError(t, req.Unmarshal(g.AppendHistogramRequest(nil, 10, 50, 7, 1234)))
	require.Len(t, req.Timeseries, 40)
	for k, ts := range req.Timeseries {
		require.Len(t, ts.Histograms, 1)
		h := ts.Histograms[0].ToIntHistogram()
		require.NoError(t, h.Validate())
		require.True(t, g.Histogram(10+k, 7).Equals(h))
		require.Equal(t, int64(1234), ts.Histograms[0].Timestamp)
		var b labels.ScratchBuilder
		for _, l := range ts.Labels {
			b.Add(l.Name, l.Value)
		}
		require.Equal(t, g.Series()[10+k], b.Labels())
	}
}
