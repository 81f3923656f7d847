//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// TestCrossTenantQueries: two tenants write the same metric name; with
// -tenant-federation.enabled a read as team-a|team-b gets both tenants'
// series, each labelled __tenant_id__, from every read API, and nothing of
// a third tenant; a write as team-a|team-b is refused. The same process
// restarted without the flag refuses the cross-tenant read.
func TestCrossTenantQueries(t *testing.T) {
	dataDir := t.TempDir()
	o := startOrrery(t, dataDir, "-auth.enabled=true", "-tenant-federation.enabled=true")
	now := time.Now().Truncate(time.Minute)
	pushSeries(t, o, "team-a", "shared", 2, now.Add(-10*time.Minute), now, "job", "a-job")
	pushSeries(t, o, "team-b", "shared", 1, now.Add(-10*time.Minute), now, "job", "b-job")
	pushSeries(t, o, "team-c", "shared", 1, now.Add(-10*time.Minute), now, "job", "c-job")
	at := strconv.FormatInt(now.Unix(), 10)

	metrics := func(org, query string) []map[string]string {
		t.Helper()
		code, resp := queryAs(t, o, org, "/query", url.Values{"query": {query}, "time": {at}})
		require.Equal(t, http.StatusOK, code, "%+v", resp)
		var data queryData
		require.NoError(t, json.Unmarshal(resp.Data, &data))
		var res []seriesResult
		require.NoError(t, json.Unmarshal(data.Result, &res))
		out := []map[string]string{}
		for _, r := range res {
			out = append(out, r.Metric)
		}
		return out
	}
	require.Equal(t, []map[string]string{
		{"__name__": "shared", "__tenant_id__": "team-a", "i": "0", "job": "a-job"},
		{"__name__": "shared", "__tenant_id__": "team-a", "i": "1", "job": "a-job"},
		{"__name__": "shared", "__tenant_id__": "team-b", "i": "0", "job": "b-job"},
	}, metrics("team-a|team-b", "shared"))
	require.Equal(t, []map[string]string{{"__tenant_id__": "team-a"}, {"__tenant_id__": "team-b"}},
		metrics("team-b|team-a", "count by (__tenant_id__) (shared)"))
	require.Equal(t, []map[string]string{{"__name__": "shared", "__tenant_id__": "team-b", "i": "0", "job": "b-job"}},
		metrics("team-a|team-b", `shared{__tenant_id__="team-b"}`))
	require.Equal(t, []map[string]string{
		{"__name__": "shared", "i": "0", "job": "a-job"},
		{"__name__": "shared", "i": "1", "job": "a-job"},
	}, metrics("team-a", "shared"), "one tenant's read is unchanged")

	api := func(org, path string) (int, string) {
		return getAs(t, o.url("/prometheus/api/v1"+path), org)
	}
	for _, c := range []struct{ path, want string }{
		{"/label/__tenant_id__/values", `{"status":"success","data":["team-a","team-b"]}`},
		{"/label/job/values", `{"status":"success","data":["a-job","b-job"]}`},
		{"/labels?match[]=shared", `{"status":"success","data":["__name__","__tenant_id__","i","job"]}`},
		{"/series?match[]=" + url.QueryEscape(`shared{job="b-job"}`), `{"status":"success","data":[{"__name__":"shared","__tenant_id__":"team-b","i":"0","job":"b-job"}]}`},
	} {
		code, body := api("team-a|team-b", c.path)
		require.Equal(t, http.StatusOK, code, body)
		require.JSONEq(t, c.want, body, c.path)
	}
	code, body := getAs(t, o.url("/prometheus/federate?match[]=shared"), "team-a|team-b")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `shared{__tenant_id__="team-a",i="0",job="a-job",instance=""}`)
	require.Contains(t, body, `shared{__tenant_id__="team-b",i="0",job="b-job",instance=""}`)
	require.NotContains(t, body, "team-c")

	// Writes belong to one tenant, whatever the flag.
	raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "shared"}},
		Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 1}},
	}}}).Marshal()
	require.NoError(t, err)
	err = loadgen.NewClient(o.url("/api/v1/push"), "team-a|team-b", 5*time.Second).Send(ctxTimeout(t, 5*time.Second), snappy.Encode(nil, raw))
	var status *loadgen.StatusError
	require.ErrorAs(t, err, &status)
	require.Equal(t, http.StatusUnauthorized, status.StatusCode, err)

	// Without the flag, team-a|team-b is an invalid tenant ID.
	o.stop(t)
	o.start(t, "-auth.enabled=true")
	code, body = api("team-a|team-b", "/query?query=shared&time="+at)
	require.Equal(t, http.StatusUnauthorized, code, body)
	require.Contains(t, body, `tenant ID "team-a|team-b" has the character '|'`)
	require.Len(t, metrics("team-a", "shared"), 2, "one tenant's reads still work")
}
