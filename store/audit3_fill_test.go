package store

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// TestAudit3FillActiveStore: through Store.Put, as the ingester flushes
// (each flush stores the series whose chunks completed since the last,
// cut at per-series offsets): 8,000 series created in rising ID order by a
// first flush of partition 0, then partition 1 listed by 200 flushes of 40
// random series each. The pages of partition 1's active bucket against
// partition 0's (the same keys, written in rising order).
func TestAudit3FillActiveStore(t *testing.T) {
	const series, flushes = 8000, 200
	st := openTest(t, testOptions(t))
	lss := make([]labels.Labels, series)
	var first []SeriesChunks
	for k := range lss {
		lss[k] = labels.FromStrings("__name__", "m", "i", fmt.Sprintf("%06d", k))
		first = append(first, seriesOf(lss[k], xorChunk(t, 1000, 2, 1000)))
	}
	require.NoError(t, st.Put("t", first))
	order := rand.New(rand.NewPCG(3, 4)).Perm(series)
	per := series / flushes
	for f := range flushes {
		var batch []SeriesChunks
		for _, k := range order[f*per : (f+1)*per] {
			batch = append(batch, seriesOf(lss[k], xorChunk(t, activeWidth+1000, 2, 1000)))
		}
		require.NoError(t, st.Put("t", batch))
	}
	pages := map[int64]int{}
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		active := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketActive)
		for _, p := range []int64{0, activeWidth} {
			s := active.Bucket(timeKey(p)).Stats()
			pages[p] = s.LeafPageN + s.BranchPageN
			t.Logf("partition %d: %d keys, %d pages (%d B)", p/activeWidth, s.KeyN, pages[p], s.LeafAlloc+s.BranchAlloc)
		}
		return nil
	}))
	// With the ID-ordered partition at the same fill: at 1.0 the flush
	// order took 16× its pages (790 against 49), at 0.9 3× (145); at
	// bbolt's default, fewer (66 against 96).
	require.LessOrEqual(t, pages[activeWidth], 2*pages[0], "a partition listed in flush order takes at most twice the pages of one listed in ID order")
}
