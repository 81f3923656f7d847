package store

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// openVersion5Fixture copies testdata/store-v5.db.gz, which version 5
// wrote with fillUpgradeFixture, and opens the copy.
//
// To write the file again: check out commit 3d3ea58, copy
// upgrade_fixture_test.go there, and save a store filled by
// fillUpgradeFixture (opened with NoSync false, then closed), gzipped.
func openVersion5Fixture(t *testing.T) (*Store, Options) {
	opts := testOptions(t)
	in, err := os.Open("testdata/store-v5.db.gz")
	require.NoError(t, err)
	defer in.Close()
	zr, err := gzip.NewReader(in)
	require.NoError(t, err)
	out, err := os.Create(opts.Path)
	require.NoError(t, err)
	_, err = io.Copy(out, zr)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	require.NoError(t, checkVersion(opts.Path, 5))
	return openTest(t, opts), opts
}

func checkVersion(path string, want uint32) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		if got := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormatVersion)); got != want {
			return fmt.Errorf("format version %d, want %d", got, want)
		}
		return nil
	})
}

// sameAnswers compares every select, series, label name and label value
// the two stores give for the fixture's queries.
func sameAnswers(t *testing.T, want, got *Store) {
	t.Helper()
	for _, tenant := range []string{"a", "b"} {
		for _, ms := range upgradeFixtureMatchers() {
			for _, r := range [][2]int64{{math.MinInt64, math.MaxInt64}, {activeWidth + 1, activeWidth + 600_000}, {2 * activeWidth, 5 * activeWidth}} {
				w, err := want.Select(tenant, r[0], r[1], ms...)
				require.NoError(t, err)
				g, err := got.Select(tenant, r[0], r[1], ms...)
				require.NoError(t, err)
				require.Equal(t, w, g, "tenant %s, %v, %v", tenant, ms, r)
				ws, err := want.Series(tenant, r[0], r[1], nil, ms...)
				require.NoError(t, err)
				gs, err := got.Series(tenant, r[0], r[1], nil, ms...)
				require.NoError(t, err)
				require.Equal(t, ws, gs)
			}
			names, err := want.LabelNames(tenant, math.MinInt64, math.MaxInt64, ms...)
			require.NoError(t, err)
			gotNames, err := got.LabelNames(tenant, math.MinInt64, math.MaxInt64, ms...)
			require.NoError(t, err)
			require.Equal(t, names, gotNames)
			for _, n := range names {
				wv, err := want.LabelValues(tenant, n, math.MinInt64, math.MaxInt64, ms...)
				require.NoError(t, err)
				gv, err := got.LabelValues(tenant, n, math.MinInt64, math.MaxInt64, ms...)
				require.NoError(t, err)
				require.Equal(t, wv, gv, "label %q", n)
			}
		}
	}
}

// TestOpenUpgradesVersion5File opens a file version 5 wrote: it becomes
// version 6 in place, with series_by_hash instead of series_by_labels,
// and answers every query as a store the current version filled with the
// same data; Puts of the same series afterwards find them (no series
// twice), new ones get new IDs, and compaction and retention go on.
func TestOpenUpgradesVersion5File(t *testing.T) {
	old, opts := openVersion5Fixture(t)
	fresh := openTest(t, testOptions(t))
	fillUpgradeFixture(t, fresh)
	sameAnswers(t, fresh, old)
	require.NoError(t, old.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTenants).ForEachBucket(func(name []byte) error {
			tb := tx.Bucket(bucketTenants).Bucket(name)
			require.Nil(t, tb.Bucket(bucketSeriesByLabels), "tenant %s", name)
			require.NotNil(t, tb.Bucket(bucketSeriesByHash), "tenant %s", name)
			return nil
		})
	}))
	require.NoError(t, old.Close())
	require.NoError(t, checkVersion(opts.Path, formatVersion))
	old = openTest(t, opts)

	// The same series again, in a new partition, and new series: their
	// postings join the segments the upgrade left one per ID.
	for _, st := range []*Store{old, fresh} {
		for _, tenant := range []string{"a", "b"} {
			var batch []SeriesChunks
			for k := range 130 {
				ls := labels.FromStrings("__name__", fmt.Sprintf("m%d", k%5), "instance", fmt.Sprintf("i%d", k/10), "job", "j", "k", fmt.Sprint(k))
				batch = append(batch, seriesOf(ls, stepChunk(t, 3*activeWidth+1800_000, 120, 15_000)))
			}
			batch = append(batch, seriesOf(labels.FromStrings("__name__", "odd", "v", "a\x00b"), stepChunk(t, 3*activeWidth+60_000, 5, 1000)))
			require.NoError(t, st.Put(tenant, batch))
		}
		_, err := st.Compact(context.Background(), 4*activeWidth)
		require.NoError(t, err)
	}
	sameAnswers(t, fresh, old)
	all, err := old.Series("a", math.MinInt64, math.MaxInt64, nil)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, ls := range all {
		require.False(t, seen[ls.String()], "series %s twice", ls)
		seen[ls.String()] = true
	}
	for _, st := range []*Store{old, fresh} {
		_, err := st.ApplyRetention(time.UnixMilli(3*activeWidth+1), func(string) time.Duration { return time.Millisecond })
		require.NoError(t, err)
	}
	sameAnswers(t, fresh, old)
}

// downgradeTenant puts tenant's series_by_labels back as version 5 had
// it, in place of series_by_hash, then runs more on the file in the same
// transaction (nil: nothing).
func downgradeTenant(t *testing.T, path, tenant string, more func(tx *bbolt.Tx)) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
		require.NoError(t, tb.DeleteBucket(bucketSeriesByHash))
		byLabels, err := tb.CreateBucket(bucketSeriesByLabels)
		require.NoError(t, err)
		require.NoError(t, tb.Bucket(bucketSeries).ForEach(func(k, v []byte) error { return byLabels.Put(v, k) }))
		if more != nil {
			more(tx)
		}
		return nil
	}))
	require.NoError(t, db.Close())
}

// A crash between tenants' upgrades leaves a version 6 file with a tenant
// still keyed by labels: the next open finishes it.
func TestOpenFinishesAnInterruptedUpgrade(t *testing.T) {
	old, opts := openVersion5Fixture(t)
	require.NoError(t, old.Close())
	downgradeTenant(t, opts.Path, "b", nil)
	st := openTest(t, opts)
	fresh := openTest(t, testOptions(t))
	fillUpgradeFixture(t, fresh)
	sameAnswers(t, fresh, st)
	ls := labels.FromStrings("__name__", "m1", "instance", "i0", "job", "j", "k", "1")
	require.NoError(t, st.Put("b", []SeriesChunks{seriesOf(ls, stepChunk(t, 3*activeWidth+1000, 2, 1000))}))
	got, err := st.Series("b", math.MinInt64, math.MaxInt64, nil, labels.MustNewMatcher(labels.MatchEqual, "k", "1"))
	require.NoError(t, err)
	require.Len(t, got, 1)
}
