package frontend

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestCorpusMatchesDirect: every query of the end-to-end corpus, instant
// and range, gives through the frontend (split by 1h over 3h of data,
// sharded 3 ways, cache cold, warm and partly warm) the answer the same
// Prometheus API gives directly.
func TestCorpusMatchesDirect(t *testing.T) {
	down := newDownstream(t, 2)
	direct := roundTripHandler{down}
	cfg := testConfig()
	cfg.SplitInterval = time.Hour
	cfg.QueryShards = 3
	f := newTestFrontend(t, cfg, down, defaultLimits(), t0.Add(5*time.Hour))

	sec := func(d time.Duration) string {
		return strconv.FormatFloat(float64(t0.Add(d).UnixMilli())/1000, 'f', -1, 64)
	}
	instants := []time.Duration{2*time.Hour + 30*time.Minute, time.Hour - time.Second, 3 * time.Hour}
	// The third range lies partly inside the first, so its parts are
	// partly answered from the cache.
	ranges := []struct{ start, end, step time.Duration }{
		{10 * time.Minute, 3 * time.Hour, time.Minute},
		{37*time.Minute + 7*time.Second, 2*time.Hour + 50*time.Minute, 45 * time.Second},
		{59 * time.Minute, 3*time.Hour + 20*time.Minute, time.Minute},
		{55 * time.Minute, 2*time.Hour + 5*time.Minute, 15 * time.Second},
	}
	for _, q := range corpus(t) {
		t.Run(q, func(t *testing.T) {
			check := func(path string, params url.Values, what string) {
				t.Helper()
				wantCode, want := do(t, direct, "team-a", path, params)
				for _, pass := range []string{"cold", "warm"} {
					gotCode, got := do(t, f, "team-a", path, params)
					require.Equal(t, wantCode, gotCode, "%s %s: %s", what, pass, got)
					if d := diffResponses(want, got); d != "" {
						t.Fatalf("%s %s: %s\nwant %.600s\ngot  %.600s", what, pass, d, want, got)
					}
				}
			}
			for _, at := range instants {
				check("/query", url.Values{"query": {q}, "time": {sec(at)}}, "instant at "+at.String())
			}
			for _, r := range ranges {
				check("/query_range", url.Values{"query": {q}, "start": {sec(r.start)}, "end": {sec(r.end)}, "step": {r.step.String()}},
					"range "+r.start.String()+".."+r.end.String()+" step "+r.step.String())
			}
		})
	}
	t.Log(&roundingSeen)
	// The comparison means something only if the frontend did split,
	// shard and cache.
	t.Logf("parts %v, sharded evaluations %v, shard requests %v, cache requests %v, hits %v, downstream %v",
		testutil.ToFloat64(f.parts), testutil.ToFloat64(f.shardedQueries), testutil.ToFloat64(f.shardRequests),
		testutil.ToFloat64(f.cacheRequests), testutil.ToFloat64(f.cacheHits), testutil.ToFloat64(f.downstream))
	require.Positive(t, testutil.ToFloat64(f.shardRequests))
	require.Positive(t, testutil.ToFloat64(f.cacheHits))
	require.Less(t, testutil.ToFloat64(f.cacheHits), testutil.ToFloat64(f.cacheRequests))
}
