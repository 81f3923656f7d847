package frontend

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAnnotationsMatchDirect: warnings and infos, with their positions
// (also on later lines), are the direct answer's, sharded and split.
func TestAnnotationsMatchDirect(t *testing.T) {
	down := newDownstream(t, 1)
	direct := roundTripHandler{down}
	cfg := testConfig()
	cfg.SplitInterval = time.Hour
	cfg.QueryShards = 3
	f := newTestFrontend(t, cfg, down, defaultLimits(), t0.Add(5*time.Hour))
	for _, q := range []string{
		`sum(rate(node_load1[5m]))`,
		"1 +\n  avg(\n rate(node_load1[5m]))",
		`sum by (job) (rate(node_load1[5m])) / count(irate(node_load5[5m]))`,
		`histogram_quantile(0.9, sum by (instance) (rate(node_load1[5m])))`,
		`histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[5m])))`,
		`quantile(1.5, sum by (job) (node_load1))`,
	} {
		params := url.Values{"query": {q}, "start": {"1767225600"}, "end": {"1767235600"}, "step": {"60"}}
		_, want := do(t, direct, "a", "/query_range", params)
		require.Contains(t, string(want), `"success"`)
		_, got := do(t, f, "a", "/query_range", params)
		require.Empty(t, diffResponses(want, got), "%s\nwant %s\ngot  %.500s", q, want, got)
		params = url.Values{"query": {q}, "time": {"1767233600"}}
		_, want = do(t, direct, "a", "/query", params)
		_, got = do(t, f, "a", "/query", params)
		require.Empty(t, diffResponses(want, got), "%s\nwant %s\ngot  %.500s", q, want, got)
	}
}
