package ingesterpb

import (
	"math"
	"testing"

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

func FuzzSeriesReader(f *testing.F) {
	f.Add(AppendSample(AppendSeriesHeader(nil, AppendLabels(nil, labels.FromStrings("a", "b")), 1), 5, 1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewSeriesReader(data)
		var b labels.ScratchBuilder
		for r.Next() {
			_, _ = DecodeLabels(&b, r.Labels())
			n := 0
			for _, _, ok := r.NextSample(); ok; _, _, ok = r.NextSample() {
				n++
			}
			require.Equal(t, r.Len(), n)
		}
	})
}
