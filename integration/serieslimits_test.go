//go:build integration

package integration

import (
	"bytes"
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
)

// TestSeriesLimits runs Orrery with an overrides file that limits the
// anonymous tenant's series per tenant and per metric. A remote write
// creating series over either limit gets the documented 400 and keeps the
// rest of its series; the refusals are counted; and a raised limit in the
// atomically replaced overrides file applies without a restart.
func TestSeriesLimits(t *testing.T) {
	overrides := filepath.Join(t.TempDir(), "overrides.yaml")
	setLimits := func(perUser, perMetric int) {
		tmp := overrides + ".tmp"
		content := fmt.Sprintf("overrides:\n  anonymous:\n    max_global_series_per_user: %d\n    max_global_series_per_metric: %d\n", perUser, perMetric)
		require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
		require.NoError(t, os.Rename(tmp, overrides))
	}
	setLimits(5, 3)
	o := startOrrery(t, t.TempDir(), "-runtime-config.file="+overrides, "-runtime-config.reload-period=100ms")

	now := time.Now().Add(-time.Minute).UnixMilli()
	series := func(name string, i int, ts int64) prompb.TimeSeries {
		return prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "i", Value: strconv.Itoa(i)}},
			Samples: []prompb.Sample{{Timestamp: ts, Value: 1}},
		}
	}
	push := func(ss ...prompb.TimeSeries) (int, string) {
		raw, err := (&prompb.WriteRequest{Timeseries: ss}).Marshal()
		require.NoError(t, err)
		resp, err := http.Post(o.url("/api/v1/push"), "application/x-protobuf", bytes.NewReader(snappy.Encode(nil, raw)))
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	query := func(q string) string {
		at := strconv.FormatFloat(float64(now+10_000)/1000, 'f', 3, 64)
		code, body := rawGet(t, o.url("/prometheus/api/v1/query?query="+url.QueryEscape(q)+"&time="+at))
		require.Equal(t, http.StatusOK, code, body)
		return body
	}

	// a3 is one series of "a" too many; b0 is another metric, and stored.
	code, body := push(series("a", 0, now), series("a", 1, now), series("a", 2, now), series("a", 3, now), series("b", 0, now))
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, `per-metric series limit of 3 exceeded for metric "a" (err-orrery-max-series-per-metric: raise the tenant's max_global_series_per_metric`)

	// c0 is the fifth series, c1 one too many; a0 exists and takes its sample.
	code, body = push(series("a", 0, now+1000), series("c", 0, now), series("c", 1, now))
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "per-user series limit of 5 exceeded (err-orrery-max-series-per-user: raise the tenant's max_global_series_per_user")

	require.Contains(t, query(`count({__name__=~"a|b|c"})`), `"5"]`)
	require.Contains(t, query(`count_over_time(a{i="0"}[1m])`), `"2"]`, "a0's new sample was stored")
	require.Contains(t, query(`a{i="3"} or c{i="1"}`), `"result":[]`, "only the refused series are missing")
	require.Equal(t, 1.0, metricValue(t, o, `orrery_ingester_samples_rejected_total{reason="per_metric_series_limit",tenant="anonymous"}`))
	require.Equal(t, 1.0, metricValue(t, o, `orrery_ingester_samples_rejected_total{reason="per_user_series_limit",tenant="anonymous"}`))
	require.Equal(t, 5.0, metricValue(t, o, `orrery_ingester_active_series{tenant="anonymous"}`))

	setLimits(10, 10)
	require.Eventually(t, func() bool {
		code, _ := push(series("c", 1, now), series("a", 3, now))
		return code == http.StatusNoContent
	}, 10*time.Second, 200*time.Millisecond, "the raised limits apply without a restart")
	require.Contains(t, query(`count({__name__=~"a|b|c"})`), `"7"]`)
	require.Equal(t, 7.0, metricValue(t, o, `orrery_ingester_active_series{tenant="anonymous"}`))
}
