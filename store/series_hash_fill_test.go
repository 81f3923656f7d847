package store

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// series_by_hash's keys are random, so its pages take bbolt's default
// fill: at 0.9, series created a Put at a time, as the ingester creates
// them, left its pages about 35% used (50,000 series took 1,126 leaf
// pages where the default takes 561). BenchmarkCompaction, whose series
// all come in one Put, does not see it.
func TestSeriesByHashPagesUnderPuts(t *testing.T) {
	st := openTest(t, testOptions(t))
	for b := range 100 {
		var batch []SeriesChunks
		for k := range 500 {
			batch = append(batch, seriesOf(labels.FromStrings("__name__", "m", "job", "x", "k", fmt.Sprint(b*500+k)), xorChunk(t, 1000, 2, 1000)))
		}
		require.NoError(t, st.Put("t", batch))
	}
	var s bbolt.BucketStats
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		s = tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketSeriesByHash).Stats()
		return nil
	}))
	used := float64(s.LeafInuse) / float64(s.LeafAlloc)
	t.Logf("series_by_hash: %d keys, %d leaf pages, %.0f%% used", s.KeyN, s.LeafPageN, 100*used)
	require.GreaterOrEqual(t, used, 0.5, "series_by_hash pages are mostly empty: the fill of 0.9 does not suit random keys")
}
