package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

func testOptions(tb testing.TB) Options {
	opts := DefaultOptions()
	opts.Path = filepath.Join(tb.TempDir(), "store.db")
	opts.NoSync = true
	return opts
}

func openTest(tb testing.TB, opts Options) *Store {
	tb.Helper()
	s, err := Open(opts, nil, nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

type sample struct {
	T int64
	V float64
}

// xorChunk builds a real XOR chunk of n samples from mint, step ms apart.
func xorChunk(tb testing.TB, mint int64, n int, step int64) Chunk {
	tb.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	require.NoError(tb, err)
	for i := range n {
		app.Append(0, mint+int64(i)*step, float64(mint)+float64(i)/2)
	}
	return Chunk{MinTime: mint, MaxTime: mint + int64(n-1)*step, Encoding: c.Encoding(), Data: c.Bytes()}
}

// rawChunk is a chunk with arbitrary bytes, for tests about layout rather
// than content.
func rawChunk(mint, maxt int64, data string) Chunk {
	return Chunk{MinTime: mint, MaxTime: maxt, Encoding: chunkenc.EncXOR, Data: []byte(data)}
}

func decodeSamples(tb testing.TB, c Chunk) []sample {
	tb.Helper()
	chk, err := chunkenc.FromData(c.Encoding, c.Data)
	require.NoError(tb, err)
	var out []sample
	it := chk.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		out = append(out, sample{t, v})
	}
	require.NoError(tb, it.Err())
	return out
}

func seriesOf(ls labels.Labels, chunks ...Chunk) SeriesChunks {
	return SeriesChunks{Labels: ls, Chunks: chunks}
}

func labelStrings(ls []labels.Labels) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.String())
	}
	return out
}

func TestRoundTripXORChunks(t *testing.T) {
	s := openTest(t, testOptions(t))
	a := labels.FromStrings("__name__", "up", "job", "api")
	b := labels.FromStrings("__name__", "up", "job", "db")
	batch := []SeriesChunks{
		seriesOf(b, xorChunk(t, 1000, 120, 15), xorChunk(t, 2800, 120, 15)),
		seriesOf(a, xorChunk(t, 1000, 5, 1000)),
	}
	require.NoError(t, s.Put("t1", batch))

	got, err := s.Select("t1", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, a, got[0].Labels, "series sorted by labels")
	require.Equal(t, b, got[1].Labels)
	for i, want := range []SeriesChunks{batch[1], batch[0]} {
		require.Len(t, got[i].Chunks, len(want.Chunks))
		for j, c := range want.Chunks {
			require.Equal(t, c, got[i].Chunks[j])
			require.Equal(t, decodeSamples(t, c), decodeSamples(t, got[i].Chunks[j]))
		}
	}
	require.Len(t, decodeSamples(t, got[1].Chunks[1]), 120)
}

func matcherFixture(t *testing.T) *Store {
	s := openTest(t, testOptions(t))
	c := rawChunk(0, 10, "x")
	var batch []SeriesChunks
	for _, ls := range []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "api", "instance", "a"),
		labels.FromStrings("__name__", "up", "job", "api", "instance", "b"),
		labels.FromStrings("__name__", "up", "job", "db", "instance", "c"),
		labels.FromStrings("__name__", "req", "job", "api", "instance", "a", "code", "200"),
		labels.FromStrings("__name__", "req", "job", "api", "instance", "a", "code", "500"),
		labels.FromStrings("__name__", "req", "job", "db"),
		// A value that is another one plus 0x00 must not leak into
		// equality lookups of the shorter value.
		labels.FromStrings("__name__", "odd", "v", "a"),
		labels.FromStrings("__name__", "odd", "v", "a\x00b"),
	} {
		batch = append(batch, seriesOf(ls, c))
	}
	require.NoError(t, s.Put("t1", batch))
	return s
}

func TestSelectMatchers(t *testing.T) {
	s := matcherFixture(t)
	m := labels.MustNewMatcher
	const (
		upA   = `{__name__="up", instance="a", job="api"}`
		upB   = `{__name__="up", instance="b", job="api"}`
		upC   = `{__name__="up", instance="c", job="db"}`
		req2  = `{__name__="req", code="200", instance="a", job="api"}`
		req5  = `{__name__="req", code="500", instance="a", job="api"}`
		reqDB = `{__name__="req", job="db"}`
		oddA  = `{__name__="odd", v="a"}`
		oddAB = `{__name__="odd", v="a\x00b"}`
	)
	all := []string{oddA, oddAB, req2, req5, reqDB, upA, upB, upC}
	for _, tc := range []struct {
		name     string
		matchers []*labels.Matcher
		want     []string
	}{
		{"no matchers", nil, all},
		{"equal", []*labels.Matcher{m(labels.MatchEqual, "job", "db")}, []string{reqDB, upC}},
		{"equal two", []*labels.Matcher{m(labels.MatchEqual, "job", "api"), m(labels.MatchEqual, "__name__", "up")}, []string{upA, upB}},
		{"equal unknown value", []*labels.Matcher{m(labels.MatchEqual, "job", "nope")}, nil},
		{"equal unknown name", []*labels.Matcher{m(labels.MatchEqual, "nope", "x")}, nil},
		{"equal value with 0x00 sibling", []*labels.Matcher{m(labels.MatchEqual, "v", "a")}, []string{oddA}},
		{"equal value containing 0x00", []*labels.Matcher{m(labels.MatchEqual, "v", "a\x00b")}, []string{oddAB}},
		{"equal empty selects lacking", []*labels.Matcher{m(labels.MatchEqual, "__name__", "req"), m(labels.MatchEqual, "instance", "")}, []string{reqDB}},
		{"not equal includes lacking", []*labels.Matcher{m(labels.MatchNotEqual, "instance", "a")}, []string{oddA, oddAB, reqDB, upB, upC}},
		{"not equal empty requires label", []*labels.Matcher{m(labels.MatchNotEqual, "code", "")}, []string{req2, req5}},
		{"regexp set", []*labels.Matcher{m(labels.MatchRegexp, "instance", "b|c")}, []string{upB, upC}},
		{"regexp prefix", []*labels.Matcher{m(labels.MatchRegexp, "code", "5.*")}, []string{req5}},
		{"regexp anchored", []*labels.Matcher{m(labels.MatchRegexp, "job", "ap")}, nil},
		{"regexp any value", []*labels.Matcher{m(labels.MatchRegexp, "code", ".+")}, []string{req2, req5}},
		{"regexp matching empty includes lacking", []*labels.Matcher{m(labels.MatchEqual, "job", "api"), m(labels.MatchRegexp, "code", "2.*|")}, []string{req2, upA, upB}},
		{"regexp dot star matches all", []*labels.Matcher{m(labels.MatchRegexp, "nope", ".*")}, all},
		{"regexp value with 0x00", []*labels.Matcher{m(labels.MatchRegexp, "v", "a.b")}, []string{oddAB}},
		{"not regexp", []*labels.Matcher{m(labels.MatchEqual, "__name__", "up"), m(labels.MatchNotRegexp, "instance", "a|b")}, []string{upC}},
		{"not regexp includes lacking", []*labels.Matcher{m(labels.MatchNotRegexp, "instance", "a|b")}, []string{oddA, oddAB, reqDB, upC}},
		{"not regexp any selects lacking", []*labels.Matcher{m(labels.MatchEqual, "__name__", "req"), m(labels.MatchNotRegexp, "instance", ".+")}, []string{reqDB}},
		{"not regexp matching empty requires label", []*labels.Matcher{m(labels.MatchNotRegexp, "code", "2.*|")}, []string{req5}},
		{"contradiction", []*labels.Matcher{m(labels.MatchEqual, "job", "api"), m(labels.MatchEqual, "job", "db")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			series, err := s.Series("t1", 0, 10, nil, tc.matchers...)
			require.NoError(t, err)
			require.Equal(t, tc.want, nilIfEmpty(labelStrings(series)))

			selected, err := s.Select("t1", 0, 10, tc.matchers...)
			require.NoError(t, err)
			require.Len(t, selected, len(tc.want))
			for i, sc := range selected {
				require.Equal(t, series[i], sc.Labels)
				require.Len(t, sc.Chunks, 1)
			}

			// Batches, put together and sorted, are what Select returns,
			// each within the size asked for.
			for _, size := range []int{1, 3, 100} {
				var got []SeriesChunks
				require.NoError(t, s.SelectBatches("t1", 0, 10, size, nil, func(b []SeriesChunks) error {
					require.LessOrEqual(t, len(b), size)
					require.True(t, slices.IsSortedFunc(b, func(x, y SeriesChunks) int { return labels.Compare(x.Labels, y.Labels) }))
					got = append(got, b...)
					return nil
				}, tc.matchers...))
				slices.SortFunc(got, func(x, y SeriesChunks) int { return labels.Compare(x.Labels, y.Labels) })
				require.Equal(t, nilIfEmptySeries(selected), nilIfEmptySeries(got), "batch size %d", size)
			}
		})
	}
}

func nilIfEmptySeries(s []SeriesChunks) []SeriesChunks {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestSelectBatchesEdges(t *testing.T) {
	s := matcherFixture(t)
	calls := 0
	count := func([]SeriesChunks) error { calls++; return nil }
	require.NoError(t, s.SelectBatches("unknown", 0, 10, 2, nil, count))
	require.NoError(t, s.SelectBatches("t1", 11, 20, 2, nil, count), "no chunk in range")
	require.NoError(t, s.SelectBatches("t1", 10, 0, 2, nil, count), "empty range")
	require.Zero(t, calls)
	require.Error(t, s.SelectBatches("t1", 0, 10, 0, nil, count))

	stop := errors.New("stop")
	require.ErrorIs(t, s.SelectBatches("t1", 0, 10, 2, nil, func([]SeriesChunks) error { calls++; return stop }), stop)
	require.Equal(t, 1, calls, "fn's error ends the stream")
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestLabelNamesAndValues(t *testing.T) {
	s := matcherFixture(t)
	require.NoError(t, s.Put("t1", []SeriesChunks{
		seriesOf(labels.FromStrings("__name__", "late", "zone", "eu"), rawChunk(100, 200, "x")),
	}))
	m := labels.MustNewMatcher

	names, err := s.LabelNames("t1", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "code", "instance", "job", "v"}, names)

	names, err = s.LabelNames("t1", 0, 1000)
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "code", "instance", "job", "v", "zone"}, names)

	names, err = s.LabelNames("t1", 0, 10, m(labels.MatchEqual, "job", "db"))
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "instance", "job"}, names)

	values, err := s.LabelValues("t1", "instance", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, values)

	values, err = s.LabelValues("t1", "instance", 0, 10, m(labels.MatchEqual, "__name__", "req"))
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, values)

	values, err = s.LabelValues("t1", "__name__", 11, 1000)
	require.NoError(t, err)
	require.Equal(t, []string{"late"}, values)

	values, err = s.LabelValues("t1", "nope", 0, 1000)
	require.NoError(t, err)
	require.Empty(t, values)
}

func TestTimeRangeEdges(t *testing.T) {
	s := openTest(t, testOptions(t))
	plain := labels.FromStrings("s", "plain")
	// long contains short entirely but sorts after it by MaxTime, so a
	// scan that stopped at the first chunk starting after maxt would miss
	// it.
	overlap := labels.FromStrings("s", "overlap")
	negative := labels.FromStrings("s", "negative")
	require.NoError(t, s.Put("t1", []SeriesChunks{
		seriesOf(plain, rawChunk(100, 200, "a"), rawChunk(300, 400, "b")),
		seriesOf(overlap, rawChunk(1000, 1100, "short"), rawChunk(500, 5000, "long")),
		seriesOf(negative, rawChunk(-500, -100, "neg"), rawChunk(-99, 50, "zero")),
	}))
	for _, tc := range []struct {
		series     labels.Labels
		mint, maxt int64
		want       []string
	}{
		{plain, 0, 99, nil},
		{plain, 0, 100, []string{"a"}},
		{plain, 200, 200, []string{"a"}},
		{plain, 201, 299, nil},
		{plain, 200, 300, []string{"a", "b"}},
		{plain, 400, 500, []string{"b"}},
		{plain, 401, 500, nil},
		{plain, math.MinInt64, math.MaxInt64, []string{"a", "b"}},
		{plain, 300, 200, nil},
		{overlap, 0, 600, []string{"long"}},
		{overlap, 1050, 1050, []string{"long", "short"}},
		{overlap, 1101, math.MaxInt64, []string{"long"}},
		{overlap, 5001, math.MaxInt64, nil},
		{negative, -1000, -500, []string{"neg"}},
		{negative, -100, -99, []string{"neg", "zero"}},
		{negative, 50, 60, []string{"zero"}},
	} {
		t.Run(fmt.Sprintf("%s_%d_%d", tc.series.Get("s"), tc.mint, tc.maxt), func(t *testing.T) {
			got, err := s.Select("t1", tc.mint, tc.maxt, labels.MustNewMatcher(labels.MatchEqual, "s", tc.series.Get("s")))
			require.NoError(t, err)
			var data []string
			for _, sc := range got {
				for _, c := range sc.Chunks {
					data = append(data, string(c.Data))
				}
			}
			require.Equal(t, tc.want, data, "chunks in MinTime order")

			series, err := s.Series("t1", tc.mint, tc.maxt, nil, labels.MustNewMatcher(labels.MatchEqual, "s", tc.series.Get("s")))
			require.NoError(t, err)
			require.Equal(t, len(tc.want) > 0, len(series) == 1)
		})
	}
}

func TestPutSameChunkAgainIsANoOp(t *testing.T) {
	s := openTest(t, testOptions(t))
	ls := labels.FromStrings("__name__", "up")
	first := xorChunk(t, 0, 10, 10)
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(ls, first)}))
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(ls, first)}))
	got, err := s.Select("t1", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, []Chunk{first}, got[0].Chunks)

	// The same series in one batch twice is one series.
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(ls, first), seriesOf(ls, xorChunk(t, 100, 3, 10))}))
	got, err = s.Select("t1", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Len(t, got[0].Chunks, 2)
}

// chunkOf builds an XOR chunk of the given samples.
func chunkOf(tb testing.TB, samples ...sample) Chunk {
	tb.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	require.NoError(tb, err)
	for _, s := range samples {
		app.Append(0, s.T, s.V)
	}
	return Chunk{MinTime: samples[0].T, MaxTime: samples[len(samples)-1].T, Encoding: c.Encoding(), Data: c.Bytes()}
}

// TestPutMergesChunksWithTheSameMaxTime: a chunk that ends when a stored
// one does (a replica's copy handed over, a re-flush after a crash cut at
// another start) never replaces it: the store keeps the union of both
// chunks' samples, the stored value winning at a timestamp both hold.
func TestPutMergesChunksWithTheSameMaxTime(t *testing.T) {
	ls := labels.FromStrings("__name__", "up")
	samples := func(ts ...int64) []sample {
		out := make([]sample, 0, len(ts))
		for _, t := range ts {
			out = append(out, sample{t, float64(t)})
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		stored, added []sample
		want          []sample
	}{
		{"fuller chunk stored, a shorter one arrives", samples(0, 10, 20, 30, 40), samples(30, 40), samples(0, 10, 20, 30, 40)},
		{"shorter chunk stored, a fuller one arrives", samples(30, 40), samples(0, 10, 20, 30, 40), samples(0, 10, 20, 30, 40)},
		{"interleaved", samples(0, 20, 40), samples(10, 30, 40), samples(0, 10, 20, 30, 40)},
		{"the stored value wins a conflict", samples(0, 20, 40), []sample{{20, -1}, {30, 30}, {40, -1}}, samples(0, 20, 30, 40)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, testOptions(t))
			require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(ls, chunkOf(t, tc.stored...))}))
			require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(ls, chunkOf(t, tc.added...))}))
			// From the first wanted sample on: a merged chunk may start
			// earlier than the stored one did, and queries still find it.
			got, err := s.Select("t1", tc.want[0].T, tc.want[0].T)
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Len(t, got[0].Chunks, 1, "one chunk per (series, MaxTime)")
			c := got[0].Chunks[0]
			require.Equal(t, tc.want, decodeSamples(t, c))
			require.Equal(t, tc.want[0].T, c.MinTime)
			require.Equal(t, tc.want[len(tc.want)-1].T, c.MaxTime)
		})
	}
}

// TestPutMergeKeepsStoredBytesWhenNothingIsNew: a chunk whose samples the
// stored one already holds leaves it byte for byte.
func TestPutMergeKeepsStoredBytesWhenNothingIsNew(t *testing.T) {
	s := openTest(t, testOptions(t))
	ls := labels.FromStrings("__name__", "up")
	full := xorChunk(t, 0, 10, 10)
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(ls, full)}))
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(ls, xorChunk(t, 0, 10, 10)), seriesOf(ls, chunkOf(t, sample{50, 0}, sample{90, 1}))}))
	got, err := s.Select("t1", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Equal(t, []Chunk{full}, got[0].Chunks)
}

// TestPutMergeRefusesUndecodableChunk: a chunk to merge must decode; a
// stored one that no longer does keeps what still decodes and takes every
// new sample.
func TestPutMergeRefusesUndecodableChunk(t *testing.T) {
	s := openTest(t, testOptions(t))
	ls := labels.FromStrings("__name__", "up")
	good := xorChunk(t, 0, 10, 10)
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(ls, good)}))
	require.Error(t, s.Put("t1", []SeriesChunks{seriesOf(ls, rawChunk(0, good.MaxTime, "garbage"))}))
	got, err := s.Select("t1", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Equal(t, []Chunk{good}, got[0].Chunks, "a refused batch changes nothing")

	other := labels.FromStrings("__name__", "other")
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(other, rawChunk(0, good.MaxTime, "garbage"))}))
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(other, good)}))
	got, err = s.Select("t1", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "other"))
	require.NoError(t, err)
	merged := decodeSamples(t, got[0].Chunks[0])
	for _, want := range decodeSamples(t, good) {
		require.Contains(t, merged, want)
	}
}

func TestPutValidation(t *testing.T) {
	s := openTest(t, testOptions(t))
	ok := rawChunk(0, 1, "x")
	for _, tc := range []struct {
		name   string
		tenant string
		batch  []SeriesChunks
	}{
		{"empty tenant", "", []SeriesChunks{seriesOf(labels.FromStrings("a", "b"), ok)}},
		{"no labels", "t1", []SeriesChunks{seriesOf(labels.EmptyLabels(), ok)}},
		{"only empty labels", "t1", []SeriesChunks{seriesOf(labels.FromStrings("a", ""), ok)}},
		{"duplicate names", "t1", []SeriesChunks{seriesOf(labels.New(labels.Label{Name: "a", Value: "1"}, labels.Label{Name: "a", Value: "2"}), ok)}},
		{"min after max", "t1", []SeriesChunks{seriesOf(labels.FromStrings("a", "b"), rawChunk(2, 1, "x"))}},
		{"no data", "t1", []SeriesChunks{seriesOf(labels.FromStrings("a", "b"), rawChunk(0, 1, ""))}},
		{"huge labels", "t1", []SeriesChunks{seriesOf(labels.FromStrings("a", string(make([]byte, bbolt.MaxKeySize))), ok)}},
		{"one bad series fails all", "t1", []SeriesChunks{
			seriesOf(labels.FromStrings("a", "good"), ok),
			seriesOf(labels.FromStrings("a", "bad"), rawChunk(2, 1, "x")),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Error(t, s.Put(tc.tenant, tc.batch))
		})
	}
	tenants, err := s.Tenants()
	require.NoError(t, err)
	require.Empty(t, tenants, "no failed Put wrote anything")

	// Series without chunks are skipped; empty label values are dropped.
	require.NoError(t, s.Put("t1", []SeriesChunks{
		seriesOf(labels.FromStrings("a", "nochunks")),
		seriesOf(labels.FromStrings("a", "b", "empty", ""), ok),
	}))
	series, err := s.Series("t1", math.MinInt64, math.MaxInt64, nil)
	require.NoError(t, err)
	require.Equal(t, []string{`{a="b"}`}, labelStrings(series))
	require.NoError(t, s.Put("t1", nil))
}

func TestTenantsAreIsolated(t *testing.T) {
	s := openTest(t, testOptions(t))
	ls := labels.FromStrings("__name__", "up", "job", "api")
	require.NoError(t, s.Put("alpha", []SeriesChunks{seriesOf(ls, rawChunk(0, 10, "alpha"))}))
	require.NoError(t, s.Put("beta", []SeriesChunks{
		seriesOf(ls, rawChunk(0, 10, "beta")),
		seriesOf(labels.FromStrings("__name__", "only_beta"), rawChunk(0, 10, "b2")),
	}))

	for tenant, want := range map[string][]string{"alpha": {"alpha"}, "beta": {"b2", "beta"}} {
		got, err := s.Select(tenant, 0, 10)
		require.NoError(t, err)
		var data []string
		for _, sc := range got {
			data = append(data, string(sc.Chunks[0].Data))
		}
		require.ElementsMatch(t, want, data, tenant)
	}
	values, err := s.LabelValues("alpha", "__name__", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"up"}, values)

	tenants, err := s.Tenants()
	require.NoError(t, err)
	require.Equal(t, []string{"alpha", "beta"}, tenants)

	for _, tenant := range []string{"gamma", ""} {
		sel, err := s.Select(tenant, math.MinInt64, math.MaxInt64)
		require.NoError(t, err)
		require.Empty(t, sel)
		series, err := s.Series(tenant, math.MinInt64, math.MaxInt64, nil)
		require.NoError(t, err)
		require.Empty(t, series)
		names, err := s.LabelNames(tenant, math.MinInt64, math.MaxInt64)
		require.NoError(t, err)
		require.Empty(t, names)
		values, err := s.LabelValues(tenant, "job", math.MinInt64, math.MaxInt64)
		require.NoError(t, err)
		require.Empty(t, values)
	}
}

func TestReopenServesSameData(t *testing.T) {
	opts := testOptions(t)
	opts.NoSync = false
	s, err := Open(opts, nil, nil)
	require.NoError(t, err)
	a := labels.FromStrings("__name__", "up", "job", "a")
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(a, xorChunk(t, 0, 50, 10))}))
	before, err := s.Select("t1", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = openTest(t, opts)
	after, err := s.Select("t1", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Equal(t, before, after)

	// Series IDs keep counting after a reopen, so a new series cannot
	// collide with an old one.
	b := labels.FromStrings("__name__", "up", "job", "b")
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(b, rawChunk(0, 10, "b"))}))
	series, err := s.Series("t1", math.MinInt64, math.MaxInt64, nil)
	require.NoError(t, err)
	require.Equal(t, []labels.Labels{a, b}, series)
}

func TestOpenRejectsOtherFormatVersion(t *testing.T) {
	opts := testOptions(t)
	db, err := bbolt.Open(opts.Path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keyFormatVersion, []byte{0, 0, 0, 99})
	}))
	require.NoError(t, db.Close())
	_, err = Open(opts, nil, nil)
	require.ErrorContains(t, err, "format version")

	_, err = Open(Options{}, nil, nil)
	require.Error(t, err)
}

// A version 1 file (no deletions bucket) is upgraded in place, keeping
// its chunks; a file from a newer version is refused.
func TestOpenUpgradesFormatOne(t *testing.T) {
	opts := testOptions(t)
	st, err := Open(opts, nil, nil)
	require.NoError(t, err)
	ls := labels.FromStrings("__name__", "up")
	require.NoError(t, st.Put("t", []SeriesChunks{{Labels: ls, Chunks: []Chunk{xorChunk(t, 0, 5, 1000)}}}))
	require.NoError(t, st.Close())
	db, err := bbolt.Open(opts.Path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketDeletions); err != nil {
			return err
		}
		// Format 1 had no active index either.
		if err := tx.Bucket(bucketTenants).Bucket([]byte("t")).DeleteBucket(bucketActive); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyFormatVersion, []byte{0, 0, 0, 1})
	}))
	require.NoError(t, db.Close())

	st, err = Open(opts, nil, nil)
	require.NoError(t, err)
	n := 0
	require.NoError(t, st.SelectBatches("t", 0, 10_000, 10, nil, func(b []SeriesChunks) error { n += len(b); return nil }))
	require.Equal(t, 1, n, "the chunks format 1 stored are found without the active index")
	// A chunk stored after the upgrade, in a later partition, is listed.
	later := xorChunk(t, 3*activeWidth, 5, 1000)
	require.NoError(t, st.Put("t", []SeriesChunks{{Labels: labels.FromStrings("__name__", "new"), Chunks: []Chunk{later}}}))
	got, err := st.Select("t", later.MinTime, later.MaxTime)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "new", got[0].Labels.Get("__name__"))
	require.NoError(t, st.AddTombstone("t", Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")}, MaxTime: 1}))
	require.NoError(t, st.Close())
	db, err = bbolt.Open(opts.Path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		require.Equal(t, binary.BigEndian.AppendUint32(nil, formatVersion), tx.Bucket(bucketMeta).Get(keyFormatVersion))
		return nil
	}))
	require.NoError(t, db.Close())
}

// Damaged tombstones are an error, never a panic nor a skip (a skipped one
// would show deleted samples again).
func FuzzDecodeTombstone(f *testing.F) {
	v, err := encodeTombstone(Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "a", "b.*")}, MinTime: -1, MaxTime: 9})
	require.NoError(f, err)
	f.Add(v)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := decodeTombstone(b)
		if err != nil {
			return
		}
		enc, err := encodeTombstone(ts)
		require.NoError(t, err)
		again, err := decodeTombstone(enc)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(ts), fmt.Sprint(again), "a decoded tombstone round-trips")
	})
}

// hours is a retention of h for every tenant.
func hours(h time.Duration) func(string) time.Duration {
	return func(string) time.Duration { return h }
}

func TestRetention(t *testing.T) {
	s := openTest(t, testOptions(t))
	now := time.UnixMilli(10_000_000)
	cutoff := now.Add(-time.Hour).UnixMilli()
	old := labels.FromStrings("__name__", "m", "kind", "old", "only_old", "yes")
	mixed := labels.FromStrings("__name__", "m", "kind", "mixed")
	edge := labels.FromStrings("__name__", "m", "kind", "edge")
	require.NoError(t, s.Put("t1", []SeriesChunks{
		seriesOf(old, rawChunk(0, 100, "o1"), rawChunk(101, cutoff-1, "o2")),
		seriesOf(mixed, rawChunk(0, 100, "m1"), rawChunk(cutoff-10, cutoff+10, "m2")),
		seriesOf(edge, rawChunk(cutoff-10, cutoff, "e1")),
	}))
	require.NoError(t, s.Put("gone", []SeriesChunks{seriesOf(old, rawChunk(0, 100, "g"))}))

	deleted, err := s.ApplyRetention(now, hours(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 4, deleted)

	got, err := s.Select("t1", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, edge, got[0].Labels, "MaxTime equal to the cutoff is kept")
	require.Equal(t, mixed, got[1].Labels)
	require.Equal(t, "m2", string(got[1].Chunks[0].Data))

	names, err := s.LabelNames("t1", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.NotContains(t, names, "only_old")
	err = s.db.View(func(tx *bbolt.Tx) error {
		r, err := openReader(tx, "t1", coldEnv{})
		require.NoError(t, err)
		require.Empty(t, postingsOf(t, r, "only_old", "yes"), "postings of emptied series removed")
		require.Empty(t, postingsOf(t, r, "kind", "old"))
		return nil
	})
	require.NoError(t, err)

	tenants, err := s.Tenants()
	require.NoError(t, err)
	require.Equal(t, []string{"t1"}, tenants, "emptied tenant removed")

	// The series comes back under a new ID when written again.
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(old, rawChunk(cutoff, cutoff+1, "new"))}))
	series, err := s.Series("t1", math.MinInt64, math.MaxInt64, nil, labels.MustNewMatcher(labels.MatchEqual, "kind", "old"))
	require.NoError(t, err)
	require.Equal(t, []labels.Labels{old}, series)

	deleted, err = s.ApplyRetention(now, hours(time.Hour))
	require.NoError(t, err)
	require.Zero(t, deleted)
}

func TestRetentionSpansBatches(t *testing.T) {
	s := openTest(t, testOptions(t))
	n := retentionBatchSeries + 7
	batch := make([]SeriesChunks, 0, n)
	for i := range n {
		batch = append(batch, seriesOf(labels.FromStrings("i", fmt.Sprint(i)), rawChunk(0, 1, "x")))
	}
	require.NoError(t, s.Put("t1", batch))
	deleted, err := s.ApplyRetention(time.UnixMilli(1000), hours(time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, n, deleted)
	tenants, err := s.Tenants()
	require.NoError(t, err)
	require.Empty(t, tenants)
}

func TestConcurrentSelectDuringPut(t *testing.T) {
	s := openTest(t, testOptions(t))
	const batches, perBatch = 40, 20
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	done := make(chan struct{})
	chunk := xorChunk(t, 0, 20, 10)
	wg.Go(func() {
		defer close(done)
		for b := range batches {
			batch := make([]SeriesChunks, 0, perBatch)
			for i := range perBatch {
				ls := labels.FromStrings("__name__", "m", "batch", fmt.Sprint(b), "i", fmt.Sprint(i))
				batch = append(batch, seriesOf(ls, chunk))
			}
			if err := s.Put("t1", batch); err != nil {
				errs <- err
				return
			}
		}
	})
	for range 3 {
		wg.Go(func() {
			seen := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := s.Select("t1", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
				if err != nil {
					errs <- err
					return
				}
				if len(got) < seen || len(got)%perBatch != 0 {
					errs <- fmt.Errorf("saw %d series after %d: a batch is not atomic", len(got), seen)
					return
				}
				seen = len(got)
				for _, sc := range got {
					if _, err := chunkenc.FromData(sc.Chunks[0].Encoding, sc.Chunks[0].Data); err != nil {
						errs <- err
						return
					}
				}
				if _, err := s.LabelValues("t1", "batch", math.MinInt64, math.MaxInt64); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := s.Series("t1", math.MinInt64, math.MaxInt64, nil)
	require.NoError(t, err)
	require.Len(t, got, batches*perBatch)
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := testOptions(t)
	s, err := Open(opts, reg, nil)
	require.NoError(t, err)
	c1, c2 := xorChunk(t, 0, 10, 10), xorChunk(t, 100, 10, 10)
	require.NoError(t, s.Put("t1", []SeriesChunks{seriesOf(labels.FromStrings("a", "b"), c1, c2)}))
	_, err = s.Select("t1", 0, 1000)
	require.NoError(t, err)
	require.InDelta(t, 2, testutil.ToFloat64(s.m.chunksWritten), 0)
	require.InDelta(t, len(c1.Data)+len(c2.Data), testutil.ToFloat64(s.m.bytesWritten), 0)
	require.Positive(t, testutil.ToFloat64(s.m.dbSize))
	n, err := testutil.GatherAndCount(reg, "orrery_store_put_duration_seconds", "orrery_store_select_duration_seconds", "orrery_store_retention_deleted_chunks_total")
	require.NoError(t, err)
	require.Equal(t, 3, n)

	require.NoError(t, s.Close())
	s, err = Open(opts, reg, nil)
	require.NoError(t, err, "Close unregisters, so the registry can be reused")
	require.NoError(t, s.Close())
}

func postingsOf(t *testing.T, r *reader, name, value string) []uint64 {
	ids, err := r.postingsEqual(name, value, nil)
	require.NoError(t, err)
	return ids
}

// The final label check hides a postings lookup that returns too much, so
// the lookup itself is checked here.
func TestPostingsEqualIsExact(t *testing.T) {
	s := matcherFixture(t)
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		r, err := openReader(tx, "t1", coldEnv{})
		require.NoError(t, err)
		require.Len(t, postingsOf(t, r, "v", "a"), 1)
		require.Len(t, postingsOf(t, r, "v", "a\x00b"), 1)
		require.Len(t, postingsOf(t, r, "job", "api"), 4)
		return nil
	}))
}

func TestRegexpSetWithRepeatedValue(t *testing.T) {
	s := matcherFixture(t)
	got, err := s.Series("t1", 0, 10, nil, labels.MustNewMatcher(labels.MatchRegexp, "instance", "b|b|c"))
	require.NoError(t, err)
	require.Len(t, got, 2)
}

// A batch ends once its chunks pass selectBatchBytes, whatever batchSeries
// allows, so that long histories cannot make one batch unbounded.
func TestSelectBatchesBoundsBytes(t *testing.T) {
	s := openTest(t, testOptions(t))
	big := string(make([]byte, selectBatchBytes/2+1))
	var batch []SeriesChunks
	for k := range 5 {
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "m", "k", fmt.Sprint(k)), rawChunk(0, 10, big)))
	}
	require.NoError(t, s.Put("t1", batch))
	var sizes []int
	require.NoError(t, s.SelectBatches("t1", 0, 10, 100, nil, func(b []SeriesChunks) error {
		sizes = append(sizes, len(b))
		return nil
	}))
	require.Equal(t, []int{2, 2, 1}, sizes)
}

// Keep sees each matching series' whole labels and decides before its
// chunks are read: the chunks of the series it rejects are corrupted here,
// and reading them would fail the read.
func TestKeepSkipsSeriesBeforeTheirChunks(t *testing.T) {
	s := openTest(t, testOptions(t))
	var batch []SeriesChunks
	for k := range 6 {
		job := []string{"api", "db"}[k%2]
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "up", "job", job, "k", fmt.Sprint(k)), xorChunk(t, 0, 3, 5)))
	}
	require.NoError(t, s.Put("t1", batch))
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketTenants).Bucket([]byte("t1"))
		return tb.Bucket(bucketSeries).ForEach(func(k, v []byte) error {
			ls, err := decodeLabels(nil, string(v))
			if err != nil || getLabel(ls, "job") != "db" {
				return err
			}
			c := tb.Bucket(bucketChunks).Cursor()
			for ck, _ := c.Seek(k); ck != nil && bytes.HasPrefix(ck, k); ck, _ = c.Next() {
				if err := tb.Bucket(bucketChunks).Put(slices.Clone(ck), []byte{1}); err != nil {
					return err
				}
			}
			return nil
		})
	}))
	var seen []string
	keep := func(ls labels.Labels) bool {
		seen = append(seen, ls.String())
		return ls.Get("job") == "api"
	}
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	var got []string
	require.NoError(t, s.SelectBatches("t1", 0, 100, 2, keep, func(b []SeriesChunks) error {
		for _, sc := range b {
			got = append(got, sc.Labels.String())
			require.Len(t, sc.Chunks, 1)
		}
		return nil
	}, up))
	want := []string{`{__name__="up", job="api", k="0"}`, `{__name__="up", job="api", k="2"}`, `{__name__="up", job="api", k="4"}`}
	require.Equal(t, want, got)
	slices.Sort(seen)
	require.Len(t, seen, 6, "keep saw every matching series")
	require.Contains(t, seen, `{__name__="up", job="db", k="5"}`)

	series, err := s.Series("t1", 0, 100, keep, up)
	require.NoError(t, err)
	require.Equal(t, want, labelStrings(series))

	require.ErrorIs(t, s.SelectBatches("t1", 0, 100, 2, nil, func([]SeriesChunks) error { return nil }, up), errCorrupt,
		"without keep the corrupted chunks are read")
	_, err = s.Series("t1", 0, 100, nil, up)
	require.ErrorIs(t, err, errCorrupt)
}
