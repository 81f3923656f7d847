//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// pushSeries remote-writes n series name{i="0"…} as tenant, each with a
// sample every minute over [from, to], in one request.
func pushSeries(t *testing.T, o *orrery, tenantID, name string, n int, from, to time.Time, extra ...string) {
	t.Helper()
	req := &prompb.WriteRequest{}
	for k := range n {
		s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}}}
		for j := 0; j < len(extra); j += 2 {
			s.Labels = append(s.Labels, prompb.Label{Name: extra[j], Value: extra[j+1]})
		}
		s.Labels = append(s.Labels, prompb.Label{Name: "i", Value: strconv.Itoa(k)})
		for ts := from; !ts.After(to); ts = ts.Add(time.Minute) {
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: ts.UnixMilli(), Value: 1})
		}
		req.Timeseries = append(req.Timeseries, s)
	}
	raw, err := req.Marshal()
	require.NoError(t, err)
	c := loadgen.NewClient(o.url("/api/v1/push"), tenantID, 10*time.Second)
	require.NoError(t, c.Send(ctxTimeout(t, 10*time.Second), snappy.Encode(nil, raw)))
}

// getAs requests u as the tenant org (X-Scope-OrgID).
func getAs(t *testing.T, u, org string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", org)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// queryAs calls the Prometheus API (path with its query string) as the
// tenant org and decodes the envelope.
func queryAs(t *testing.T, o *orrery, org, path string, params url.Values) (int, apiResponse) {
	t.Helper()
	code, body := getAs(t, o.url("/prometheus/api/v1"+path+"?"+params.Encode()), org)
	var out apiResponse
	require.NoError(t, json.Unmarshal([]byte(body), &out), "status %d: %s", code, body)
	return code, out
}

// replaceFile swaps content in with a rename, as a ConfigMap update does,
// so the reloader never reads a half-written file.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

const overridesV1 = `
overrides:
  series:  {max_fetched_series_per_query: 5}
  samples: {max_fetched_samples_per_query: 300}
  length:  {max_query_length: 24h}
  lookback: {max_query_lookback: 1h}
  timeout: {query_timeout: 1ns}
`

// overridesV2 raises the series limit and lifts the timeout: the running
// process must apply both without a restart.
const overridesV2 = `
overrides:
  series:  {max_fetched_series_per_query: 10}
  samples: {max_fetched_samples_per_query: 300}
  length:  {max_query_length: 24h}
  lookback: {max_query_lookback: 1h}
  timeout: {query_timeout: 1m}
`

// TestQueryLimits: each per-tenant query limit, set in the overrides file
// of a real process, answers with its documented status, error type and
// message, is counted per tenant and reason, and a rewritten overrides
// file changes the limits of the running process.
func TestQueryLimits(t *testing.T) {
	overrides := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(overrides, []byte(overridesV1), 0o644))
	o := startOrrery(t, t.TempDir(), "-auth.enabled=true", "-runtime-config.file="+overrides, "-runtime-config.reload-period=100ms")

	now := time.Now().Truncate(time.Minute)
	for _, tenantID := range []string{"series", "samples", "length", "lookback", "timeout", "free"} {
		pushSeries(t, o, tenantID, "qlimit", 10, now.Add(-2*time.Hour), now)
	}
	at := strconv.FormatInt(now.Unix(), 10)
	instant := func(q string, ts time.Time) url.Values {
		return url.Values{"query": {q}, "time": {strconv.FormatInt(ts.Unix(), 10)}}
	}

	for _, c := range []struct {
		name, tenant, path string
		params             url.Values
		code               int
		errorType, msg     string
		reason             string
	}{
		{
			"series over", "series", "/query", instant("count(qlimit)", now), 422, "execution",
			"expanding series: the query exceeded the maximum number of series fetched (limit: 5) (err-orrery-max-series-per-query: raise the tenant's max_fetched_series_per_query, or -querier.max-fetched-series-per-query)",
			"max-series-per-query",
		},
		{
			"series API over", "series", "/series", url.Values{"match[]": {"qlimit"}}, 422, "execution",
			"the query exceeded the maximum number of series fetched (limit: 5) (err-orrery-max-series-per-query: raise the tenant's max_fetched_series_per_query, or -querier.max-fetched-series-per-query)",
			"max-series-per-query",
		},
		// Ingesters send whole chunks: a series' 121 samples are fetched
		// even for a short range. 10 series are over 300, one is within.
		{
			"samples over", "samples", "/query", instant("count_over_time(qlimit[1h])", now), 422, "execution",
			"expanding series: the query exceeded the maximum number of samples fetched (limit: 300) (err-orrery-max-samples-per-query: raise the tenant's max_fetched_samples_per_query, or -querier.max-fetched-samples-per-query)",
			"max-samples-per-query",
		},
		{"samples within", "samples", "/query", instant(`count_over_time(qlimit{i="0"}[1h])`, now), 200, "", "", ""},
		{
			"length over", "length", "/query_range",
			url.Values{"query": {"count(qlimit)"}, "start": {strconv.FormatInt(now.Add(-25*time.Hour).Unix(), 10)}, "end": {at}, "step": {"3600"}},
			400, "bad_data",
			"the query time range exceeds the limit (query length: 25h0m0s, limit: 24h0m0s) (err-orrery-max-query-length: raise the tenant's max_query_length, or -querier.max-query-length)",
			"max-query-length",
		},
		{
			"labels length over", "length", "/labels",
			url.Values{"start": {strconv.FormatInt(now.Add(-25*time.Hour).Unix(), 10)}, "end": {at}},
			400, "bad_data",
			"the query time range exceeds the limit (query length: 25h0m0s, limit: 24h0m0s) (err-orrery-max-query-length: raise the tenant's max_query_length, or -querier.max-query-length)",
			"max-query-length",
		},
		{
			"length within", "length", "/query_range",
			url.Values{"query": {"count(qlimit)"}, "start": {strconv.FormatInt(now.Add(-24*time.Hour).Unix(), 10)}, "end": {at}, "step": {"3600"}},
			200, "", "", "",
		},
		// Prometheus's own timeout error, as -querier.timeout gives; with a
		// deadline of 1ns the engine finds it expired before evaluating.
		{"timeout", "timeout", "/query", instant("count(qlimit)", now), 503, "timeout", "query timed out in query execution", "query-timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, resp := queryAs(t, o, c.tenant, c.path, c.params)
			require.Equal(t, c.code, code, "%+v", resp)
			if c.code == 200 {
				require.Equal(t, "success", resp.Status)
				return
			}
			require.Equal(t, c.errorType, resp.ErrorType)
			require.Equal(t, c.msg, resp.Error)
			// Refused by the frontend at the edge, or by the querier.
			labels := fmt.Sprintf(`{reason=%q,tenant=%q}`, c.reason, c.tenant)
			require.GreaterOrEqual(t, metricValue(t, o, "orrery_querier_queries_rejected_total"+labels)+metricValue(t, o, "orrery_frontend_queries_rejected_total"+labels), 1.0)
		})
	}

	// Lookback: the same query reads two hours for a tenant without the
	// limit, one for the tenant with it, and nothing entirely older.
	lastSample := func(tenantID, q string, ts time.Time) string {
		code, resp := queryAs(t, o, tenantID, "/query", instant(q, ts))
		require.Equal(t, http.StatusOK, code, "%+v", resp)
		var data queryData
		require.NoError(t, json.Unmarshal(resp.Data, &data))
		var res []seriesResult
		require.NoError(t, json.Unmarshal(data.Result, &res))
		if len(res) == 0 {
			return "none"
		}
		return fmt.Sprint(res[0].Value[1])
	}
	require.Equal(t, "121", lastSample("free", "max(count_over_time(qlimit[3h]))", now))
	lookback, err := strconv.Atoi(lastSample("lookback", "max(count_over_time(qlimit[3h]))", now))
	require.NoError(t, err)
	require.InDelta(t, 60, lookback, 1, "only the last hour is read")
	require.Equal(t, "none", lastSample("lookback", "count(qlimit)", now.Add(-90*time.Minute)))
	require.Equal(t, "10", lastSample("free", "count(qlimit)", now.Add(-90*time.Minute)))

	// A rewritten overrides file applies to the running process.
	replaceFile(t, overrides, overridesV2)
	require.Eventually(t, func() bool {
		code, _ := queryAs(t, o, "series", "/query", instant("count(qlimit)", now))
		return code == http.StatusOK
	}, 10*time.Second, 100*time.Millisecond, "the raised series limit was not applied")
	code, resp := queryAs(t, o, "timeout", "/query", instant("count(qlimit)", now))
	require.Equal(t, http.StatusOK, code, "%+v", resp)
	require.GreaterOrEqual(t, metricValue(t, o, `orrery_limits_overrides_reloads_total{result="success"}`), 1.0)
}
