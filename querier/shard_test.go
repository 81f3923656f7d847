package querier

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/querier/shard"
	"github.com/orrery/orrery/tenant"
)

// getShard is tq.get with the query shard header set to value.
func (tq *testQuerier) getShard(t *testing.T, value, path string, params url.Values) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil)
	r.Header.Set(tenant.HeaderName, "a")
	r.Header.Set(shard.Header, value)
	w := httptest.NewRecorder()
	tq.handler.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// resultSeries returns the result's series of a successful query or
// query_range answer, each as its labels' JSON and its values' JSON,
// sorted.
func resultSeries(t *testing.T, body string) []string {
	t.Helper()
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp), body)
	require.Equal(t, "success", resp.Status, body)
	out := make([]string, 0, len(resp.Data.Result))
	for _, r := range resp.Data.Result {
		out = append(out, string(r))
	}
	slices.Sort(out)
	return out
}

// A query sent n times with the shard header, once per shard, answers in
// its parts exactly what it answers unsharded, for selectors and per-series
// functions, instant and range: every series is in one part, whole.
func TestShardHeaderPartitionsQueries(t *testing.T) {
	now := time.Now().Truncate(time.Minute)
	var data []fakeSeries
	for _, m := range []string{"up", "req"} {
		for _, s := range series(m, 30, now.Add(-20*time.Minute), now) {
			s.lset = labels.NewBuilder(s.lset).Set("job", fmt.Sprint("j", len(data)%3)).Labels()
			data = append(data, s)
		}
	}
	tq := newTestQuerier(t, testConfig(), 3, map[string][]fakeSeries{"a": data}, false)
	reads := []struct {
		path   string
		params url.Values
	}{
		{"/query", url.Values{"query": {`{__name__=~"up|req"}`}, "time": {unix(now)}}},
		{"/query", url.Values{"query": {`rate(req{job!="j1"}[5m]) * 2`}, "time": {unix(now)}}},
		{"/query_range", url.Values{"query": {`up`}, "start": {unix(now.Add(-15 * time.Minute))}, "end": {unix(now)}, "step": {"60"}}},
		{"/query_range", url.Values{"query": {`increase(req[3m])`}, "start": {unix(now.Add(-15 * time.Minute))}, "end": {unix(now)}, "step": {"30"}}},
	}
	for _, read := range reads {
		code, body := tq.get(t, "a", PathPrefix+read.path, read.params)
		require.Equal(t, http.StatusOK, code, body)
		whole := resultSeries(t, body)
		require.NotEmpty(t, whole)
		for _, n := range []int{1, 2, 5, 16} {
			var union []string
			for i := 1; i <= n; i++ {
				code, body := tq.getShard(t, shard.Value(i, n), PathPrefix+read.path, read.params)
				require.Equal(t, http.StatusOK, code, body)
				union = append(union, resultSeries(t, body)...)
			}
			slices.Sort(union)
			require.Equal(t, whole, union, "%s %v in %d shards", read.path, read.params, n)
		}
	}
}

// A shard header the querier cannot honour is refused, never ignored.
func TestShardHeaderRejectsBadValues(t *testing.T) {
	now := time.Now()
	tq := newTestQuerier(t, testConfig(), 1, map[string][]fakeSeries{"a": series("up", 3, now.Add(-time.Minute), now)}, false)
	for _, v := range []string{"0_of_2", "3_of_2", "1of2", "x"} {
		code, body := tq.getShard(t, v, PathPrefix+"/query", url.Values{"query": {"up"}, "time": {unix(now)}})
		require.Equal(t, http.StatusBadRequest, code, v)
		require.True(t, strings.Contains(body, shard.Header), body)
	}
	require.Zero(t, tq.cluster.ingesters[0].calls.Load(), "no ingester was asked")
}
