//go:build integration

package integration

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// TestQueryTimeoutCancelsIngesters: a query that outlives -querier.timeout
// answers with Prometheus's timeout error, and the ingester it reached
// abandons its stream (observed through its metric).
func TestQueryTimeoutCancelsIngesters(t *testing.T) {
	o := startOrrery(t, t.TempDir(), "-querier.timeout=30ms")
	gen := loadgen.NewWithSeries(3, 50000)
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	c := loadgen.NewClient(o.url("/api/v1/push"), "", 30*time.Second)
	start := end.Add(-20 * genInterval)
	var raw, body []byte
	for step := 0; step < 20; step++ {
		for from := 0; from < gen.Len(); from += 5000 {
			raw = gen.AppendRequest(raw[:0], from, from+5000, step, start.Add(time.Duration(step)*genInterval).UnixMilli())
			body = loadgen.Compress(body[:0], raw)
			require.NoError(t, c.Send(ctxTimeout(t, 30*time.Second), body))
		}
	}
	resp, err := get(o.url("/prometheus"), "/api/v1/query_range", url.Values{
		"query": {`count_over_time({__name__=~".+"}[1m])`},
		"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)}, "step": {"15"},
	})
	require.NoError(t, err)
	require.Equal(t, "error", resp.Status)
	require.Equal(t, "timeout", resp.ErrorType, resp.Error)
	require.Eventually(t, func() bool {
		return metricValue(t, o, "orrery_ingester_queries_canceled_total") >= 1
	}, 10*time.Second, 50*time.Millisecond, "the ingester saw the cancellation")
}
