package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// forceFullWalk makes every retention pass of tenant walk all its series,
// as for a file from before the active index.
func forceFullWalk(t *testing.T, st *Store, tenant string) {
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTenants).Bucket([]byte(tenant)).Put(keyUnlistedBefore, timeKey(math.MaxInt64))
	}))
}

// TestRetentionOfListedSeriesAsAFullWalk: retention that visits only the
// series the active index and the postings name deletes what a walk of
// every series deletes, pass after pass, with churn, long chunks, late
// chunks into old partitions, compaction and tombstones.
func TestRetentionOfListedSeriesAsAFullWalk(t *testing.T) {
	listed, full := openTest(t, testOptions(t)), openTest(t, testOptions(t))
	rng := rand.New(rand.NewPCG(3, 4))
	put := func(batch []SeriesChunks) {
		require.NoError(t, listed.Put("t", batch))
		require.NoError(t, full.Put("t", batch))
	}
	// Ten periods of churn: each partition's pods are new.
	for p := range 10 {
		var batch []SeriesChunks
		for k := range 30 {
			ls := labels.FromStrings("__name__", fmt.Sprintf("m%d", k%3), "pod", fmt.Sprintf("p%d-%d", p, k))
			batch = append(batch, seriesOf(ls, stepChunk(t, int64(p)*activeWidth+int64(1+rng.IntN(7000))*1000, 20, 1000)))
		}
		// A series that lives across all of them, and one whose single
		// chunk spans many partitions.
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "always"), stepChunk(t, int64(p)*activeWidth+5000, 5, 1000)))
		if p == 2 {
			// Listed as wide: it overlaps more than maxActivePartitions.
			batch = append(batch, seriesOf(labels.FromStrings("__name__", "long"), stepChunk(t, 3*activeWidth+5, 2, 103*activeWidth)))
		}
		put(batch)
	}
	forceFullWalk(t, full, "t")
	for step, cutoff := range []int64{activeWidth / 2, 2*activeWidth + 1, 3 * activeWidth, 5*activeWidth + 7, 7 * activeWidth, 11 * activeWidth} {
		if step == 2 {
			for _, st := range []*Store{listed, full} {
				_, err := st.Compact(context.Background(), 6*activeWidth)
				require.NoError(t, err)
			}
		}
		if step == 3 {
			// A late chunk into a partition retention already passed, and
			// a tombstone over a label pair.
			put([]SeriesChunks{seriesOf(labels.FromStrings("__name__", "late"), stepChunk(t, activeWidth+10, 3, 1))})
			for _, st := range []*Store{listed, full} {
				require.NoError(t, st.AddTombstone("t", Tombstone{MinTime: 0, MaxTime: 9 * activeWidth, Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "m1")}}))
			}
		}
		now := time.UnixMilli(cutoff + 3600_000)
		keep := func(string) time.Duration { return time.Hour }
		nl, err := listed.ApplyRetention(now, keep)
		require.NoError(t, err)
		nf, err := full.ApplyRetention(now, keep)
		require.NoError(t, err)
		require.Equal(t, nf, nl, "chunks deleted at cutoff %d", cutoff)
		want, err := full.Select("t", math.MinInt64, math.MaxInt64)
		require.NoError(t, err)
		got, err := listed.Select("t", math.MinInt64, math.MaxInt64)
		require.NoError(t, err)
		require.Equal(t, want, got, "cutoff %d", cutoff)
		ws, err := full.Series("t", math.MinInt64, math.MaxInt64, nil)
		require.NoError(t, err)
		gs, err := listed.Series("t", math.MinInt64, math.MaxInt64, nil)
		require.NoError(t, err)
		require.Equal(t, ws, gs)
	}
	require.Zero(t, testutil.ToFloat64(listed.m.retentionVisited.WithLabelValues("all")))
	require.Positive(t, testutil.ToFloat64(full.m.retentionVisited.WithLabelValues("all")))
}

// TestRetentionVisitsTheSeriesOfOldPartitions is issue 12's "no full
// scan": with 50 periods of churn, a retention pass looks at the series of
// the partitions it drops, not every series the tenant had.
func TestRetentionVisitsTheSeriesOfOldPartitions(t *testing.T) {
	st := openTest(t, testOptions(t))
	const perPeriod = 100
	visited := func() float64 { return testutil.ToFloat64(st.m.retentionVisited.WithLabelValues("listed")) }
	keep := func(string) time.Duration { return 4 * time.Hour }
	for p := range 50 {
		var batch []SeriesChunks
		for k := range perPeriod {
			ls := labels.FromStrings("__name__", "m", "pod", fmt.Sprintf("p%d-%d", p, k))
			batch = append(batch, seriesOf(ls, stepChunk(t, int64(p)*activeWidth+3600_000, 10, 1000)))
		}
		require.NoError(t, st.Put("t", batch))
		before := visited()
		_, err := st.ApplyRetention(time.UnixMilli(int64(p+1)*activeWidth), keep)
		require.NoError(t, err)
		// The pass looks at the partition it drops and the one holding
		// its cutoff, whatever the history.
		require.LessOrEqual(t, visited()-before, float64(2*perPeriod), "period %d", p)
	}
	got, err := st.Series("t", math.MinInt64, math.MaxInt64, nil)
	require.NoError(t, err)
	require.Len(t, got, 2*perPeriod, "two periods within 4 hours")
	require.Zero(t, testutil.ToFloat64(st.m.retentionVisited.WithLabelValues("all")))
}

// A file upgraded from before the active index walks every series until
// a pass with a cutoff past unlisted_before has deleted what the index
// does not list; then retention visits listed series only.
func TestRetentionWalksAllUntilUnlistedChunksAreGone(t *testing.T) {
	st, _ := openVersion5Fixture(t)
	var unlisted []byte
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketTenants).Bucket([]byte("a"))
		unlisted = tb.Get(keyUnlistedBefore)
		// As a version 1 file's upgrade leaves it.
		return tb.Put(keyUnlistedBefore, timeKey(2*activeWidth))
	}))
	require.NotNil(t, unlisted, "the fixture's retention moved active_from: marked at upgrade")
	walked := func() float64 { return testutil.ToFloat64(st.m.retentionVisited.WithLabelValues("all")) }
	_, err := st.ApplyRetention(time.UnixMilli(activeWidth+3600_000+1), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	require.Positive(t, walked())
	at := walked()
	_, err = st.ApplyRetention(time.UnixMilli(2*activeWidth+3600_000), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	require.Greater(t, walked(), at, "still walked: the cutoff reached unlisted_before only now")
	at = walked()
	_, err = st.ApplyRetention(time.UnixMilli(2*activeWidth+3600_000+1), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		require.Nil(t, tx.Bucket(bucketTenants).Bucket([]byte("a")).Get(keyUnlistedBefore))
		return nil
	}))
	require.Equal(t, at, walked(), "tenant a walks only listed series")
}

// A series retention deletes leaves the wide list too, which no partition
// drop would ever shorten.
func TestRetentionRemovesDeletedSeriesFromTheWideList(t *testing.T) {
	st := openTest(t, testOptions(t))
	require.NoError(t, st.Put("t", []SeriesChunks{
		seriesOf(labels.FromStrings("__name__", "long"), stepChunk(t, 3*activeWidth, 2, 100*activeWidth)),
		seriesOf(labels.FromStrings("__name__", "recent"), stepChunk(t, 20*activeWidth, 2, 1000)),
	}))
	wide := func() []uint64 {
		var ids []uint64
		require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
			var err error
			ids, _, err = idSet{tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketActive).Bucket(bucketWide), nil}.appendTo(nil, -1)
			return err
		}))
		return ids
	}
	require.Len(t, wide(), 1)
	_, err := st.ApplyRetention(time.UnixMilli(10*activeWidth), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	require.Empty(t, wide())
}

// A damaged unlisted_before is never taken as passed: the walk of every
// series goes on.
func TestDamagedUnlistedBeforeKeepsTheFullWalk(t *testing.T) {
	st := openTest(t, testOptions(t))
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(labels.FromStrings("__name__", "m"), stepChunk(t, 20*activeWidth, 2, 1000))}))
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTenants).Bucket([]byte("t")).Put(keyUnlistedBefore, []byte{1, 2})
	}))
	_, err := st.ApplyRetention(time.UnixMilli(10*activeWidth), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		require.NotNil(t, tx.Bucket(bucketTenants).Bucket([]byte("t")).Get(keyUnlistedBefore))
		return nil
	}))
	require.Positive(t, testutil.ToFloat64(st.m.retentionVisited.WithLabelValues("all")))
}
