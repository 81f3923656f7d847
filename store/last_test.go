package store

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

func TestLastSamplesAndSampleAt(t *testing.T) {
	s := openTest(t, testOptions(t))
	a, b := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b")
	// a's chunks overlap, and the one with the greatest MaxTime holds its
	// newest sample; b's neighbour in ID order must not leak into a.
	require.NoError(t, s.Put("t", []SeriesChunks{
		seriesOf(a, xorChunk(t, 0, 10, 1000), xorChunk(t, 5000, 20, 1000)),
		seriesOf(b, xorChunk(t, 100_000, 3, 1000)),
	}))
	require.NoError(t, s.Put("other", []SeriesChunks{seriesOf(a, xorChunk(t, 900_000, 1, 1000))}))

	got := map[int]sample{}
	missing := labels.FromStrings("__name__", "missing")
	require.NoError(t, s.LastSamples("t", []labels.Labels{missing, a, b, labels.FromStrings("__name__", "b", "empty", "")}, func(k int, smp Sample) {
		got[k] = sample{smp.T, smp.V}
	}))
	require.Equal(t, map[int]sample{
		1: {24000, 5000 + 19.0/2},
		2: {102000, 100_001},
		3: {102000, 100_001},
	}, got)
	require.NoError(t, s.LastSamples("nobody", []labels.Labels{a}, func(int, Sample) { t.Fatal("unknown tenant has samples") }))

	f := func(ls labels.Labels, ts int64, want float64, wantFound bool) {
		t.Helper()
		smp, found, err := s.SampleAt("t", ls, ts)
		require.NoError(t, err)
		require.Equal(t, wantFound, found)
		require.Equal(t, want, smp.V)
	}
	f(a, 0, 0, true)
	f(a, 3000, 1.5, true)
	f(a, 9000, 4.5, true) // in both chunks: the one with the smaller MaxTime wins
	f(a, 24000, 5000+19.0/2, true)
	f(a, 3500, 0, false)
	f(a, 25000, 0, false)
	f(a, -1, 0, false)
	f(b, 101000, 100_000.5, true)
	f(missing, 0, 0, false)
}
