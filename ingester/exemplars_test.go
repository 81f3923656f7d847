package ingester

import (
	"fmt"
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
)

type testExemplar struct {
	trace string
	t     int64
	v     float64
}

// exemplarPush encodes series name's samples at the exemplars' times and
// the exemplars after them, as the distributor sends them.
func exemplarPush(name string, exs ...testExemplar) []byte {
	ls := histLabels(name)
	buf := ingesterpb.AppendSeriesHeader(nil, ls, len(exs))
	for _, e := range exs {
		buf = ingesterpb.AppendSample(buf, e.t, e.v)
	}
	buf = ingesterpb.AppendExemplarSeriesHeader(buf, ls, len(exs))
	for _, e := range exs {
		var el []byte
		if e.trace != "" {
			el = ingesterpb.AppendLabels(nil, labels.FromStrings("trace_id", e.trace))
		}
		buf = ingesterpb.AppendExemplar(buf, el, e.t, e.v)
	}
	return buf
}

func (ti *testIngester) exemplars(t *testing.T, tenantID string, start, end int64) map[string][]testExemplar {
	t.Helper()
	resp, err := ti.client.QueryExemplars(ctxFor(tenantID), &ingesterpb.ExemplarQueryRequest{StartMs: start, EndMs: end,
		MatcherSets: []*ingesterpb.MatcherSet{{Matchers: ingesterpb.FromMatchers([]*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")})}}})
	require.NoError(t, err)
	out := map[string][]testExemplar{}
	var b labels.ScratchBuilder
	for _, s := range resp.Series {
		name := ingesterpb.ToLabels(&b, s.SeriesLabels).Get("__name__")
		for _, e := range s.Exemplars {
			out[name] = append(out[name], testExemplar{ingesterpb.ToLabels(&b, e.Labels).Get("trace_id"), e.TimestampMs, e.Value})
		}
	}
	return out
}

// Exemplars are kept per tenant up to the ingester's share of the limit,
// oldest dropped first; a repeat is ignored, an older one dropped and
// counted, neither failing the push; they come back after a crash (WAL)
// and from a checkpoint; a tenant without a limit stores none.
func TestExemplarsAreKeptBoundedAndDurable(t *testing.T) {
	dir := t.TempDir()
	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalExemplarsPerUser: 4})
	ti := newTestIngester(t, dir, testConfig(), withOverrides(o))
	require.NoError(t, ti.push(t, "a", exemplarPush("x", testExemplar{"t1", 1000, 1}, testExemplar{"t2", 2000, 2})))
	require.NoError(t, ti.push(t, "a", exemplarPush("y", testExemplar{"t3", 1500, 3})))
	require.NoError(t, ti.push(t, "a", exemplarPush("x", testExemplar{"t2", 2000, 2})), "a retry")
	require.NoError(t, ti.push(t, "a", exemplarPush("y", testExemplar{"", 3000, 4})), "no labels")
	want := map[string][]testExemplar{"x": {{"t1", 1000, 1}, {"t2", 2000, 2}}, "y": {{"t3", 1500, 3}, {"", 3000, 4}}}
	require.Equal(t, want, ti.exemplars(t, "a", 0, 10_000))
	require.Equal(t, map[string][]testExemplar{"x": {{"t2", 2000, 2}}, "y": {{"t3", 1500, 3}}}, ti.exemplars(t, "a", 1500, 2000))

	// An older exemplar is dropped and counted; its sample is stored.
	buf := ingesterpb.AppendSeriesHeader(nil, histLabels("x"), 1)
	buf = ingesterpb.AppendSample(buf, 5000, 5)
	buf = ingesterpb.AppendExemplarSeriesHeader(buf, histLabels("x"), 1)
	buf = ingesterpb.AppendExemplar(buf, nil, 500, 0.5)
	require.NoError(t, ti.push(t, "a", buf))
	require.Equal(t, 1.0, testutil.ToFloat64(ti.m.exemplarsRejected.WithLabelValues("a", "out_of_order")))
	require.Len(t, ti.allSamples(t, "a", "x"), 3)

	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig(), withOverrides(o))
	require.Equal(t, want, ti.exemplars(t, "a", 0, 10_000), "after a crash")
	require.NoError(t, ti.checkpoint())
	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig(), withOverrides(o))
	require.Equal(t, want, ti.exemplars(t, "a", 0, 10_000), "from a checkpoint")

	// The fifth pushes out the oldest.
	require.NoError(t, ti.push(t, "a", exemplarPush("x", testExemplar{"t5", 6000, 6})))
	got := ti.exemplars(t, "a", 0, 10_000)
	require.Equal(t, []testExemplar{{"t2", 2000, 2}, {"t5", 6000, 6}}, got["x"])

	require.NoError(t, ti.push(t, "b", exemplarPush("x", testExemplar{"t1", 1000, 1})))
	require.Empty(t, ti.exemplars(t, "b", 0, 10_000))
	require.Equal(t, 1.0, testutil.ToFloat64(ti.m.exemplarsRejected.WithLabelValues("b", "disabled")))
	ti.stop(t)
}

// The storage starts small and doubles as it fills, up to the limit: a
// tenant with a large limit keeps every exemplar it sends below it.
func TestExemplarStorageGrowsToTheLimit(t *testing.T) {
	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalExemplarsPerUser: 3000})
	ti := newTestIngester(t, t.TempDir(), testConfig(), withOverrides(o))
	defer ti.stop(t)
	for k := range 2500 {
		require.NoError(t, ti.push(t, "a", exemplarPush(fmt.Sprint("s", k%50), testExemplar{fmt.Sprint(k), int64(k) * 1000, 1})))
	}
	n := 0
	for _, exs := range ti.exemplars(t, "a", 0, math.MaxInt64) {
		n += len(exs)
	}
	require.Equal(t, 2500, n)
	require.EqualValues(t, 3000, ti.head("a", false).exemplars.size, "1024, 2048, then the limit")
}

// A deletion hides the exemplars of the deleted series in its range too.
func TestDeleteSeriesHidesExemplars(t *testing.T) {
	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalExemplarsPerUser: 10})
	ti := newTestIngester(t, t.TempDir(), testConfig(), withOverrides(o))
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", exemplarPush("x", testExemplar{"t1", 1000, 1}, testExemplar{"t2", 2000, 2})))
	require.NoError(t, ti.push(t, "a", exemplarPush("y", testExemplar{"t3", 1500, 3})))
	require.NoError(t, ti.deleteSeries(t, "a", 0, 1500, 10_000, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")))
	require.Equal(t, map[string][]testExemplar{"x": {{"t2", 2000, 2}}}, ti.exemplars(t, "a", 0, 10_000))
}
