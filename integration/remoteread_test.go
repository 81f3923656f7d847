//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"io"
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

// TestPrometheusRemoteReadsOrrery: a real Prometheus 3 whose own storage is
// empty answers queries through remote_read from Orrery (its client asks
// for streamed XOR chunks) exactly as Orrery answers them.
func TestPrometheusRemoteReadsOrrery(t *testing.T) {
	o := startOrrery(t, t.TempDir())
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	writeGenerated(t, loadgen.New(genSeed, 2), 40, end, o.url("/api/v1/push"))
	prom := startPrometheus3WithConfig(t, func(int) string {
		return fmt.Sprintf(`
remote_read:
  - url: %s
    read_recent: true
    remote_timeout: 10s
`, o.url("/prometheus/api/v1/read"))
	})
	for _, q := range []string{
		"node_load1", `sum by (mode) (rate(node_cpu_seconds_total[5m]))`,
		`histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[5m])))`,
	} {
		params := url.Values{"query": {q}, "time": {strconv.FormatInt(end.Unix(), 10)}}
		want, err := get(o.url("/prometheus"), "/api/v1/query", params)
		require.NoError(t, err)
		got, err := get(prom, "/api/v1/query", params)
		require.NoError(t, err)
		require.Contains(t, string(want.Data), `"result":[{`, "orrery has data for %s", q)
		require.Empty(t, diffResponses(want, got), q)
	}
}

// TestRemoteReadSamples asks for the older, sampled response type.
func TestRemoteReadSamples(t *testing.T) {
	o := startOrrery(t, t.TempDir())
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	start := writeGenerated(t, loadgen.New(genSeed, 1), 10, end, o.url("/api/v1/push"))
	req := &prompb.ReadRequest{
		Queries: []*prompb.Query{{
			StartTimestampMs: start.UnixMilli(), EndTimestampMs: end.UnixMilli(),
			Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "node_load1"}},
		}},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES},
	}
	raw, err := req.Marshal()
	require.NoError(t, err)
	resp, err := http.Post(o.url("/prometheus/api/v1/read"), "application/x-protobuf", bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	decoded, err := snappy.Decode(nil, body)
	require.NoError(t, err)
	var rr prompb.ReadResponse
	require.NoError(t, rr.Unmarshal(decoded))
	require.Len(t, rr.Results, 1)
	require.Len(t, rr.Results[0].Timeseries, 1)
	require.Len(t, rr.Results[0].Timeseries[0].Samples, 10)
}
