//go:build integration

package integration

import (
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// TestQueryTimeoutCancelsIngesters: a query that outlives its timeout,
// -querier.timeout or the tenant's query_timeout, answers with
// Prometheus's timeout error, and the ingester it reached abandons its
// stream (observed through its metric).
func TestQueryTimeoutCancelsIngesters(t *testing.T) {
	for _, c := range []struct {
		name      string
		flags     []string
		overrides string // of the tenant anonymous
	}{
		{"global", []string{"-querier.timeout=30ms"}, ""},
		{"tenant", nil, "query_timeout: 30ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			overrides := filepath.Join(t.TempDir(), "overrides.yaml")
			require.NoError(t, os.WriteFile(overrides, []byte("overrides:\n  anonymous: {"+c.overrides+"}\n"), 0o644))
			o := startOrrery(t, t.TempDir(), append(c.flags, "-runtime-config.file="+overrides, "-runtime-config.reload-period=100ms")...)
			gen := loadgen.NewWithSeries(3, 50000)
			end := time.Now().Add(-time.Minute).Truncate(time.Second)
			cl := loadgen.NewClient(o.url("/api/v1/push"), "", 30*time.Second)
			start := end.Add(-20 * genInterval)
			var raw, body []byte
			for step := 0; step < 20; step++ {
				for from := 0; from < gen.Len(); from += 5000 {
					raw = gen.AppendRequest(raw[:0], from, from+5000, step, start.Add(time.Duration(step)*genInterval).UnixMilli())
					body = loadgen.Compress(body[:0], raw)
					require.NoError(t, cl.Send(ctxTimeout(t, 30*time.Second), body))
				}
			}
			query := func(q string) *apiResponse {
				resp, err := get(o.url("/prometheus"), "/api/v1/query_range", url.Values{
					"query": {q},
					"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)}, "step": {"15"},
				})
				require.NoError(t, err)
				return resp
			}
			resp := query(`count_over_time({__name__=~".+"}[1m])`)
			require.Equal(t, "error", resp.Status)
			require.Equal(t, "timeout", resp.ErrorType, resp.Error)
			require.Eventually(t, func() bool {
				return metricValue(t, o, "orrery_ingester_queries_canceled_total") >= 1
			}, 10*time.Second, 50*time.Millisecond, "the ingester saw the cancellation")
			require.Equal(t, 1.0, metricValue(t, o, `orrery_querier_queries_rejected_total{reason="query-timeout",tenant="anonymous"}`))
			if c.overrides == "" {
				return
			}
			// Without the override the tenant has -querier.timeout again, and
			// a query over the same data completes.
			replaceFile(t, overrides, "overrides: {}\n")
			require.Eventually(t, func() bool {
				return query(`count(last_over_time({__name__=~".+"}[1m]))`).Status == "success"
			}, 30*time.Second, 200*time.Millisecond)
		})
	}
}
