package querier

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/tenant"
)

type apiBody struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func decode(t *testing.T, body string) apiBody {
	t.Helper()
	var b apiBody
	require.NoError(t, json.Unmarshal([]byte(body), &b), body)
	return b
}

// PromQL prefixes every storage error with "expanding series: "; the
// series API and federation do not.
const (
	seriesLimitMsg  = "the query exceeded the maximum number of series fetched (limit: 9) (err-orrery-max-series-per-query: raise the tenant's max_fetched_series_per_query, or -querier.max-fetched-series-per-query)"
	samplesLimitMsg = "the query exceeded the maximum number of samples fetched (limit: 89) (err-orrery-max-samples-per-query: raise the tenant's max_fetched_samples_per_query, or -querier.max-fetched-samples-per-query)"
	promqlPrefix    = "expanding series: "
)

// Ten series of nine samples each, all inside an instant query's lookback
// window: the query fetches 10 series and 90 samples, however many
// replicas hold them.
func TestFetchLimits(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	data := map[string][]fakeSeries{"t": series("m", 10, now.Add(-2*time.Minute), now)}
	instant := url.Values{"query": {"count(m)"}, "time": {unix(now)}}
	for _, c := range []struct {
		name       string
		path       string
		params     url.Values
		lim        limits.Limits
		code       int
		errorType  string
		msg        string
		reason     string
		replicas   int
		plainError bool // federate answers in text, not the API's JSON
	}{
		{name: "unlimited", path: "/query", params: instant, code: 200, replicas: 1},
		{name: "series at the limit", path: "/query", params: instant, lim: limits.Limits{MaxFetchedSeriesPerQuery: 10}, code: 200, replicas: 1},
		{name: "series at the limit, three replicas", path: "/query", params: instant, lim: limits.Limits{MaxFetchedSeriesPerQuery: 10}, code: 200, replicas: 3},
		{name: "series over", path: "/query", params: instant, lim: limits.Limits{MaxFetchedSeriesPerQuery: 9}, code: 422, errorType: "execution", msg: promqlPrefix + seriesLimitMsg, reason: reasonMaxSeries, replicas: 1},
		{name: "series over, three replicas", path: "/query", params: instant, lim: limits.Limits{MaxFetchedSeriesPerQuery: 9}, code: 422, errorType: "execution", msg: promqlPrefix + seriesLimitMsg, reason: reasonMaxSeries, replicas: 3},
		{name: "samples at the limit", path: "/query", params: instant, lim: limits.Limits{MaxFetchedSamplesPerQuery: 90}, code: 200, replicas: 3},
		{name: "samples over", path: "/query", params: instant, lim: limits.Limits{MaxFetchedSamplesPerQuery: 89}, code: 422, errorType: "execution", msg: promqlPrefix + samplesLimitMsg, reason: reasonMaxSamples, replicas: 3},
		{
			name: "range query samples over", path: "/query_range", lim: limits.Limits{MaxFetchedSamplesPerQuery: 89}, code: 422, errorType: "execution", msg: promqlPrefix + samplesLimitMsg, reason: reasonMaxSamples, replicas: 1,
			params: url.Values{"query": {"sum(m)"}, "start": {unix(now.Add(-time.Minute))}, "end": {unix(now)}, "step": {"15"}},
		},
		{
			name: "a series selected twice counts once", path: "/query", lim: limits.Limits{MaxFetchedSeriesPerQuery: 10}, code: 200, replicas: 1,
			params: url.Values{"query": {"count(m) + count(m offset 1s)"}, "time": {unix(now)}},
		},
		{
			name: "series API over", path: "/series", lim: limits.Limits{MaxFetchedSeriesPerQuery: 9}, code: 422, errorType: "execution", msg: seriesLimitMsg, reason: reasonMaxSeries, replicas: 3,
			params: url.Values{"match[]": {"m"}},
		},
		{
			name: "federate over", path: FederatePath, lim: limits.Limits{MaxFetchedSeriesPerQuery: 9}, code: 422, msg: seriesLimitMsg, reason: reasonMaxSeries, replicas: 1, plainError: true,
			params: url.Values{"match[]": {"m"}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			tq := newTestQuerier(t, testConfig(), c.replicas, data, false)
			tq.limits.set("t", c.lim)
			path := c.path
			if path != FederatePath {
				path = PathPrefix + path
			}
			code, body := tq.get(t, "t", path, c.params)
			require.Equal(t, c.code, code, body)
			if c.plainError {
				require.Equal(t, c.msg+"\n", body)
			} else if c.code != 200 {
				got := decode(t, body)
				require.Equal(t, c.errorType, got.ErrorType)
				require.Equal(t, c.msg, got.Error)
			}
			if c.reason != "" {
				require.Equal(t, 1.0, tq.rejected("t", c.reason))
			}
		})
	}
}

// Once over the limit the query stops reading: no ingester sends more than
// the batch that went over, and the next select does not fetch at all.
func TestFetchLimitStopsFetching(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	const replicas = 3
	tq := newTestQuerier(t, testConfig(), replicas, map[string][]fakeSeries{"t": series("m", 100, now.Add(-time.Minute), now)}, false)
	tq.limits.set("t", limits.Limits{MaxFetchedSeriesPerQuery: 1})
	code, body := tq.get(t, "t", PathPrefix+"/query", url.Values{"query": {"count(m) + count(m offset 1m)"}, "time": {unix(now)}})
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	// One series per message: each ingester sent the series within the
	// limit and at most one more; 3 x 100 x 2 selects without the limit.
	require.LessOrEqual(t, tq.cluster.sent(), int64(2*replicas))
	require.Equal(t, 1.0, tq.rejected("t", reasonMaxSeries), "counted once per query")
}

// The limits are read per query: a changed override applies to the next
// query, as a reloaded overrides file does.
func TestLimitsApplyToTheNextQuery(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	tq := newTestQuerier(t, testConfig(), 1, map[string][]fakeSeries{"t": series("m", 10, now.Add(-time.Minute), now)}, false)
	q := url.Values{"query": {"count(m)"}, "time": {unix(now)}}
	code, _ := tq.get(t, "t", PathPrefix+"/query", q)
	require.Equal(t, http.StatusOK, code)
	tq.limits.set("t", limits.Limits{MaxFetchedSeriesPerQuery: 9})
	code, _ = tq.get(t, "t", PathPrefix+"/query", q)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	code, _ = tq.get(t, "other", PathPrefix+"/query", q)
	require.Equal(t, http.StatusOK, code, "another tenant keeps the defaults")
}

func TestMaxQueryLength(t *testing.T) {
	end := time.Now().Truncate(time.Hour)
	over, at := end.Add(-721*time.Hour), end.Add(-720*time.Hour)
	const msg = "the query time range exceeds the limit (query length: 721h0m0s, limit: 720h0m0s) (err-orrery-max-query-length: raise the tenant's max_query_length, or -querier.max-query-length)"
	rng := func(start time.Time) url.Values {
		return url.Values{"query": {"up"}, "start": {unix(start)}, "end": {unix(end)}, "step": {"3600"}}
	}
	window := func(start time.Time, extra ...string) url.Values {
		v := url.Values{"start": {unix(start)}, "end": {unix(end)}}
		for k := 0; k < len(extra); k += 2 {
			v.Set(extra[k], extra[k+1])
		}
		return v
	}
	for _, c := range []struct {
		name   string
		path   string
		params url.Values
		limit  time.Duration
		code   int
	}{
		{"range over", "/query_range", rng(over), 720 * time.Hour, 400},
		{"range at the limit", "/query_range", rng(at), 720 * time.Hour, 200},
		{"range without a limit", "/query_range", rng(over), 0, 200},
		{"RFC 3339 times", "/query_range", url.Values{"query": {"up"}, "start": {over.Format(time.RFC3339)}, "end": {end.Format(time.RFC3339)}, "step": {"3600"}}, 720 * time.Hour, 400},
		{"series over", "/series", window(over, "match[]", "up"), 720 * time.Hour, 400},
		{"labels over", "/labels", window(over), 720 * time.Hour, 400},
		{"label values over", "/label/job/values", window(over), 720 * time.Hour, 400},
		{"series without start", "/series", url.Values{"match[]": {"up"}, "end": {unix(end)}}, 720 * time.Hour, 200},
		{"labels over all time", "/labels", url.Values{"start": {v1MinTime}, "end": {v1MaxTime}}, 720 * time.Hour, 200},
		{"instant query", "/query", url.Values{"query": {"up"}, "time": {unix(end)}}, time.Hour, 200},
		{"bad start is Prometheus's error", "/query_range", url.Values{"query": {"up"}, "start": {"x"}, "end": {unix(end)}, "step": {"15"}}, time.Hour, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			tq := newTestQuerier(t, testConfig(), 1, nil, false)
			tq.limits.set("t", limits.Limits{MaxQueryLength: c.limit})
			code, body := tq.get(t, "t", PathPrefix+c.path, c.params)
			require.Equal(t, c.code, code, body)
			if c.code == 400 && c.name != "bad start is Prometheus's error" {
				got := decode(t, body)
				require.Equal(t, "bad_data", got.ErrorType)
				require.Equal(t, msg, got.Error)
				require.Equal(t, 1.0, tq.rejected("t", reasonMaxLength))
			}
		})
	}
}

// The boundary times Prometheus clients send for "unbounded".
var (
	v1MinTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC().Format(time.RFC3339Nano)
	v1MaxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC().Format(time.RFC3339Nano)
)

// Data older than now-max_query_lookback is not read: selects are
// clamped, and a query entirely older sees nothing.
func TestMaxQueryLookback(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	data := map[string][]fakeSeries{"t": series("m", 2, now.Add(-2*time.Hour), now)}
	tq := newTestQuerier(t, testConfig(), 1, data, false)
	tq.limits.set("t", limits.Limits{MaxQueryLookback: time.Hour})
	oldest := now.Add(-time.Hour).UnixMilli()

	q, err := tq.q.Querier(now.Add(-2*time.Hour).UnixMilli(), now.UnixMilli())
	require.NoError(t, err)
	ctx := tenant.WithID(context.Background(), "t")
	set := q.Select(ctx, true, &storage.SelectHints{Start: now.Add(-2 * time.Hour).UnixMilli(), End: now.UnixMilli()})
	var n int
	for set.Next() {
		it := set.At().Iterator(nil)
		require.Equal(t, chunkenc.ValFloat, it.Next())
		first, _ := it.At()
		require.GreaterOrEqual(t, first, oldest, "a sample older than the lookback was read")
		n++
	}
	require.NoError(t, set.Err())
	require.Equal(t, 2, n)
	set = q.Select(ctx, true, &storage.SelectHints{Start: now.Add(-2 * time.Hour).UnixMilli(), End: now.Add(-90 * time.Minute).UnixMilli()})
	require.False(t, set.Next(), "a select entirely older than the lookback reads nothing")

	for _, c := range []struct {
		name, path string
		params     url.Values
		want       string // in the data
	}{
		{"instant query inside", "/query", url.Values{"query": {"count(m)"}, "time": {unix(now.Add(-30 * time.Minute))}}, `"2"]`},
		{"instant query older", "/query", url.Values{"query": {"count(m)"}, "time": {unix(now.Add(-90 * time.Minute))}}, `"result":[]`},
		{
			"range query starts at the lookback", "/query_range",
			url.Values{"query": {"count(m)"}, "start": {unix(now.Add(-2 * time.Hour))}, "end": {unix(now)}, "step": {"1800"}},
			`"values":[[` + unix(now.Add(-30*time.Minute)) + `,"2"],[` + unix(now) + `,"2"]]`,
		},
		{"series older", "/series", url.Values{"match[]": {"m"}, "start": {unix(now.Add(-2 * time.Hour))}, "end": {unix(now.Add(-90 * time.Minute))}}, `"data":[]`},
		{"labels older", "/labels", url.Values{"start": {unix(now.Add(-2 * time.Hour))}, "end": {unix(now.Add(-90 * time.Minute))}}, `"data":[]`},
		{"label values inside", "/label/instance/values", url.Values{"start": {unix(now.Add(-2 * time.Hour))}, "end": {unix(now)}}, `"data":["i0","i1"]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := tq.get(t, "t", PathPrefix+c.path, c.params)
			require.Equal(t, http.StatusOK, code, body)
			contains(t, body, c.want)
		})
	}
}

// A tenant's query_timeout replaces -querier.timeout, shorter or longer,
// and ends the query with the same Prometheus timeout error, cancelling
// the ingester calls.
func TestTenantQueryTimeout(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	data := map[string][]fakeSeries{"t": series("m", 1, now.Add(-time.Minute), now)}
	q := url.Values{"query": {"count(m)"}, "time": {unix(now)}}
	var bodies []string
	for _, c := range []struct {
		name           string
		global, tenant time.Duration
		code           int
	}{
		{"global timeout", 50 * time.Millisecond, 0, 503},
		{"shorter tenant timeout", 10 * time.Second, 50 * time.Millisecond, 503},
		{"longer tenant timeout", 50 * time.Millisecond, 10 * time.Second, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Timeout = c.global
			tq := newTestQuerier(t, cfg, 1, data, false)
			tq.cluster.ingesters[0].delay = 300 * time.Millisecond
			tq.limits.set("t", limits.Limits{QueryTimeout: c.tenant})
			code, body := tq.get(t, "t", PathPrefix+"/query", q)
			require.Equal(t, c.code, code, body)
			if c.code == 200 {
				return
			}
			require.Equal(t, "timeout", decode(t, body).ErrorType)
			bodies = append(bodies, body)
			require.Equal(t, int64(1), tq.cluster.ingesters[0].cancelled.Load(), "the ingester call was cancelled")
			require.Equal(t, 1.0, tq.rejected("t", reasonTimeout))
		})
	}
	require.Len(t, bodies, 2)
	require.Equal(t, bodies[0], bodies[1], "a tenant's timeout is the same error as the global one")
}

func TestLimitsOfSeveralTenants(t *testing.T) {
	l := &fakeLimits{defaults: limits.Limits{MaxFetchedSeriesPerQuery: 100}}
	l.set("a", limits.Limits{MaxFetchedSeriesPerQuery: 10, MaxQueryLength: time.Hour, QueryTimeout: time.Minute})
	l.set("b", limits.Limits{MaxFetchedSeriesPerQuery: 0, MaxFetchedSamplesPerQuery: 5, MaxQueryLength: 2 * time.Hour, MaxQueryLookback: time.Hour})
	q := &Queryable{limits: l, cfg: Config{Timeout: 2 * time.Minute}}
	for _, c := range []struct {
		ids  []string
		want queryLimits
	}{
		{[]string{"a"}, queryLimits{maxSeries: 10, maxLength: time.Hour, timeout: time.Minute}},
		{[]string{"b"}, queryLimits{maxSamples: 5, maxLength: 2 * time.Hour, maxLookback: time.Hour, timeout: 2 * time.Minute}},
		{[]string{"c"}, queryLimits{maxSeries: 100, timeout: 2 * time.Minute}},
		{[]string{"a", "b"}, queryLimits{maxSeries: 10, maxSamples: 5, maxLength: time.Hour, maxLookback: time.Hour, timeout: time.Minute}},
		{[]string{"b", "c"}, queryLimits{maxSeries: 100, maxSamples: 5, maxLength: 2 * time.Hour, maxLookback: time.Hour, timeout: 2 * time.Minute}},
		{nil, queryLimits{timeout: 2 * time.Minute}},
	} {
		require.Equal(t, c.want, q.limitsOf(c.ids), "%v", c.ids)
	}
}

// The limiter counts a series once across replicas and selects, and its
// samples as the most one replica returned in one select, over all the
// messages that replica sent it in.
func TestFetchLimiterCounts(t *testing.T) {
	ls := labels.FromStrings("__name__", "m")
	chunk := func(ts ...int64) fakeSeries { return fakeSeries{lset: ls, ts: ts} }
	var rejected []string
	l := newFetchLimiter(queryLimits{maxSeries: 1, maxSamples: 5}, func(r string) { rejected = append(rejected, r) })
	s1, err := l.newSelect("t")
	require.NoError(t, err)
	require.NoError(t, s1.fromIngester().addChunks(wireSeries(t, chunk(1, 2, 3))))
	require.NoError(t, s1.fromIngester().addChunks(wireSeries(t, chunk(1, 2))), "a replica with fewer samples adds nothing")
	require.NoError(t, s1.fromIngester().addChunks(wireSeries(t, chunk(1, 2, 3, 4))), "one with more adds the difference")
	require.Equal(t, int64(4), l.samples)
	split := s1.fromIngester()
	require.NoError(t, split.addChunks(wireSeries(t, chunk(1, 2, 3))))
	require.NoError(t, split.addChunks(wireSeries(t, chunk(4, 5))), "a series in two messages of one replica counts both")
	require.Equal(t, int64(5), l.samples)
	s2, err := l.newSelect("t")
	require.NoError(t, err)
	require.ErrorContains(t, s2.fromIngester().addChunks(wireSeries(t, chunk(5, 6))), "maximum number of samples", "another select of the same series counts again")
	_, err = l.newSelect("t")
	require.ErrorContains(t, err, "maximum number of samples", "the query stays stopped")
	require.Equal(t, []string{reasonMaxSamples}, rejected)

	require.Nil(t, newFetchLimiter(queryLimits{}, nil), "no limit, no accounting")
	var none *fetchLimiter
	s, err := none.newSelect("t")
	require.NoError(t, err)
	require.NoError(t, s.fromIngester().addChunks(wireSeries(t, chunk(1))))
}
