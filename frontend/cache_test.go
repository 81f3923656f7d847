package frontend

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/tenant"
)

// recorder notes the ranges of the query_range requests a downstream
// serves, as offsets from t0.
type recorder struct {
	mu     sync.Mutex
	ranges []string
}

func (r *recorder) hook(req *http.Request) {
	_ = req.ParseForm()
	if req.Form.Get("start") == "" {
		return
	}
	at := func(s string) string {
		ts, _ := time.Parse(time.RFC3339Nano, s)
		return ts.Sub(t0).String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ranges = append(r.ranges, at(req.Form.Get("start"))+".."+at(req.Form.Get("end")))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.ranges
	r.ranges = nil
	// Parts run concurrently.
	slices.Sort(out)
	return out
}

func rangeParams(q string, start, end, step time.Duration) url.Values {
	sec := func(d time.Duration) string { return strconv.FormatInt(t0.Add(d).Unix(), 10) }
	return url.Values{"query": {q}, "start": {sec(start)}, "end": {sec(end)}, "step": {step.String()}}
}

// cacheFixture is a frontend split by 1h and not sharded, so each part is
// one downstream request, over a recorded downstream.
func cacheFixture(t *testing.T, now time.Time) (*Frontend, *recorder, roundTripHandler) {
	down := newDownstream(t, 1)
	rec := &recorder{}
	down.onRequest = rec.hook
	cfg := testConfig()
	cfg.SplitInterval = time.Hour
	cfg.QueryShards = 1
	return newTestFrontend(t, cfg, down, defaultLimits(), now), rec, roundTripHandler{down}
}

// TestCacheFetchesOnlyGaps: a part partly in the cache asks the queriers
// for the missing steps only, on the step grid, and answers as the direct
// query does.
func TestCacheFetchesOnlyGaps(t *testing.T) {
	f, rec, direct := cacheFixture(t, t0.Add(10*time.Hour))
	const q = `max by (instance) (node_load1)`
	check := func(start, end time.Duration, wantFetched ...string) {
		t.Helper()
		params := rangeParams(q, start, end, time.Minute)
		_, got := do(t, f, "a", "/query_range", params)
		require.Equal(t, wantFetched, rec.take())
		_, want := do(t, direct, "a", "/query_range", params)
		rec.take()
		require.Empty(t, diffResponses(want, got))
	}
	check(70*time.Minute, 80*time.Minute, "1h10m0s..1h20m0s")
	// Both sides of the cached extent are missing.
	check(60*time.Minute, 90*time.Minute, "1h0m0s..1h9m0s", "1h21m0s..1h30m0s")
	// Only the tail is missing; the earlier hour is a new part.
	check(50*time.Minute, 100*time.Minute, "1h31m0s..1h40m0s", "50m0s..59m0s")
	// All cached.
	check(55*time.Minute, 95*time.Minute)
	// Another step grid of the same step is another entry.
	check(60*time.Minute+30*time.Second, 70*time.Minute, "1h0m30s..1h9m30s")
	// The two parts of the all-cached query.
	require.Equal(t, 2.0, testutil.ToFloat64(f.cacheHits))
}

// TestCacheFreshness: steps newer than now minus max-cache-freshness are
// fetched every time; once old enough they are cached.
func TestCacheFreshness(t *testing.T) {
	now := t0.Add(2*time.Hour + 5*time.Minute)
	f, rec, _ := cacheFixture(t, now)
	params := rangeParams(`max(node_load1)`, 70*time.Minute, 2*time.Hour, time.Minute)
	do(t, f, "a", "/query_range", params)
	require.Equal(t, []string{"1h10m0s..1h59m0s", "2h0m0s..2h0m0s"}, rec.take())
	// The cutoff is 1h55m: the steps after it are asked again.
	do(t, f, "a", "/query_range", params)
	require.Equal(t, []string{"1h56m0s..1h59m0s", "2h0m0s..2h0m0s"}, rec.take())
	f.now = func() time.Time { return now.Add(time.Hour) }
	do(t, f, "a", "/query_range", params)
	require.Equal(t, []string{"1h56m0s..1h59m0s", "2h0m0s..2h0m0s"}, rec.take())
	do(t, f, "a", "/query_range", params)
	require.Empty(t, rec.take())
}

// TestCacheFreshnessFollowsOutOfOrderWindow: a tenant that takes samples
// up to an hour late has nothing of the last hour cached, and neither has
// a cross-tenant query including it.
func TestCacheFreshnessFollowsOutOfOrderWindow(t *testing.T) {
	now := t0.Add(2*time.Hour + 5*time.Minute)
	f, rec, _ := cacheFixture(t, now)
	f.limits = tenantLimits{}
	params := rangeParams(`max(node_load1)`, 70*time.Minute, 2*time.Hour, time.Minute)
	for _, org := range []string{"ooo", "a|ooo"} {
		do(t, f, org, "/query_range", params)
		rec.take()
		// The cutoff is 1h05m: everything after it is asked again.
		do(t, f, org, "/query_range", params)
		require.Equal(t, []string{"1h10m0s..1h59m0s", "2h0m0s..2h0m0s"}, rec.take(), org)
	}
}

// TestCacheSkipsAnnotatedAnswers: an answer with a warning or info is
// never cached, so it is asked for again and keeps its annotation.
func TestCacheSkipsAnnotatedAnswers(t *testing.T) {
	f, rec, direct := cacheFixture(t, t0.Add(10*time.Hour))
	params := rangeParams(`rate(node_load1[5m])`, 70*time.Minute, 80*time.Minute, time.Minute)
	_, want := do(t, direct, "a", "/query_range", params)
	require.Contains(t, string(want), "might not be a counter")
	rec.take()
	for range 2 {
		_, got := do(t, f, "a", "/query_range", params)
		require.Equal(t, []string{"1h10m0s..1h20m0s"}, rec.take())
		require.Empty(t, diffResponses(want, got))
	}
	require.Zero(t, testutil.ToFloat64(f.cacheHits))
}

// TestCacheTTLPerTenant: a tenant with results_cache_ttl 0 or with
// max_query_lookback is not cached, and a cross-tenant query is cached
// apart from each of its tenants.
func TestCacheTTLPerTenant(t *testing.T) {
	f, rec, _ := cacheFixture(t, t0.Add(10*time.Hour))
	f.limits = tenantLimits{"nocache": 0}
	params := rangeParams(`max(node_load1)`, 70*time.Minute, 80*time.Minute, time.Minute)
	for range 2 {
		do(t, f, "nocache", "/query_range", params)
		require.Len(t, rec.take(), 1)
	}
	require.Zero(t, testutil.ToFloat64(f.cacheRequests))
	do(t, f, "a", "/query_range", params)
	require.Len(t, rec.take(), 1)
	do(t, f, "a|b", "/query_range", params)
	require.Len(t, rec.take(), 1, "a cross-tenant query must not read one tenant's entry")
	do(t, f, "a|b", "/query_range", params)
	require.Empty(t, rec.take())
	do(t, f, "a|nocache", "/query_range", params)
	require.Len(t, rec.take(), 1)
	// Its answers change as now moves past max_query_lookback.
	for range 2 {
		do(t, f, "lookback", "/query_range", params)
		require.Len(t, rec.take(), 1)
	}
}

// tenantLimits gives the named tenants these results_cache_ttl, the rest
// a week.
type tenantLimits map[string]time.Duration

func (l tenantLimits) For(id string) *limits.Limits {
	ttl, ok := l[id]
	if !ok {
		ttl = 7 * 24 * time.Hour
	}
	lim := &limits.Limits{ResultsCacheTTL: ttl}
	switch id {
	case "lookback":
		lim.MaxQueryLookback = 24 * time.Hour
	case "ooo":
		lim.OutOfOrderTimeWindow = time.Hour
	}
	return lim
}

func TestMemoryCacheBoundAndExpiry(t *testing.T) {
	c := NewMemoryCache(1000)
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	val := make([]byte, 200)
	for k := range 10 {
		c.Store(ctx, map[string][]byte{fmt.Sprint("k", k): val}, time.Minute)
		require.LessOrEqual(t, c.Size(), int64(1000))
	}
	got := c.Fetch(ctx, []string{"k0", "k9", "k8"})
	require.NotContains(t, got, "k0", "the least recently used entry is evicted")
	require.Contains(t, got, "k9")
	// k8 was used last; storing more evicts others first.
	c.Fetch(ctx, []string{"k8"})
	c.Store(ctx, map[string][]byte{"x": val, "y": val}, time.Minute)
	require.Contains(t, c.Fetch(ctx, []string{"k8"}), "k8")
	// Too large for the whole cache: not stored.
	c.Store(ctx, map[string][]byte{"huge": make([]byte, 2000)}, time.Minute)
	require.NotContains(t, c.Fetch(ctx, []string{"huge"}), "huge")
	now = now.Add(2 * time.Minute)
	require.Empty(t, c.Fetch(ctx, []string{"k8", "k9", "x", "y"}))
	require.Zero(t, c.Size())
}

func TestExtentsRoundTrip(t *testing.T) {
	exts := []extent{
		{start: 1000, end: 5000, matrix: promql.Matrix{
			{Metric: labels.FromStrings("a", "1", "b", "ü"), Floats: []promql.FPoint{{T: 1000, F: 1.5}, {T: 3000, F: math.NaN()}, {T: 5000, F: math.Inf(-1)}}},
			{Metric: labels.EmptyLabels(), Floats: []promql.FPoint{{T: 2000, F: math.Copysign(0, -1)}}},
		}},
		{start: -7000, end: -7000, matrix: promql.Matrix{}},
	}
	got, err := decodeExtents(encodeExtents(exts))
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, exts[0].start, got[0].start)
	require.Equal(t, exts[0].matrix[0].Metric, got[0].matrix[0].Metric)
	require.Equal(t, 1.5, got[0].matrix[0].Floats[0].F)
	require.True(t, math.IsNaN(got[0].matrix[0].Floats[1].F))
	require.Equal(t, int64(5000), got[0].matrix[0].Floats[2].T)
	require.Equal(t, int64(-7000), got[1].end)
	// Every truncation is an error, never a panic.
	b := encodeExtents(exts)
	for n := range len(b) {
		_, err := decodeExtents(b[:n])
		require.Error(t, err, "truncated at %d", n)
	}
}

func FuzzDecodeExtents(f *testing.F) {
	f.Add(encodeExtents([]extent{{start: 1, end: 2, matrix: promql.Matrix{{Metric: labels.FromStrings("a", "b"), Floats: []promql.FPoint{{T: 1, F: 2}}}}}}))
	f.Add([]byte{1, 255, 255, 255, 255, 15})
	f.Fuzz(func(t *testing.T, b []byte) {
		exts, err := decodeExtents(b)
		if err != nil {
			return
		}
		again, err := decodeExtents(encodeExtents(exts))
		require.NoError(t, err)
		require.Len(t, again, len(exts))
	})
}

func TestGaps(t *testing.T) {
	f := func(exts []extent, start, end, step int64, want ...span) {
		t.Helper()
		require.Equal(t, want, gaps(exts, start, end, step))
	}
	f(nil, 0, 100, 10, span{0, 100})
	f([]extent{{start: 20, end: 50}}, 0, 100, 10, span{0, 10}, span{60, 100})
	f([]extent{{start: 0, end: 100}}, 0, 100, 10)
	f([]extent{{start: 30, end: 40}, {start: 70, end: 80}}, 0, 100, 10, span{0, 20}, span{50, 60}, span{90, 100})
	// An extent off the step grid is no use.
	f([]extent{{start: 25, end: 55}}, 0, 100, 10, span{0, 100})
}

// TestCacheNoStore: a request with Cache-Control: no-store is computed
// afresh and leaves the cache as it was, as Mimir's frontend does.
func TestCacheNoStore(t *testing.T) {
	f, rec, _ := cacheFixture(t, t0.Add(10*time.Hour))
	params := rangeParams(`max(node_load1)`, 70*time.Minute, 80*time.Minute, time.Minute)
	noStore := func() {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, querier.PathPrefix+"/query_range", strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cache-Control", "max-age=0, No-Store")
		req = req.WithContext(tenant.WithIDs(req.Context(), []string{"a"}))
		w := httptest.NewRecorder()
		f.ServeHTTP(w, req)
		require.Equal(t, http.StatusOK, w.Code)
		require.Len(t, rec.take(), 1)
	}
	noStore()
	noStore()
	require.Zero(t, testutil.ToFloat64(f.cacheRequests))
	do(t, f, "a", "/query_range", params)
	require.Len(t, rec.take(), 1, "no-store must not have filled the cache")
	do(t, f, "a", "/query_range", params)
	require.Empty(t, rec.take())
	noStore()
}

// TestUncachedShortQueryNotSplit: a query shorter than the split interval
// that is not cached is asked whole even where it crosses a boundary;
// cached, it is cut there.
func TestUncachedShortQueryNotSplit(t *testing.T) {
	f, rec, _ := cacheFixture(t, t0.Add(10*time.Hour))
	params := rangeParams(`max(node_load1)`, 50*time.Minute, 70*time.Minute, time.Minute)
	req := httptest.NewRequest(http.MethodPost, querier.PathPrefix+"/query_range", strings.NewReader(params.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cache-Control", "no-store")
	req = req.WithContext(tenant.WithIDs(req.Context(), []string{"a"}))
	w := httptest.NewRecorder()
	f.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)
	require.Len(t, rec.take(), 1, "asked whole")
	do(t, f, "a", "/query_range", params)
	require.ElementsMatch(t, []string{"50m0s..59m0s", "1h0m0s..1h10m0s"}, rec.take())
}
