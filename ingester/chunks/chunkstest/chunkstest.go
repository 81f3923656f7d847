// Package chunkstest is the conformance suite of chunks.Store: what the
// ingester relies on of any store of completed chunks. An implementation
// passes it by calling Run from its own tests.
package chunkstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
)

// Open opens (or reopens) the implementation's store in dir and returns
// it with the function that closes it.
type Open func(t *testing.T, dir string) (chunks.Store, func() error)

// Restore puts a Backup's copy in dir so that Open(dir) opens it.
type Restore func(t *testing.T, dir string, backup []byte)

// Run runs every case of the contract against stores that open makes.
func Run(t *testing.T, open Open, restore Restore) {
	t.Run("BackupIsConsistentAndRestores", func(t *testing.T) { backupIsConsistentAndRestores(t, open, restore) })
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"SelectByMatchersAndTime", selectByMatchersAndTime},
		{"PutAgainChangesNothing", putAgainChangesNothing},
		{"PutMergesSameEnd", putMergesSameEnd},
		{"RefsAndChunksOfAgreeWithSelect", refsAndChunksOfAgreeWithSelect},
		{"RefsIDsAreNeverReused", refsIDsAreNeverReused},
		{"BatchesAndErrors", batchesAndErrors},
		{"LastSamplesAndSampleAt", lastSamplesAndSampleAt},
		{"TenantsAreIsolated", tenantsAreIsolated},
		{"ReopenKeepsEverything", reopenKeepsEverything},
		{"RetentionDeletesOldChunks", retentionDeletesOldChunks},
		{"HistogramsRoundTrip", histogramsRoundTrip},
		{"PutMergesHistograms", putMergesHistograms},
		{"TombstonesPersistAndExpire", tombstonesPersistAndExpire},
		{"RetentionDeletesTombstonedChunks", retentionDeletesTombstonedChunks},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
		t.Run(c.name+"/Compacted", func(t *testing.T) { c.fn(t, compacting(open)) })
	}
}

// compacting opens stores that compact everything after every Put, so
// that every case also holds of compacted data: Compact changes no read.
func compacting(open Open) Open {
	return func(t *testing.T, dir string) (chunks.Store, func() error) {
		st, closeStore := open(t, dir)
		return compactingStore{t, st}, closeStore
	}
}

type compactingStore struct {
	t *testing.T
	chunks.Store
}

func (c compactingStore) Put(tenant string, batch []chunks.SeriesChunks) error {
	if err := c.Store.Put(tenant, batch); err != nil {
		return err
	}
	_, err := c.Compact(context.Background(), math.MaxInt64)
	require.NoError(c.t, err)
	return nil
}

func openStore(t *testing.T, open Open) chunks.Store {
	st, closeStore := open(t, t.TempDir())
	t.Cleanup(func() { require.NoError(t, closeStore()) })
	return st
}

// xor builds an XOR chunk of n samples from mint, step ms apart, each
// value its timestamp divided by 1000.
func xor(t *testing.T, mint int64, n int, step int64) chunks.Chunk {
	t.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	require.NoError(t, err)
	for k := range n {
		ts := mint + int64(k)*step
		app.Append(0, ts, float64(ts)/1000)
	}
	return chunks.Chunk{MinTime: mint, MaxTime: mint + int64(n-1)*step, Encoding: chunkenc.EncXOR, Data: c.Bytes()}
}

func series(ls labels.Labels, cs ...chunks.Chunk) chunks.SeriesChunks {
	return chunks.SeriesChunks{Labels: ls, Chunks: cs}
}

// selectAll returns what SelectBatches gives, as one slice, runs expanded
// into the chunks they were made from (Expand).
func selectAll(t *testing.T, st chunks.Store, tenant string, mint, maxt int64, ms ...*labels.Matcher) []chunks.SeriesChunks {
	t.Helper()
	var out []chunks.SeriesChunks
	require.NoError(t, st.SelectBatches(tenant, mint, maxt, 100, nil, func(b []chunks.SeriesChunks) error {
		out = append(out, b...)
		return nil
	}, ms...))
	return Expand(t, out, mint, maxt)
}

// chunksOf is ChunksOf with runs expanded (Expand).
func chunksOf(t *testing.T, st chunks.Store, tenant string, mint, maxt int64, refs []chunks.SeriesRef) ([]chunks.SeriesChunks, error) {
	t.Helper()
	got, err := st.ChunksOf(tenant, mint, maxt, refs)
	return Expand(t, got, mint, maxt), err
}

// Expand replaces the runs a store may read (runchunk.Encoding) by the
// chunks they were made from that overlap [mint, maxt]: the suite holds
// every store to the chunks it was given, however it keeps them.
func Expand(t testing.TB, scs []chunks.SeriesChunks, mint, maxt int64) []chunks.SeriesChunks {
	t.Helper()
	for k := range scs {
		cs, err := chunks.ExpandRuns(scs[k].Chunks, mint, maxt)
		require.NoError(t, err)
		scs[k].Chunks = cs
	}
	return scs
}

func names(scs []chunks.SeriesChunks) []string {
	out := []string{}
	for _, sc := range scs {
		out = append(out, sc.Labels.String())
	}
	return out
}

func samplesOf(t *testing.T, sc chunks.SeriesChunks) []chunks.Sample {
	t.Helper()
	var out []chunks.Sample
	for _, c := range sc.Chunks {
		s, err := c.Samples()
		require.NoError(t, err)
		out = append(out, s...)
	}
	return out
}

var (
	upA   = labels.FromStrings("__name__", "up", "job", "a")
	upB   = labels.FromStrings("__name__", "up", "job", "b")
	downA = labels.FromStrings("__name__", "down", "job", "a", "zone", "z1")
)

// Selects return the series matching every matcher with a chunk
// overlapping the inclusive range, sorted by labels, with only those
// chunks; Series names the same series.
func selectByMatchersAndTime(t *testing.T, open Open) {
	st := openStore(t, open)
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{
		series(upB, xor(t, 0, 10, 1000), xor(t, 20_000, 10, 1000)),
		series(upA, xor(t, 0, 10, 1000)),
		series(downA, xor(t, 5_000, 10, 1000)),
	}))
	eq := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchEqual, n, v) }
	re := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchRegexp, n, v) }
	ne := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchNotEqual, n, v) }
	for _, c := range []struct {
		name       string
		mint, maxt int64
		ms         []*labels.Matcher
		want       []string
	}{
		{"by name, sorted", 0, 100_000, []*labels.Matcher{eq("__name__", "up")}, []string{upA.String(), upB.String()}},
		{"regexp", 0, 100_000, []*labels.Matcher{re("job", "a|b")}, []string{downA.String(), upA.String(), upB.String()}},
		{"not equal", 0, 100_000, []*labels.Matcher{eq("__name__", "up"), ne("job", "a")}, []string{upB.String()}},
		{"absent label equals empty", 0, 100_000, []*labels.Matcher{eq("zone", "")}, []string{upA.String(), upB.String()}},
		{"edges are inclusive", 9_000, 9_000, []*labels.Matcher{eq("__name__", "up")}, []string{upA.String(), upB.String()}},
		{"a gap between chunks", 10_000, 19_999, []*labels.Matcher{re("__name__", ".+")}, []string{downA.String()}},
		{"after everything", 30_000, 40_000, []*labels.Matcher{re("__name__", ".+")}, []string{}},
		{"no match", 0, 100_000, []*labels.Matcher{eq("__name__", "nope")}, []string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := selectAll(t, st, "t", c.mint, c.maxt, c.ms...)
			require.Equal(t, c.want, names(got))
			for _, sc := range got {
				for _, ch := range sc.Chunks {
					require.True(t, ch.MinTime <= c.maxt && ch.MaxTime >= c.mint, "only overlapping chunks")
				}
			}
			ls, err := st.Series("t", c.mint, c.maxt, nil, c.ms...)
			require.NoError(t, err)
			got2 := []string{}
			for _, l := range ls {
				got2 = append(got2, l.String())
			}
			require.Equal(t, c.want, got2, "Series names what SelectBatches returns")
		})
	}
	keepB := func(ls labels.Labels) bool { return ls.Get("job") == "b" }
	ls, err := st.Series("t", 0, 100_000, keepB, eq("__name__", "up"))
	require.NoError(t, err)
	require.Len(t, ls, 1)
	require.Equal(t, upB.String(), ls[0].String())
}

// The same batch twice is stored once.
func putAgainChangesNothing(t *testing.T, open Open) {
	st := openStore(t, open)
	batch := []chunks.SeriesChunks{series(upA, xor(t, 0, 10, 1000))}
	require.NoError(t, st.Put("t", batch))
	require.NoError(t, st.Put("t", batch))
	got := selectAll(t, st, "t", 0, 100_000)
	require.Len(t, got, 1)
	require.Len(t, samplesOf(t, got[0]), 10)
}

// A chunk ending where a stored one ends (a handover's copy of a chunk
// this ingester flushed too, with more or fewer samples) merges sample by
// sample; the same sample twice is one.
func putMergesSameEnd(t *testing.T, open Open) {
	st := openStore(t, open)
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upA, xor(t, 5_000, 5, 1000))}))
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upA, xor(t, 0, 10, 1000))}))
	got := selectAll(t, st, "t", 0, 100_000)
	require.Len(t, got, 1)
	s := samplesOf(t, got[0])
	require.Len(t, s, 10)
	for k, smp := range s {
		require.Equal(t, int64(k)*1000, smp.T)
	}
	require.Error(t, st.Put("t", []chunks.SeriesChunks{series(upA, chunks.Chunk{MinTime: 0, MaxTime: 9_000, Encoding: chunkenc.EncXOR, Data: []byte("garbage")})}),
		"a chunk that does not decode is refused")
}

// Refs and ChunksOf read what SelectBatches reads, by ID or by labels, and
// leave out what the caller knows.
func refsAndChunksOfAgreeWithSelect(t *testing.T, open Open) {
	st := openStore(t, open)
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{
		series(upA, xor(t, 0, 10, 1000)), series(upB, xor(t, 0, 10, 1000)), series(downA, xor(t, 0, 10, 1000)),
	}))
	m := labels.MustNewMatcher(labels.MatchEqual, "job", "a")
	refs, err := st.Refs("t", 0, 100_000, nil, chunks.Known{}, m)
	require.NoError(t, err)
	require.Len(t, refs, 2)
	require.Equal(t, downA.String(), refs[0].Labels.String(), "sorted by labels")
	byID, err := chunksOf(t, st, "t", 0, 100_000, refs)
	require.NoError(t, err)
	require.Equal(t, names(selectAll(t, st, "t", 0, 100_000, m)), names(byID))
	byLabels, err := chunksOf(t, st, "t", 0, 100_000, []chunks.SeriesRef{{Labels: upA}})
	require.NoError(t, err)
	require.Len(t, byLabels, 1)
	require.Len(t, samplesOf(t, byLabels[0]), 10)
	known, err := st.Refs("t", 0, 100_000, nil, chunks.Known{Labels: func(_ uint64, ls labels.Labels) bool { return ls.Get("__name__") == "down" }}, m)
	require.NoError(t, err)
	require.Len(t, known, 1)
	require.Equal(t, upA.String(), known[0].Labels.String())

	// known is asked about every matching series before its chunks are
	// sought, so the caller learns the IDs of series it holds whether or
	// not the store has chunks of them in the range.
	var asked []string
	none, err := st.Refs("t", 200_000, 300_000, nil, chunks.Known{Labels: func(id uint64, ls labels.Labels) bool {
		require.NotZero(t, id)
		asked = append(asked, ls.String())
		return true
	}}, m)
	require.NoError(t, err)
	require.Empty(t, none)
	require.ElementsMatch(t, []string{upA.String(), downA.String()}, asked)

	// A series known by its ID is left out before anything else is asked
	// about it.
	asked = nil
	left, err := st.Refs("t", 0, 100_000, nil, chunks.Known{
		ID: func(id uint64) bool { return id == refs[0].ID },
		Labels: func(_ uint64, ls labels.Labels) bool {
			asked = append(asked, ls.String())
			return false
		},
	}, m)
	require.NoError(t, err)
	require.Equal(t, []string{upA.String()}, asked, "%s was known by its ID", refs[0].Labels)
	require.Len(t, left, 1)
	require.Equal(t, upA.String(), left[0].Labels.String())
}

// An ID never names another series: a series retention deleted and that
// is stored again gets a new ID, so a caller holding the old one still
// finds it by its labels.
func refsIDsAreNeverReused(t *testing.T, open Open) {
	st := openStore(t, open)
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upA, xor(t, 0, 10, 1000))}))
	old, err := st.Refs("t", 0, 100_000, nil, chunks.Known{})
	require.NoError(t, err)
	require.Len(t, old, 1)
	_, err = st.ApplyRetention(time.UnixMilli(10*3600*1000), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upA, xor(t, 9*3600*1000, 10, 1000))}))
	again, err := st.Refs("t", 0, 100*3600*1000, nil, chunks.Known{ID: func(id uint64) bool { return id == old[0].ID }})
	require.NoError(t, err)
	require.Len(t, again, 1, "the series stored again is not hidden by its old ID")
	require.NotEqual(t, old[0].ID, again[0].ID)
	// A caller still holding the old ID, and the labels, reads the series
	// stored again.
	got, err := chunksOf(t, st, "t", 0, 100*3600*1000, []chunks.SeriesRef{{ID: old[0].ID, Labels: upA}, {ID: old[0].ID}})
	require.NoError(t, err)
	require.Len(t, samplesOf(t, got[0]), 10, "found by its labels")
	require.Empty(t, got[1].Chunks, "an ID alone names no series")
}

// SelectBatches gives at most batchSeries series a call, and an error of
// fn ends it.
func batchesAndErrors(t *testing.T, open Open) {
	st := openStore(t, open)
	var batch []chunks.SeriesChunks
	for k := range 7 {
		batch = append(batch, series(labels.FromStrings("__name__", "m", "k", fmt.Sprint(k)), xor(t, 0, 3, 1000)))
	}
	require.NoError(t, st.Put("t", batch))
	var sizes []int
	require.NoError(t, st.SelectBatches("t", 0, 10_000, 3, nil, func(b []chunks.SeriesChunks) error {
		sizes = append(sizes, len(b))
		return nil
	}))
	total := 0
	for _, n := range sizes {
		require.LessOrEqual(t, n, 3)
		total += n
	}
	require.Equal(t, 7, total)
	stop := errors.New("stop")
	calls := 0
	err := st.SelectBatches("t", 0, 10_000, 3, nil, func([]chunks.SeriesChunks) error { calls++; return stop })
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, calls)
}

// The newest stored sample of each series, and the value at a time.
func lastSamplesAndSampleAt(t *testing.T, open Open) {
	st := openStore(t, open)
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upA, xor(t, 0, 10, 1000), xor(t, 10_000, 5, 1000))}))
	got := map[int]chunks.Sample{}
	require.NoError(t, st.LastSamples("t", []labels.Labels{upB, upA}, func(k int, s chunks.Sample) { got[k] = s }))
	require.Equal(t, map[int]chunks.Sample{1: {T: 14_000, V: 14}}, got, "only stored series, by their index")
	s, found, err := st.SampleAt("t", upA, 3_000)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, chunks.Sample{T: 3_000, V: 3}, s)
	_, found, err = st.SampleAt("t", upA, 3_500)
	require.NoError(t, err)
	require.False(t, found)
	_, found, err = st.SampleAt("t", upB, 3_000)
	require.NoError(t, err)
	require.False(t, found)
}

// A tenant sees only its own series; Tenants lists those with any.
func tenantsAreIsolated(t *testing.T, open Open) {
	st := openStore(t, open)
	require.NoError(t, st.Put("a", []chunks.SeriesChunks{series(upA, xor(t, 0, 3, 1000))}))
	require.NoError(t, st.Put("b", []chunks.SeriesChunks{series(upB, xor(t, 0, 3, 1000))}))
	require.Equal(t, []string{upA.String()}, names(selectAll(t, st, "a", 0, 10_000)))
	require.Equal(t, []string{upB.String()}, names(selectAll(t, st, "b", 0, 10_000)))
	require.Empty(t, selectAll(t, st, "c", 0, 10_000))
	tenants, err := st.Tenants()
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"a", "b"}, tenants)
}

// What Put stored is there after the store is closed and opened again.
func reopenKeepsEverything(t *testing.T, open Open) {
	dir := t.TempDir()
	st, closeStore := open(t, dir)
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upA, xor(t, 0, 10, 1000))}))
	want := selectAll(t, st, "t", 0, 100_000)
	require.NoError(t, closeStore())
	st, closeStore = open(t, dir)
	defer func() { require.NoError(t, closeStore()) }()
	got := selectAll(t, st, "t", 0, 100_000)
	require.Equal(t, names(want), names(got))
	require.Equal(t, samplesOf(t, want[0]), samplesOf(t, got[0]))
}

// ApplyRetention deletes each tenant's chunks older than its retention,
// and a series left with none is no longer selected; a tenant whose
// retention is 0 keeps everything.
func retentionDeletesOldChunks(t *testing.T, open Open) {
	st := openStore(t, open)
	now := time.UnixMilli(10 * 3_600_000)
	old := now.Add(-2 * time.Hour).UnixMilli()
	recent := now.Add(-time.Minute).UnixMilli()
	batch := []chunks.SeriesChunks{
		series(upA, xor(t, old, 3, 1000), xor(t, recent, 3, 1000)),
		series(upB, xor(t, old, 3, 1000)),
	}
	require.NoError(t, st.Put("hour", batch))
	require.NoError(t, st.Put("forever", batch))
	retention := map[string]time.Duration{"hour": time.Hour, "forever": 0}
	deleted, err := st.ApplyRetention(now, func(tenant string) time.Duration { return retention[tenant] })
	require.NoError(t, err)
	if _, compacted := st.(compactingStore); !compacted {
		// Compacted chunks are hidden at once, and counted when their
		// partition is deleted.
		require.Equal(t, 2, deleted)
	}
	got := selectAll(t, st, "hour", 0, now.UnixMilli())
	require.Equal(t, []string{upA.String()}, names(got))
	require.Len(t, got[0].Chunks, 1)
	require.Equal(t, recent, got[0].Chunks[0].MinTime)
	require.Len(t, selectAll(t, st, "forever", 0, now.UnixMilli()), 2)
}

// A backup holds what was stored when it began, not what is Put while it
// is written, and restores into a store that answers the same.
func backupIsConsistentAndRestores(t *testing.T, open Open, restore Restore) {
	st := openStore(t, open)
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upA, xor(t, 0, 10, 1000)), series(upB, xor(t, 0, 5, 1000))}))
	want := selectAll(t, st, "t", 0, 100_000)
	var buf bytes.Buffer
	putDone := make(chan error, 1)
	require.NoError(t, st.Backup(func(size int64, write func(io.Writer) (int64, error)) error {
		// Put while the copy is being handed out: not in it, and not
		// waiting for it (a slow reader must not stall flushes).
		go func() { putDone <- st.Put("t", []chunks.SeriesChunks{series(downA, xor(t, 0, 3, 1000))}) }()
		select {
		case err := <-putDone:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("a Put waited for the backup's reader")
		}
		n, err := write(&buf)
		require.Equal(t, size, n, "the size given is the size written")
		return err
	}))
	dir := t.TempDir()
	restore(t, dir, buf.Bytes())
	restored, closeStore := open(t, dir)
	defer func() { require.NoError(t, closeStore()) }()
	got := selectAll(t, restored, "t", 0, 100_000)
	require.Equal(t, names(want), names(got))
	for k := range want {
		require.Equal(t, samplesOf(t, want[k]), samplesOf(t, got[k]))
	}
	require.Len(t, selectAll(t, st, "t", 0, 100_000), 3, "the Put during the backup is stored")
}

// hist is the integer counter histogram at step k of a series whose
// observations fall into more buckets as k grows, so that the bucket
// layout changes along the way.
func hist(k int) *histogram.Histogram {
	n := uint64(k + 1)
	h := &histogram.Histogram{
		Schema: 1, ZeroThreshold: 0.001, ZeroCount: n, Count: 3 * n, Sum: float64(k) * 1.5,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		PositiveBuckets: []int64{int64(n), 0},
	}
	if k >= 5 {
		h.Count += n
		h.PositiveSpans = []histogram.Span{{Offset: 0, Length: 2}, {Offset: 3, Length: 1}}
		h.PositiveBuckets = []int64{int64(n), 0, 0}
	}
	return h
}

func histSamples(from, n int, step int64, float bool) []chunks.Sample {
	var out []chunks.Sample
	for k := from; k < from+n; k++ {
		s := chunks.Sample{T: int64(k) * step}
		if float {
			s.FH = hist(k).ToFloat(nil)
		} else {
			s.H = hist(k)
		}
		out = append(out, s)
	}
	return out
}

func encode(t *testing.T, smps []chunks.Sample) []chunks.Chunk {
	t.Helper()
	cs, err := chunks.Encode(smps, 0)
	require.NoError(t, err)
	return cs
}

func requireSameSamples(t *testing.T, want, got []chunks.Sample) {
	t.Helper()
	require.Len(t, got, len(want))
	for k := range want {
		require.True(t, chunks.Same(want[k], got[k]), "sample %d: want %v, got %v", k, want[k], got[k])
	}
}

// Integer and float histogram chunks, a layout change among them, come
// back as they went in, and the newest sample and a sample at a time are
// histograms too.
func histogramsRoundTrip(t *testing.T, open Open) {
	st := openStore(t, open)
	ints, floats := histSamples(0, 10, 1000, false), histSamples(10, 10, 1000, true)
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upA, encode(t, ints)...), series(upB, encode(t, floats)...)}))
	got := selectAll(t, st, "t", 0, 30_000)
	require.Equal(t, []string{upA.String(), upB.String()}, names(got))
	requireSameSamples(t, ints, samplesOf(t, got[0]))
	requireSameSamples(t, floats, samplesOf(t, got[1]))
	last := map[int]chunks.Sample{}
	require.NoError(t, st.LastSamples("t", []labels.Labels{upA, upB}, func(k int, s chunks.Sample) { last[k] = s }))
	requireSameSamples(t, []chunks.Sample{ints[9], floats[9]}, []chunks.Sample{last[0], last[1]})
	s, found, err := st.SampleAt("t", upA, 6_000)
	require.NoError(t, err)
	require.True(t, found)
	requireSameSamples(t, ints[6:7], []chunks.Sample{s})
}

// Two different histogram chunks under one series and MaxTime merge into
// their union; when the union needs several chunks (floats then
// histograms), every sample is still there.
func putMergesHistograms(t *testing.T, open Open) {
	st := openStore(t, open)
	all := histSamples(0, 10, 1000, false)
	var even, odd []chunks.Sample
	for k, s := range all {
		if k%2 == 0 {
			even = append(even, s)
		} else {
			odd = append(odd, s)
		}
	}
	evenC, oddC := encode(t, even), encode(t, odd)
	require.Len(t, evenC, 1)
	require.Len(t, oddC, 1)
	// One MaxTime for both, as two replicas' copies of a chunk have.
	evenC[0].MaxTime = 9_000
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upA, evenC...)}))
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upA, oddC...)}))
	requireSameSamples(t, all, samplesOf(t, selectAll(t, st, "t", 0, 10_000)[0]))

	mixed := []chunks.Sample{{T: 1_000, V: 1}, {T: 2_000, V: 2}}
	mixed = append(mixed, histSamples(3, 3, 1000, false)...)
	floatsC := encode(t, mixed[:2])
	floatsC[0].MaxTime = 5_000
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upB, floatsC...)}))
	require.NoError(t, st.Put("t", []chunks.SeriesChunks{series(upB, encode(t, mixed[2:])...)}))
	requireSameSamples(t, mixed, samplesOf(t, selectAll(t, st, "t", 0, 10_000)[1]))
}

// Tombstones and generations are kept per tenant across a reopen, the
// generation only rises, and DropTombstones drops those no stored chunk
// can hold a sample of.
func tombstonesPersistAndExpire(t *testing.T, open Open) {
	dir := t.TempDir()
	st, closeStore := open(t, dir)
	now := time.UnixMilli(10 * 3_600_000)
	old := chunks.Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "job", "a|b")},
		MinTime: 0, MaxTime: now.Add(-2 * time.Hour).UnixMilli()}
	recent := chunks.Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"),
		labels.MustNewMatcher(labels.MatchNotEqual, "x", "")}, MinTime: -5, MaxTime: now.UnixMilli()}
	require.NoError(t, st.AddTombstone("hour", old))
	require.NoError(t, st.AddTombstone("hour", recent))
	require.NoError(t, st.AddTombstone("forever", old))
	require.Error(t, st.AddTombstone("hour", chunks.Tombstone{Matchers: old.Matchers, MinTime: 2, MaxTime: 1}), "an empty range")
	gen, err := st.RaiseGeneration("hour", 5)
	require.NoError(t, err)
	require.Equal(t, int64(5), gen)
	gen, err = st.RaiseGeneration("hour", 4)
	require.NoError(t, err)
	require.Equal(t, int64(5), gen)

	require.NoError(t, closeStore())
	st, closeStore = open(t, dir)
	defer func() { require.NoError(t, closeStore()) }()
	d, err := st.Deletions()
	require.NoError(t, err)
	require.Len(t, d, 2)
	require.Equal(t, int64(5), d["hour"].Generation)
	require.Len(t, d["hour"].Tombstones, 2)
	got := d["hour"].Tombstones[1]
	require.Equal(t, recent.MinTime, got.MinTime)
	require.Equal(t, recent.MaxTime, got.MaxTime)
	require.Equal(t, fmt.Sprint(recent.Matchers), fmt.Sprint(got.Matchers))
	require.True(t, got.Matches(labels.FromStrings("__name__", "up", "x", "1")))
	require.False(t, got.Matches(labels.FromStrings("__name__", "up")))

	cutoff := now.Add(-time.Hour).UnixMilli()
	_, err = st.ApplyRetention(now, func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	d, err = st.Deletions()
	require.NoError(t, err)
	require.Len(t, d["hour"].Tombstones, 2, "retention of chunks keeps tombstones")
	dropped, err := st.DropTombstones("hour", cutoff)
	require.NoError(t, err)
	require.Equal(t, 1, dropped)
	d, err = st.Deletions()
	require.NoError(t, err)
	require.Len(t, d["hour"].Tombstones, 1)
	require.Equal(t, recent.MaxTime, d["hour"].Tombstones[0].MaxTime)
	require.Equal(t, int64(5), d["hour"].Generation, "dropping tombstones keeps the generation")
	require.Len(t, d["forever"].Tombstones, 1)
	dropped, err = st.DropTombstones("nobody", cutoff)
	require.NoError(t, err)
	require.Zero(t, dropped)

	// A stored chunk may hold samples up to its span before its end: a
	// tombstone is kept while such a chunk may be left.
	require.NoError(t, st.Put("span", []chunks.SeriesChunks{series(labels.FromStrings("__name__", "up"), xor(t, 0, 10, 600_000))}))
	require.NoError(t, st.AddTombstone("span", chunks.Tombstone{Matchers: recent.Matchers, MinTime: 0, MaxTime: 1_000}))
	dropped, err = st.DropTombstones("span", 1_000+5_400_000)
	require.NoError(t, err)
	require.Zero(t, dropped, "a chunk of 5,400,000 ms span ending after the cutoff may hold its samples")
	dropped, err = st.DropTombstones("span", 1_000+5_400_000+1)
	require.NoError(t, err)
	require.Equal(t, 1, dropped)
}

// ApplyRetention deletes the chunks wholly inside a tombstone selecting
// their series, also for a tenant that keeps data forever; a chunk the
// tombstone only cuts into, other series and other tenants are kept; a
// series left without chunks is gone.
func retentionDeletesTombstonedChunks(t *testing.T, open Open) {
	st := openStore(t, open)
	a, b := labels.FromStrings("__name__", "up", "job", "a"), labels.FromStrings("__name__", "up", "job", "b")
	gone := labels.FromStrings("__name__", "gone")
	for _, tenant := range []string{"t", "other"} {
		require.NoError(t, st.Put(tenant, []chunks.SeriesChunks{
			// [0, 9000], [10000, 19000], [20000, 29000]
			series(a, xor(t, 0, 10, 1000), xor(t, 10_000, 10, 1000), xor(t, 20_000, 10, 1000)),
			series(b, xor(t, 0, 10, 1000), xor(t, 10_000, 10, 1000)),
			series(gone, xor(t, 0, 10, 1000)),
		}))
	}
	// Covers a's middle chunk and cuts into its last one.
	require.NoError(t, st.AddTombstone("t", chunks.Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "a")}, MinTime: 10_000, MaxTime: 25_000}))
	require.NoError(t, st.AddTombstone("t", chunks.Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "gone")}, MinTime: math.MinInt64, MaxTime: 9_000}))
	// The same chunk covered twice is deleted once.
	require.NoError(t, st.AddTombstone("t", chunks.Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", "go.+")}, MinTime: -1, MaxTime: 9_500}))

	deleted, err := st.ApplyRetention(time.UnixMilli(30_000), func(string) time.Duration { return 0 })
	require.NoError(t, err)
	require.Equal(t, 2, deleted)
	got := selectAll(t, st, "t", math.MinInt64, math.MaxInt64)
	require.Equal(t, []string{a.String(), b.String()}, names(got))
	var spans [][2]int64
	for _, c := range got[0].Chunks {
		spans = append(spans, [2]int64{c.MinTime, c.MaxTime})
	}
	require.Equal(t, [][2]int64{{0, 9000}, {20_000, 29_000}}, spans)
	require.Len(t, got[1].Chunks, 2)
	require.Len(t, selectAll(t, st, "other", math.MinInt64, math.MaxInt64), 3, "another tenant's chunks stay")
}
