package store

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// TestLateChunkDuringRetentionIsDeletedLater: a Put that commits between
// a pass's read of its candidates and dropActive, of a chunk already past
// the cutoff (a late flush, a handover, a re-flush after an outage), lists
// its series in a partition the pass would drop: nothing would list that
// chunk any more, and no later pass would visit its series. Puts note the
// oldest chunk they write while a pass runs (retention_late), and
// dropActive keeps that partition for the next pass. The interleaving is
// reproduced by running ApplyRetention's steps for the tenant in order.
func TestLateChunkDuringRetentionIsDeletedLater(t *testing.T) {
	st := openTest(t, testOptions(t))
	const tenant = "t"
	// A recent series keeps the tenant alive.
	require.NoError(t, st.Put(tenant, []SeriesChunks{seriesOf(labels.FromStrings("__name__", "recent"), stepChunk(t, 20*activeWidth, 5, 1000))}))

	cutoff := 5 * activeWidth
	_, err := st.retainTenant(tenant, cutoff, nil)
	require.NoError(t, err)
	// Concurrent Put: a chunk ending in partition [2h, 4h), before the
	// cutoff, of a series with no other chunk.
	require.NoError(t, st.Put(tenant, []SeriesChunks{seriesOf(labels.FromStrings("__name__", "late"), stepChunk(t, activeWidth+10, 3, 1000))}))
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		return dropActive(tx.Bucket(bucketTenants).Bucket([]byte(tenant)), cutoff)
	}))

	// Later passes, each with a cutoff well past the late chunk.
	for _, c := range []int64{6 * activeWidth, 10 * activeWidth, 15 * activeWidth} {
		_, err := st.ApplyRetention(time.UnixMilli(c+int64(time.Hour/time.Millisecond)), func(string) time.Duration { return time.Hour })
		require.NoError(t, err)
	}
	got, err := st.Series(tenant, math.MinInt64, math.MaxInt64, nil)
	require.NoError(t, err)
	require.Equal(t, []string{`{__name__="recent"}`}, labelStrings(got),
		"the late series' only chunk ends 14 partitions before the last cutoff: retention must have deleted it")
}
