package frontend

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// auditCheck runs q as an instant query and as a range query through a
// sharding, splitting frontend and directly, and fails on any difference.
func auditCheck(t *testing.T, shards int, queries ...string) {
	t.Helper()
	down := newDownstream(t, 2)
	direct := roundTripHandler{down}
	cfg := testConfig()
	cfg.SplitInterval = time.Hour
	cfg.QueryShards = shards
	f := newTestFrontend(t, cfg, down, defaultLimits(), t0.Add(5*time.Hour))
	sec := func(d time.Duration) string {
		return strconv.FormatFloat(float64(t0.Add(d).UnixMilli())/1000, 'f', -1, 64)
	}
	for _, q := range queries {
		t.Run(q, func(t *testing.T) {
			for _, c := range []struct {
				path   string
				params url.Values
			}{
				{"/query", url.Values{"query": {q}, "time": {sec(2 * time.Hour)}}},
				{"/query_range", url.Values{"query": {q}, "start": {sec(30 * time.Minute)}, "end": {sec(2*time.Hour + 30*time.Minute)}, "step": {"1m"}}},
			} {
				wantCode, want := do(t, direct, "team-a", c.path, c.params)
				gotCode, got := do(t, f, "team-a", c.path, c.params)
				require.Equal(t, wantCode, gotCode, "%s: want %.300s\ngot %.300s", c.path, want, got)
				if d := diffResponses(want, got); d != "" {
					t.Errorf("%s: %s\nwant %.400s\ngot  %.400s", c.path, d, want, got)
				}
			}
		})
	}
}
