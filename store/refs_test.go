package store

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// Refs names what Select returns, in the same order, without chunks;
// ChunksOf reads them back by ID or by labels, and a series not stored,
// out of range or of an unknown tenant reads as empty.
func TestRefsAndChunksOfReadWhatSelectReturns(t *testing.T) {
	s := openTest(t, testOptions(t))
	// Written in reverse label order, so ID order is not label order.
	for _, name := range []string{"c", "b", "a"} {
		require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(labels.FromStrings("__name__", name), xorChunk(t, 0, 5, 1))}))
	}
	want, err := s.Select("t1", 0, 10)
	require.NoError(t, err)
	refs, err := s.Refs("t1", 0, 10, nil, Known{})
	require.NoError(t, err)
	require.Len(t, refs, 3)
	for k, r := range refs {
		require.Equal(t, want[k].Labels, r.Labels)
		require.NotZero(t, r.ID)
	}

	byLabels := []SeriesRef{{Labels: refs[0].Labels}, refs[1], {Labels: labels.FromStrings("__name__", "missing")}, refs[2]}
	got, err := s.ChunksOf("t1", 0, 10, byLabels)
	require.NoError(t, err)
	require.Equal(t, []SeriesChunks{want[0], want[1], {}, want[2]}, got)

	got, err = s.ChunksOf("t1", 5, 10, refs)
	require.NoError(t, err)
	require.Equal(t, make([]SeriesChunks, 3), got, "no chunk in range")
	got, err = s.ChunksOf("unknown", 0, 10, refs)
	require.NoError(t, err)
	require.Equal(t, make([]SeriesChunks, 3), got)
	ids := map[string]uint64{}
	for _, r := range refs {
		ids[r.Labels.Get("__name__")] = r.ID
	}
	refs, err = s.Refs("t1", 0, 10, func(ls labels.Labels) bool { return ls.Get("__name__") != "c" }, Known{})
	require.NoError(t, err)
	require.Len(t, refs, 2, "keep")

	// A series known is left out; known learns its ID.
	var knownID uint64
	refs, err = s.Refs("t1", 0, 10, nil, Known{Labels: func(id uint64, ls labels.Labels) bool {
		if ls.Get("__name__") == "b" {
			knownID = id
			return true
		}
		return false
	}})
	require.NoError(t, err)
	require.Equal(t, []SeriesRef{{ID: ids["a"], Labels: labels.FromStrings("__name__", "a")}, {ID: ids["c"], Labels: labels.FromStrings("__name__", "c")}}, refs)
	require.Equal(t, ids["b"], knownID)
}
