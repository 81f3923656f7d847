package store

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// TestLateChunkInATenantCreatedAgainDuringAPass: retention deletes a
// tenant's bucket when its last series goes (retainBatch), and with it the
// retention_late key the pass armed. A Put between that and dropActive
// re-creates the bucket (openTenantWriter) without retention_late, so its
// late chunk is not noted; dropActive then reads no key and drops the
// partition the chunk is listed in. The new bucket has active_from set and
// no unlisted_before, so every later pass walks only listed series: the
// expired chunk and its series stay forever. dropActive now drops nothing
// when retention_late is absent.
func TestLateChunkInATenantCreatedAgainDuringAPass(t *testing.T) {
	st := openTest(t, testOptions(t))
	const tenant = "t"
	// The tenant's only series expires at this pass: retention deletes the bucket.
	require.NoError(t, st.Put(tenant, []SeriesChunks{seriesOf(labels.FromStrings("__name__", "old"), stepChunk(t, activeWidth/2, 3, 1000))}))
	cutoff := 5 * activeWidth
	_, err := st.retainTenant(tenant, cutoff, nil)
	require.NoError(t, err)
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		require.Nil(t, tx.Bucket(bucketTenants).Bucket([]byte(tenant)), "the pass deleted the emptied tenant")
		return nil
	}))
	// Concurrent Put of a late chunk (ending in [2h, 4h), before the
	// cutoff) and a recent one: the tenant is re-created.
	require.NoError(t, st.Put(tenant, []SeriesChunks{
		seriesOf(labels.FromStrings("__name__", "late"), stepChunk(t, activeWidth+10, 3, 1000)),
		seriesOf(labels.FromStrings("__name__", "recent"), stepChunk(t, 20*activeWidth, 3, 1000)),
	}))
	// The rest of ApplyRetention's work for the tenant.
	dropActiveOf(t, st, tenant, cutoff)
	requireLateDeleted(t, st, tenant)
}

// TestOverlappingPassesKeepALateChunksPartition: two ApplyRetention
// calls on one Store (nothing serializes them) share the one
// retention_late key. Pass A arms it, pass B arms it again; both visit the
// tenant's series. A Put then writes a late chunk (noted in
// retention_late). A's dropActive keeps its partition and deletes the key;
// B's dropActive finds no key and drops the partition. No pass will visit
// the series again: its expired chunk stays forever. ApplyRetention now
// holds a lock, and a missing key means that nothing is dropped.
func TestOverlappingPassesKeepALateChunksPartition(t *testing.T) {
	st := openTest(t, testOptions(t))
	const tenant = "t"
	require.NoError(t, st.Put(tenant, []SeriesChunks{seriesOf(labels.FromStrings("__name__", "recent"), stepChunk(t, 20*activeWidth, 5, 1000))}))
	cutoff := 5 * activeWidth
	_, err := st.retainTenant(tenant, cutoff, nil) // pass A's walk
	require.NoError(t, err)
	_, err = st.retainTenant(tenant, cutoff, nil) // pass B's walk
	require.NoError(t, err)
	require.NoError(t, st.Put(tenant, []SeriesChunks{seriesOf(labels.FromStrings("__name__", "late"), stepChunk(t, activeWidth+10, 3, 1000))}))
	dropActiveOf(t, st, tenant, cutoff) // A's
	dropActiveOf(t, st, tenant, cutoff) // B's
	requireLateDeleted(t, st, tenant)
}

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
	dropActiveOf(t, st, tenant, cutoff)

	// Later passes, each with a cutoff well past the late chunk.
	requireLateDeleted(t, st, tenant)
}

// dropActiveOf runs the end of a retention pass for tenant: the drop of
// the active partitions before cutoff.
func dropActiveOf(t *testing.T, st *Store, tenant string, cutoff int64) {
	t.Helper()
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		return dropActive(tx.Bucket(bucketTenants).Bucket([]byte(tenant)), cutoff)
	}))
}

// requireLateDeleted runs three later passes, each with a cutoff well
// past the "late" series' only chunk, and checks that only "recent" is
// left.
func requireLateDeleted(t *testing.T, st *Store, tenant string) {
	t.Helper()
	for _, c := range []int64{6 * activeWidth, 10 * activeWidth, 15 * activeWidth} {
		_, err := st.ApplyRetention(time.UnixMilli(c+int64(time.Hour/time.Millisecond)), func(string) time.Duration { return time.Hour })
		require.NoError(t, err)
	}
	got, err := st.Series(tenant, math.MinInt64, math.MaxInt64, nil)
	require.NoError(t, err)
	require.Equal(t, []string{`{__name__="recent"}`}, labelStrings(got),
		"the late series' only chunk ends 14 partitions before the last cutoff: retention must have deleted it")
}
