package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// damageActiveList replaces the segment(s) of active partition p with
// one whose gap is 0 (FORMAT.md: damage).
func damageActiveList(t *testing.T, st *Store, p int64) {
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketActive).Bucket(timeKey(p))
		k, _ := b.Cursor().First()
		return b.Put(append([]byte{}, k...), []byte{0})
	}))
}

// Where the active index cannot be trusted, a damaged list included, the
// postings answer (DESIGN.md, "The active index answers as a scan
// would"): a segment's value can fail to decode, where version 5's bare
// keys could not.
func TestDamagedActiveListLeavesSelectsToThePostings(t *testing.T) {
	st := openTest(t, testOptions(t))
	var batch []SeriesChunks
	for k := range 100 {
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "old", "k", fmt.Sprint(k)), xorChunk(t, 1000, 3, 1000)))
	}
	for k := range 5 {
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "recent", "k", fmt.Sprint(k)), xorChunk(t, 12*activeWidth+1000, 3, 1000)))
	}
	require.NoError(t, st.Put("t", batch))
	got, err := st.Select("t", 12*activeWidth, 12*activeWidth+10_000)
	require.NoError(t, err)
	require.Len(t, got, 5)
	damageActiveList(t, st, 12*activeWidth)
	got, err = st.Select("t", 12*activeWidth, 12*activeWidth+10_000)
	require.NoError(t, err, "a damaged active partition must fall back to the postings (DESIGN.md)")
	require.Len(t, got, 5)
}

// A damaged list in one partition's active index is logged, and neither
// it nor the partitions after it stop being compacted: the series it lost
// keep their chunks in the chunks bucket.
func TestDamagedActiveListDoesNotStopCompaction(t *testing.T) {
	st := openTest(t, testOptions(t))
	var batch []SeriesChunks
	for k := range 10 {
		ls := labels.FromStrings("__name__", "m", "k", fmt.Sprint(k))
		batch = append(batch, seriesOf(ls, stepChunk(t, 600_000, 20, 15_000), stepChunk(t, activeWidth+600_000, 20, 15_000)))
	}
	require.NoError(t, st.Put("t", batch))
	damageActiveList(t, st, 0)
	_, err := st.Compact(context.Background(), 2*activeWidth)
	t.Logf("compact: %v", err)
	compacted := false
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		if cold := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold); cold != nil {
			compacted = cold.Bucket(timeKey(activeWidth)) != nil
		}
		return nil
	}))
	require.True(t, compacted, "partition 1, whose index is whole, was not compacted because partition 0's is damaged")
	got, err := st.Select("t", 0, 2*activeWidth)
	require.NoError(t, err)
	require.Len(t, got, 10, "every series, from blocks or the chunks bucket")
	for _, sc := range got {
		require.Len(t, sc.Chunks, 2)
	}
}

// A damaged posting list makes the reads that need it fail with
// errCorrupt (no answer that silently lacks series), while Puts of new
// series with that label pair, and retention, go on.
func TestDamagedPostingListFailsItsReadsAndNothingElse(t *testing.T) {
	st := openTest(t, testOptions(t))
	var batch []SeriesChunks
	for k := range 20 {
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "m", "job", "a", "k", fmt.Sprint(k)), xorChunk(t, 1000, 3, 1000)))
	}
	require.NoError(t, st.Put("t", batch))
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketPostings)
		prefix := postingValuePrefix("job", "a")
		k, _ := b.Cursor().Seek(prefix)
		require.True(t, bytes.HasPrefix(k, prefix))
		return b.Put(bytes.Clone(k), []byte{0})
	}))
	_, err := st.Select("t", 0, 10_000, labels.MustNewMatcher(labels.MatchEqual, "job", "a"))
	require.ErrorIs(t, err, errCorrupt)
	got, err := st.Select("t", 0, 10_000, labels.MustNewMatcher(labels.MatchEqual, "k", "3"))
	require.NoError(t, err)
	require.Len(t, got, 1, "other label pairs answer")
	// New series with the damaged pair are stored and found by others.
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(labels.FromStrings("__name__", "m", "job", "a", "k", "new"), xorChunk(t, 2000, 3, 1000))}))
	got, err = st.Select("t", 0, 10_000, labels.MustNewMatcher(labels.MatchEqual, "k", "new"))
	require.NoError(t, err)
	require.Len(t, got, 1)
	// Retention deletes every series: the damaged pair's removal passes
	// over the segment it cannot read.
	_, err = st.ApplyRetention(time.UnixMilli(3*activeWidth), func(string) time.Duration { return time.Millisecond })
	require.NoError(t, err)
	tenants, err := st.Tenants()
	require.NoError(t, err)
	require.Empty(t, tenants)
}

// An upgrade passes over a damaged entry of the series bucket (logged)
// instead of failing every start of a file it already marked version 6,
// which the previous binary refuses.
func TestUpgradePassesOverDamagedSeriesEntries(t *testing.T) {
	st, opts := openVersion5Fixture(t)
	require.NoError(t, st.Close())
	// Back to version 5, with tenant b not yet upgraded and a damaged key
	// in its series bucket.
	downgradeTenant(t, opts.Path, "b", func(tx *bbolt.Tx) {
		require.NoError(t, tx.Bucket(bucketTenants).Bucket([]byte("b")).Bucket(bucketSeries).Put([]byte{0, 0, 0, 0, 0, 0, 9}, []byte("junk")))
		require.NoError(t, tx.Bucket(bucketMeta).Put(keyFormatVersion, []byte{0, 0, 0, 5}))
	})
	st = openTest(t, opts)
	require.NoError(t, checkVersionOpen(st, formatVersion))
	ls := labels.FromStrings("__name__", "m1", "instance", "i0", "job", "j", "k", "1")
	require.NoError(t, st.Put("b", []SeriesChunks{seriesOf(ls, stepChunk(t, 3*activeWidth+1000, 2, 1000))}))
	got, err := st.Series("b", math.MinInt64, math.MaxInt64, nil, labels.MustNewMatcher(labels.MatchEqual, "k", "1"))
	require.NoError(t, err)
	require.Len(t, got, 1, "the series was found, not created again")
}

func checkVersionOpen(st *Store, want uint32) error {
	return st.db.View(func(tx *bbolt.Tx) error {
		if got := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormatVersion)); got != want {
			return fmt.Errorf("format version %d, want %d", got, want)
		}
		return nil
	})
}
