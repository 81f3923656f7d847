package ingester

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
)

func (ti *testIngester) deleteSeries(t *testing.T, tenantID string, mint, maxt, now int64, ms ...*labels.Matcher) error {
	t.Helper()
	_, err := ti.client.DeleteSeries(ctxFor(tenantID), &ingesterpb.DeleteSeriesRequest{
		Matchers: ingesterpb.FromMatchers(ms), StartMs: mint, EndMs: maxt, NowMs: now,
	})
	return err
}

func (ti *testIngester) seriesNames(t *testing.T, tenantID string, start, end int64) []string {
	t.Helper()
	resp, err := ti.client.LabelValues(ctxFor(tenantID), &ingesterpb.LabelValuesRequest{Name: "__name__", StartMs: start, EndMs: end})
	require.NoError(t, err)
	return resp.Values
}

func secondsIn(from, to int) []int64 {
	var out []int64
	for k := from; k <= to; k++ {
		out = append(out, int64(k)*1000)
	}
	return out
}

// A deletion hides its samples from memory and store alike, in the middle
// of chunks too, only for the matching series and tenant, and keeps doing
// so after a crash (the WAL replays them into memory) and after a graceful
// restart (everything flushed).
func TestDeleteSeriesHidesSamplesAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	require.NoError(t, ti.push(t, "a", series("up", 0, 25), series("keep", 0, 25)))
	ti.flush(false) // two chunks of 10 stored, 5 samples in memory
	require.NoError(t, ti.push(t, "a", series("up", 25, 10)))
	require.NoError(t, ti.push(t, "b", series("up", 0, 30)))

	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	// 5s..27s: part of the first stored chunk, all of the second, and
	// part of memory.
	require.NoError(t, ti.deleteSeries(t, "a", 5000, 27000, 100_000, up))
	want := append(secondsIn(0, 4), secondsIn(28, 34)...)
	check := func() {
		t.Helper()
		got := ti.samples(t, "a")
		require.Equal(t, want, got["up"])
		require.Equal(t, secondsIn(0, 24), got["keep"])
		require.Equal(t, secondsIn(0, 29), ti.samples(t, "b")["up"], "another tenant's series of the same name")
	}
	check()
	// A series wholly deleted in a range is not in that range's series.
	require.Equal(t, []string{"keep"}, ti.seriesNames(t, "a", 10_000, 20_000))
	require.Equal(t, []string{"keep", "up"}, ti.seriesNames(t, "a", 0, 20_000))

	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig())
	check()
	ti.stop(t)
	ti = newTestIngester(t, dir, testConfig())
	defer ti.stop(t)
	check()
}

// storedChunks is how many chunks of each series the tenant's store holds.
func (ti *testIngester) storedChunks(t *testing.T, tenantID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := ti.st.SelectBatches(tenantID, math.MinInt64, math.MaxInt64, 100, nil, func(scs []chunks.SeriesChunks) error {
		for _, sc := range scs {
			out[sc.Labels.Get("__name__")] = len(sc.Chunks)
		}
		return nil
	}, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	require.NoError(t, err)
	return out
}

// A deletion frees the space of the chunks wholly inside it: those stored
// are deleted at once (the retention pass it wakes), those in memory are
// released at their flush without being stored. A chunk it cuts into
// stays, its other samples visible.
func TestDeleteSeriesFreesChunks(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("up", 0, 35), series("keep", 0, 35)))
	ti.flush(false) // chunks [0,9], [10,19], [20,29] stored; 5 samples in memory
	require.Equal(t, map[string]int{"up": 3, "keep": 3}, ti.storedChunks(t, "a"))

	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	require.NoError(t, ti.deleteSeries(t, "a", 5000, 100_000, 100_000, up))
	require.Eventually(t, func() bool { return ti.storedChunks(t, "a")["up"] == 1 }, 10*time.Second, 10*time.Millisecond,
		"the deletion wakes the pass that deletes the two chunks it covers")
	ti.flush(true)
	require.Equal(t, map[string]int{"up": 1, "keep": 4}, ti.storedChunks(t, "a"), "the head chunk it covers is never stored")
	require.Equal(t, secondsIn(0, 4), ti.samples(t, "a")["up"])
	require.Equal(t, secondsIn(0, 34), ti.samples(t, "a")["keep"])
}

// A deletion without an end hides what was written before it, not what
// comes later: it ends at the newer of the querier's clock and the
// tenant's newest sample.
func TestDeleteSeriesEndsAtNow(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("up", 0, 20)))
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	// The querier's clock says 10s; the newest sample is at 19s.
	require.NoError(t, ti.deleteSeries(t, "a", math.MinInt64, math.MaxInt64, 10_000, up))
	require.NoError(t, ti.push(t, "a", series("up", 20, 5)))
	require.Equal(t, secondsIn(20, 24), ti.samples(t, "a")["up"])
}

// An open deletion ends at the newest sample of all the series it
// selects: a future-dated sample one of them holds is deleted (the usual
// reason to delete), and so are samples other selected series get later
// with times up to it (at most the creation grace period ahead, 10 minutes
// by default). Clamping to the request's time instead would leave the
// future-dated sample; clamping each series to its own newest sample, as
// Prometheus does, would need a tombstone per series (docs/deletion.md).
func TestDeleteSeriesEndsAtNewestSelectedSample(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	// "now" is 10s; the selected series "skewed" holds a sample at 600s.
	require.NoError(t, ti.push(t, "a", series("up", 0, 10), onePush("skewed", 600_000, 600), series("other", 0, 10)))
	sel := labels.MustNewMatcher(labels.MatchRegexp, "__name__", "up|skewed")
	require.NoError(t, ti.deleteSeries(t, "a", math.MinInt64, math.MaxInt64, 10_000, sel))
	require.NoError(t, ti.push(t, "a", series("up", 11, 10), series("up", 601, 5), series("other", 11, 10)))
	got := ti.samples(t, "a")
	require.Empty(t, got["skewed"], "the future-dated sample is deleted")
	require.Equal(t, secondsIn(601, 605), got["up"], "later writes up to the newest selected sample are hidden, after it kept")
	require.Equal(t, append(secondsIn(0, 9), secondsIn(11, 20)...), got["other"], "a series not selected is untouched")
}

// Bad deletions are refused and change nothing.
func TestDeleteSeriesRefusesBadRequests(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("up", 0, 5)))
	require.ErrorContains(t, ti.deleteSeries(t, "a", 0, 10_000, 10_000), "no matchers")
	_, err := ti.client.DeleteSeries(ctxFor("a"), &ingesterpb.DeleteSeriesRequest{
		Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_RE, Name: "__name__", Value: "("}}, EndMs: 10_000, NowMs: 10_000,
	})
	require.Error(t, err)
	_, err = ti.client.DeleteSeries(t.Context(), &ingesterpb.DeleteSeriesRequest{})
	require.Error(t, err, "no tenant")
	require.Equal(t, secondsIn(0, 4), ti.samples(t, "a")["up"])
}

// A tenant's tombstones are bounded, each read checks them all.
func TestDeleteSeriesLimit(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("up", 0, 5)))
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	for k := range int64(maxTombstones) {
		require.NoError(t, ti.deleteSeries(t, "a", -k, -k, 10_000, up))
	}
	require.NoError(t, ti.deleteSeries(t, "a", 0, 0, 10_000, up), "a repeated deletion is stored once, so not refused")
	require.Len(t, ti.deleted.tombstones("a"), maxTombstones)
	require.ErrorContains(t, ti.deleteSeries(t, "a", 1000, 1000, 10_000, up), "deletions")
	require.Equal(t, secondsIn(1, 4), ti.samples(t, "a")["up"])
	require.NoError(t, ti.deleteSeries(t, "b", 1000, 1000, 10_000, up), "another tenant is not limited by a's")
}

// The generation only rises, and survives a restart.
func TestDeletionGenerationRises(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	gen := func(raise int64) int64 {
		resp, err := ti.client.DeletionGeneration(ctxFor("a"), &ingesterpb.DeletionGenerationRequest{RaiseTo: raise})
		require.NoError(t, err)
		return resp.Generation
	}
	require.Equal(t, int64(0), gen(0))
	require.Equal(t, int64(7), gen(7))
	// A raiser whose clock is behind the last one's still moves it on:
	// every completed deletion must change the caches' keys.
	require.Equal(t, int64(8), gen(3))
	require.Equal(t, int64(8), gen(0))
	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig())
	defer ti.stop(t)
	require.Equal(t, int64(8), gen(0))
}

// A leaving ingester does not hand deleted samples over: its successor may
// have joined after the deletion and hold no tombstone.
func TestHandoverLeavesDeletedSamplesBehind(t *testing.T) {
	from := newTestIngester(t, t.TempDir(), testConfig())
	defer from.stop(t)
	to := newTestIngester(t, t.TempDir(), testConfig())
	defer to.stop(t)

	require.NoError(t, from.push(t, "team", series("m", 1, 25), series("gone", 1, 25)))
	require.NoError(t, from.deleteSeries(t, "team", 5000, 14_000, 100_000, nameM))
	require.NoError(t, from.deleteSeries(t, "team", math.MinInt64, math.MaxInt64, 100_000, labels.MustNewMatcher(labels.MatchEqual, "__name__", "gone")))
	r := testRing(1, map[string]member{
		"from": {addr: from.addr, state: ringpb.State_LEAVING, tokens: []uint32{1<<31 + 1}},
		"to":   {addr: to.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
	})
	require.NoError(t, from.Handover(ctxFor("team"), from.addr, r, from.pool))
	got := to.samples(t, "team")
	require.Equal(t, append(secondsIn(1, 4), secondsIn(15, 25)...), got["m"])
	require.NotContains(t, got, "gone")
}

func TestTrimDeleted(t *testing.T) {
	for _, c := range []struct {
		ivs          []interval
		start, end   int64
		wantS, wantE int64
		wantOK       bool
	}{
		{nil, 0, 10, 0, 10, true},
		{[]interval{{math.MinInt64, 100}}, math.MinInt64, math.MaxInt64, 101, math.MaxInt64, true},
		{[]interval{{math.MinInt64, 100}}, 0, 50, 0, 0, false},
		{[]interval{{5, 10}, {0, 4}, {20, 30}}, 0, 25, 11, 19, true},
		{[]interval{{3, 6}}, 0, 10, 0, 10, true},
		{[]interval{{0, math.MaxInt64}}, 5, 7, 0, 0, false},
	} {
		s, e, ok := trimDeleted(c.ivs, c.start, c.end)
		require.Equal(t, c.wantOK, ok, "%v [%d, %d]", c.ivs, c.start, c.end)
		if ok {
			require.Equal(t, [2]int64{c.wantS, c.wantE}, [2]int64{s, e}, "%v [%d, %d]", c.ivs, c.start, c.end)
		}
	}
}
