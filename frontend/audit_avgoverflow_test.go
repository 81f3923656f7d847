package frontend

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

// TestAuditAvgOverflow: Prometheus's avg switches to an incremental mean
// when the sum would overflow, so avg of values near the float maximum is
// finite; sharded, avg is sum / count and the sums overflow to +Inf.
func TestAuditAvgOverflow(t *testing.T) {
	st := teststorage.New(t)
	app := st.Appender(context.Background())
	for k, v := range []float64{1.5e308, 1.5e308, 1.0e308, 1.2e308} {
		ls := labels.FromStrings("__name__", "big", "i", string(rune('a'+k)))
		for step := range 20 {
			_, err := app.Append(0, ls, t0.Add(time.Duration(step)*dataInterval).UnixMilli(), v)
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	down := downstreamOver(st)
	cfg := testConfig()
	cfg.QueryShards = 2
	f := newTestFrontend(t, cfg, down, defaultLimits(), t0.Add(5*time.Hour))
	params := url.Values{"query": {`avg(big)`}, "time": {"1767225660"}} // t0 + 1m
	_, want := do(t, roundTripHandler{down}, "team-a", "/query", params)
	_, got := do(t, f, "team-a", "/query", params)
	require.Empty(t, diffResponses(want, got), "want %s\ngot  %s", want, got)
}
