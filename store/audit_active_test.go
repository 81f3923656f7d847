package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// auditFormat2WithoutIndex writes a format 2 file as the binary before the
// active index did (a99f140..HEAD~1 already wrote version 2, with the
// deletions bucket but no tenants/<t>/active and no active_from): 20
// series with chunks in partition 0.
func auditFormat2WithoutIndex(t *testing.T) Options {
	t.Helper()
	opts := testOptions(t)
	st, err := Open(opts, nil, nil)
	require.NoError(t, err)
	var batch []SeriesChunks
	for k := range 20 {
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "old", "pod", fmt.Sprint(k)), xorChunk(t, 0, 5, 1000)))
	}
	require.NoError(t, st.Put("t", batch))
	require.NoError(t, st.Close())
	db, err := bbolt.Open(opts.Path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		// As the binary before the active index wrote it: version 2,
		// no active bucket, no active_from.
		if err := tx.Bucket(bucketMeta).Put(keyFormatVersion, []byte{0, 0, 0, 2}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTenants).Bucket([]byte("t")).Delete(keyActiveFrom); err != nil {
			return err
		}
		return tx.Bucket(bucketTenants).Bucket([]byte("t")).DeleteBucket(bucketActive)
	}))
	require.NoError(t, db.Close())
	return opts
}

// A format 2 file written before the active index existed has no active
// bucket and no active_from, which reads as "indexed from MinInt64". The
// first Put (or retention pass: retainBatch opens a tenantWriter, which
// creates the active bucket) makes the reader trust an index that lists
// none of the chunks already stored: selects then miss them all.
func TestAuditActivePreIndexFormat2FileAfterPut(t *testing.T) {
	opts := auditFormat2WithoutIndex(t)
	st := openTest(t, opts)
	got, err := st.Select("t", 0, 10_000)
	require.NoError(t, err)
	require.Len(t, got, 20, "before any write, no active bucket: the postings answer")

	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(labels.FromStrings("__name__", "new"), xorChunk(t, 3*activeWidth, 5, 1000))}))
	got, err = st.Select("t", 0, 10_000)
	require.NoError(t, err)
	require.Len(t, got, 20, "the chunks stored before the upgrade must still be selected")
	ls, err := st.Series("t", 0, 10_000, nil)
	require.NoError(t, err)
	require.Len(t, ls, 20)
}

func TestAuditActivePreIndexFormat2FileAfterRetention(t *testing.T) {
	opts := auditFormat2WithoutIndex(t)
	st := openTest(t, opts)
	// A retention pass that deletes nothing (cutoff far before the data).
	_, err := st.ApplyRetention(time.UnixMilli(10_000), func(string) time.Duration { return 1000 * time.Hour })
	require.NoError(t, err)
	got, err := st.Select("t", 0, 10_000)
	require.NoError(t, err)
	require.Len(t, got, 20, "a no-op retention pass must not hide stored chunks")
}

// Retention keeps a chunk that ends at or after the cutoff, whole, but
// drops the active partitions before the cutoff: a select over a range
// wholly before the cutoff, short enough to use the index, misses the
// chunk, while SelectBatches (and the same select when the index does not
// pay, or over a longer range) returns it. chunks.Store promises Series and
// Refs return "the series SelectBatches would".
func TestAuditActiveRetentionSelectDisagreesWithSelectBatches(t *testing.T) {
	st := openTest(t, testOptions(t))
	straddle := labels.FromStrings("__name__", "straddle")
	batch := []SeriesChunks{seriesOf(straddle, xorChunk(t, 0, 11, activeWidth))} // [0, 10W]
	for k := range 20 {
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "recent", "pod", fmt.Sprint(k)), xorChunk(t, 12*activeWidth, 5, 1000)))
	}
	require.NoError(t, st.Put("t", batch))
	cutoff := 5 * activeWidth
	_, err := st.ApplyRetention(time.UnixMilli(cutoff+3_600_000), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)

	mint, maxt := activeWidth, 2*activeWidth-1
	var viaBatches []string
	require.NoError(t, st.SelectBatches("t", mint, maxt, 100, nil, func(b []SeriesChunks) error {
		for _, sc := range b {
			viaBatches = append(viaBatches, sc.Labels.String())
		}
		return nil
	}))
	require.Equal(t, []string{straddle.String()}, viaBatches, "the kept chunk overlaps the range")
	ls, err := st.Series("t", mint, maxt, nil)
	require.NoError(t, err)
	require.Equal(t, viaBatches, labelStrings(ls), "Series returns the series SelectBatches would")
	refs, err := st.Refs("t", mint, maxt, nil, Known{})
	require.NoError(t, err)
	require.Len(t, refs, 1, "Refs returns the series SelectBatches would")
}

// A partition key of the active index holding a value instead of a bucket
// (damage) is skipped silently: the series listed only there are missed,
// with no error. Elsewhere the store reports damage as errCorrupt or reads
// it the safe way (a damaged active_from disables the index).
func TestAuditActiveDamagedPartitionSilentlyMissed(t *testing.T) {
	opts := testOptions(t)
	st, err := Open(opts, nil, nil)
	require.NoError(t, err)
	batch := []SeriesChunks{seriesOf(labels.FromStrings("__name__", "x"), xorChunk(t, 0, 5, 1000))}
	for k := range 20 {
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "recent", "pod", fmt.Sprint(k)), xorChunk(t, 12*activeWidth, 5, 1000)))
	}
	require.NoError(t, st.Put("t", batch))
	require.NoError(t, st.Close())
	db, err := bbolt.Open(opts.Path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		active := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketActive)
		if err := active.DeleteBucket(timeKey(0)); err != nil {
			return err
		}
		return active.Put(timeKey(0), []byte{1})
	}))
	require.NoError(t, db.Close())
	st = openTest(t, opts)
	got, err := st.Select("t", 0, 10_000)
	if err == nil {
		require.Len(t, got, 1, "a damaged partition must be an error or fall back, not a silent miss")
	}
}

// Pre-existing (not the active index): FORMAT.md says series IDs are never
// reused, but retention deletes a tenant's bucket once it has no series,
// and bbolt's sequence goes with it: the next series gets ID 1 again. A
// ref taken before (Refs, then ChunksOf in a later transaction, as the
// ingester's QueryStream does) then reads another series' chunks.
func TestAuditSeriesIDReusedAfterTenantDeletion(t *testing.T) {
	st := openTest(t, testOptions(t))
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(labels.FromStrings("__name__", "gone"), xorChunk(t, 0, 3, 1000))}))
	refs, err := st.Refs("t", 0, 10_000, nil, Known{})
	require.NoError(t, err)
	require.Len(t, refs, 1)
	_, err = st.ApplyRetention(time.UnixMilli(10*activeWidth), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(labels.FromStrings("__name__", "other"), xorChunk(t, 0, 3, 1000))}))
	got, err := st.ChunksOf("t", 0, 10_000, refs)
	require.NoError(t, err)
	require.Empty(t, got[0].Chunks, "series ID %d was reused by %s", refs[0].ID, got[0].Labels)
}
