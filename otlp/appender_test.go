package otlp

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// Points of one label set go to one series, in the order appended, and
// each series' labels are its own: cut from a shared slab, they must not
// grow into the next series' labels.
func TestAppenderGroupsPointsBySeries(t *testing.T) {
	a := newAppender(1<<20, 2)
	x := labels.FromStrings("__name__", "x", "a", "1")
	y := labels.FromStrings("__name__", "y")
	for k, ls := range []labels.Labels{x, y, x, y, x} {
		_, err := a.Append(0, ls, 0, int64(k), float64(k), nil, nil, storage.AppendV2Options{})
		require.NoError(t, err)
	}
	require.Len(t, a.series, 2)
	require.Len(t, a.series[0].Samples, 3)
	require.Equal(t, []int64{0, 2, 4}, []int64{a.series[0].Samples[0].Timestamp, a.series[0].Samples[1].Timestamp, a.series[0].Samples[2].Timestamp})
	require.Len(t, a.series[1].Samples, 2)
	require.Len(t, a.series[0].Labels, 2)
	require.Equal(t, cap(a.series[0].Labels), len(a.series[0].Labels), "no room to grow into the next series' labels")
	require.Equal(t, "y", a.series[1].Labels[0].Value)
}
