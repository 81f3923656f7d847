package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// fillUpgradeFixture writes the data of testdata/store-v5.db.gz: two
// tenants, series with ordinary labels and with the bytes the index must
// tell apart (0x00 in values, a value that extends another, UTF-8 names),
// chunks over three partitions, the first two compacted, a deletion, and
// series retention emptied. Version 5 (commit 3d3ea58) wrote the file
// with this function; the test of the upgrade writes the same data with
// the current version and compares every answer. It uses only the API
// both versions have, so that it can write the file again from that
// commit (see TestOpenUpgradesVersion5File).
func fillUpgradeFixture(t testing.TB, st *Store) {
	t.Helper()
	odd := []labels.Labels{
		labels.FromStrings("__name__", "odd", "v", "a"),
		labels.FromStrings("__name__", "odd", "v", "a\x00b"),
		labels.FromStrings("__name__", "odd", "v", "a\x00"),
		labels.FromStrings("__name__", "odd", "v", "ab"),
		labels.FromStrings("__name__", "odd", "名前", "値"),
		labels.FromStrings("__name__", "odd", "v", "\x00"),
	}
	for _, tenant := range []string{"a", "b"} {
		for p := range 3 {
			var batch []SeriesChunks
			for k := range 96 {
				if tenant == "b" && k%3 == 0 {
					continue
				}
				ls := labels.FromStrings("__name__", fmt.Sprintf("m%d", k%5), "instance", fmt.Sprintf("i%d", k/10), "job", "j", "k", fmt.Sprint(k))
				// Each series' chunks end in partition p: two of 120
				// samples 15 s apart, the last ending before the next.
				var cs []Chunk
				for c := range 2 {
					cs = append(cs, stepChunk(t, int64(p)*activeWidth+int64(c+1)*1800_000-1, 120, 15_000))
				}
				batch = append(batch, seriesOf(ls, cs...))
			}
			for i, ls := range odd {
				batch = append(batch, seriesOf(ls, stepChunk(t, int64(p)*activeWidth+int64(i+1)*600_000, 30, 10_000)))
			}
			require.NoError(t, st.Put(tenant, batch))
		}
	}
	// Series that only the first partition holds, which retention empties.
	var gone []SeriesChunks
	for k := range 20 {
		gone = append(gone, seriesOf(labels.FromStrings("__name__", "gone", "k", fmt.Sprint(k)), stepChunk(t, 600_000, 20, 15_000)))
	}
	require.NoError(t, st.Put("a", gone))
	_, err := st.Compact(context.Background(), 2*activeWidth)
	require.NoError(t, err)
	require.NoError(t, st.AddTombstone("a", Tombstone{MinTime: activeWidth / 2, MaxTime: activeWidth + activeWidth/2, Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "instance", "i[12]")}}))
	require.NoError(t, st.AddTombstone("b", Tombstone{MinTime: 0, MaxTime: 3 * activeWidth, Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "k", "7")}}))
	// Retention drops the first partition, and with it the series only it
	// held, and applies the deletions.
	_, err = st.ApplyRetention(time.UnixMilli(activeWidth+3600_000), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
}

// upgradeFixtureMatchers are the selects the upgrade test compares.
func upgradeFixtureMatchers() [][]*labels.Matcher {
	eq := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchEqual, n, v) }
	re := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchRegexp, n, v) }
	return [][]*labels.Matcher{
		nil,
		{eq("__name__", "m1")},
		{eq("__name__", "m1"), eq("instance", "i3")},
		{re("instance", "i1|i4"), labels.MustNewMatcher(labels.MatchNotEqual, "__name__", "m2")},
		{re("k", "1.*")},
		{eq("v", "a")},
		{eq("v", "a\x00b")},
		{eq("v", "a\x00")},
		{eq("v", "\x00")},
		{re("v", "a.*")},
		{eq("名前", "値")},
		{eq("__name__", "gone")},
		{eq("k", "7")},
		{labels.MustNewMatcher(labels.MatchNotRegexp, "job", "j")},
	}
}
