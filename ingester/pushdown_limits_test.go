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
	var tis []*testIngester
	for range 2 {
		ti := newTestIngester(t, t.TempDir(), testConfig(), withPushdown())
		t.Cleanup(func() { ti.stop(t) })
		tis = append(tis, ti)
	}
	writePushdownData(t, tis, 1800, func(int, labels.Labels, int) bool { return true })
	r := replicaRing{tis: tis}
	lim := fixedLimits{limits.Limits{MaxFetchedSeriesPerQuery: 6}}
	plain, _ := pushdownQuerier(t, r, lim, false)
	pushed, _ := pushdownQuerier(t, r, lim, true)
	// 4 + 4 series: over the limit of 6.
	params := url.Values{"query": {`sum(load{job="api"}) + sum(load{job="db"})`}, "start": {"0"}, "end": {"1800"}, "step": {"60"}}
	wantCode, want := apiGet(t, plain, "/query_range", params)
	require.Equal(t, http.StatusUnprocessableEntity, wantCode, want)
	code, got := apiGet(t, pushed, "/query_range", params)
	require.Equal(t, wantCode, code, got)
	require.JSONEq(t, want, got)
}

// Two aggregations of one query that read the same series: read whole,
// each series counts once against max_fetched_series_per_query; pushed
// down, the digests count them per aggregation, so at the limit the query
// is evaluated whole instead and answers as read whole.
func TestPushdownSeriesLimitWithSeriesReadTwice(t *testing.T) {
	var tis []*testIngester
	for range 2 {
		ti := newTestIngester(t, t.TempDir(), testConfig(), withPushdown())
		t.Cleanup(func() { ti.stop(t) })
		tis = append(tis, ti)
	}
	writePushdownData(t, tis, 1800, func(int, labels.Labels, int) bool { return true })
	r := replicaRing{tis: tis}
	lim := fixedLimits{limits.Limits{MaxFetchedSeriesPerQuery: 12}} // the load series
	plain, _ := pushdownQuerier(t, r, lim, false)
	pushed, reg := pushdownQuerier(t, r, lim, true)
	params := url.Values{"query": {`sum(load) / count(load)`}, "start": {"0"}, "end": {"1800"}, "step": {"60"}}
	wantCode, want := apiGet(t, plain, "/query_range", params)
	require.Equal(t, http.StatusOK, wantCode, want)
	code, got := apiGet(t, pushed, "/query_range", params)
	require.Equal(t, wantCode, code, got)
	requireSameValues(t, []string{"\n" + want}, []string{"\n" + got})
	require.Equal(t, 1.0, pushdownCounter(reg, "orrery_querier_pushdown_queries_total", "limits"))
}
