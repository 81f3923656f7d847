package ingester

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
)

// max_fetched_series_per_query holds for a query across all its selects,
// pushed down as not: a query of two aggregations, each under the limit
// and together over it, is refused both ways.
func TestPushdownSeriesLimitIsPerQueryNotPerAggregation(t *testing.T) {
	r := pushdownReplicas(t, 2, 1800)
	lim := fixedLimits{limits.Limits{MaxFetchedSeriesPerQuery: 6}}
	plain, _ := pushdownQuerier(t, r, lim, false)
	pushed, _ := pushdownQuerier(t, r, lim, true)
	// 4 + 4 series: over the limit of 6.
	params := url.Values{"query": {`sum(load{job="api"}) + sum(load{job="db"})`}, "start": {"0"}, "end": {"1800"}, "step": {"60"}}
	want, got := answersWithStatus(t, plain, pushed, params, http.StatusUnprocessableEntity)
	require.JSONEq(t, want, got)
}

// Two aggregations of one query that read the same series: read whole,
// each series counts once against max_fetched_series_per_query; pushed
// down, the digests count them per aggregation, so at the limit the query
// is evaluated whole instead and answers as read whole.
func TestPushdownSeriesLimitWithSeriesReadTwice(t *testing.T) {
	r := pushdownReplicas(t, 2, 1800)
	lim := fixedLimits{limits.Limits{MaxFetchedSeriesPerQuery: 12}} // the load series
	plain, _ := pushdownQuerier(t, r, lim, false)
	pushed, reg := pushdownQuerier(t, r, lim, true)
	params := url.Values{"query": {`sum(load) / count(load)`}, "start": {"0"}, "end": {"1800"}, "step": {"60"}}
	want, got := answersWithStatus(t, plain, pushed, params, http.StatusOK)
	requireSameValues(t, []string{"\n" + want}, []string{"\n" + got})
	require.Equal(t, 1.0, pushdownCounter(reg, "orrery_querier_pushdown_queries_total", "limits"))
}

// A query that reads exactly max_fetched_series_per_query series (or
// samples) passes pushed down as unpushed: the series merged here because
// a replica differs count once, by their select, not also by the digests.
func TestPushdownCountsMergedSeriesOnceAgainstLimits(t *testing.T) {
	var tis []*testIngester
	for range 2 {
		ti := newTestIngester(t, t.TempDir(), testConfig(), withPushdown())
		t.Cleanup(func() { ti.stop(t) })
		tis = append(tis, ti)
	}
	writePushdownData(t, tis, 1800, func(r int, ls labels.Labels, ts int) bool {
		// One load series differs between the replicas: merged here.
		return !(r == 0 && ls.Get("job") == "api" && ls.Get("instance") == "i0" && ts >= 600 && ts < 900)
	})
	r := replicaRing{tis: tis}
	params := url.Values{"query": {`sum(load)`}, "start": {"0"}, "end": {"1800"}, "step": {"60"}}
	// 12 load series: exactly the limit.
	lim := fixedLimits{limits.Limits{MaxFetchedSeriesPerQuery: 12}}
	plain, _ := pushdownQuerier(t, r, lim, false)
	pushed, reg := pushdownQuerier(t, r, lim, true)
	answersWithStatus(t, plain, pushed, params, http.StatusOK)
	require.Positive(t, pushdownCounter(reg, "orrery_querier_pushdown_series_total", "querier"), "a series was merged")
}

// answersWithStatus asks plain and pushed the range query params, requires
// code of both, and returns their bodies.
func answersWithStatus(t *testing.T, plain, pushed http.Handler, params url.Values, code int) (want, got string) {
	t.Helper()
	wantCode, want := apiGet(t, plain, "/query_range", params)
	require.Equal(t, code, wantCode, want)
	gotCode, got := apiGet(t, pushed, "/query_range", params)
	require.Equal(t, code, gotCode, got)
	return want, got
}
