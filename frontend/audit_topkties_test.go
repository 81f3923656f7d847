package frontend

import (
	"context"
	"fmt"
	"math/rand"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/teststorage"
)

// TestAuditTopkTies: topk and bottomk keep among equal values whichever
// series upstream's heap happens to keep, which depends on every series
// before them in the input; sharded, each shard's heap sees other inputs,
// so a different set of tied series comes back (values 0..2 over 12
// series: topk/bottomk answer other series than Prometheus does).
func TestAuditTopkTies(t *testing.T) {
	found := 0
	for seed := int64(0); seed < 1; seed++ {
		rng := rand.New(rand.NewSource(seed))
		st := teststorage.New(t)
		app := st.Appender(context.Background())
		for k := range 12 {
			ls := labels.FromStrings("__name__", "v", "i", fmt.Sprint(k))
			v := float64(rng.Intn(3))
			for step := range 20 {
				_, _ = app.Append(0, ls, t0.Add(time.Duration(step)*dataInterval).UnixMilli(), v)
			}
		}
		_ = app.Commit()
		down := downstreamOver(st)
		for _, shards := range []int{2, 3, 4} {
			cfg := testConfig()
			cfg.QueryShards = shards
			f := newTestFrontend(t, cfg, down, defaultLimits(), t0.Add(5*time.Hour))
			for _, q := range []string{"topk(3, v)", "bottomk(3, v)", "topk(5, v)", "bottomk(4, v)"} {
				params := url.Values{"query": {q}, "time": {"1767225660"}}
				_, want := do(t, roundTripHandler{down}, "team-a", "/query", params)
				_, got := do(t, f, "team-a", "/query", params)
				if d := diffResponses(want, got); d != "" {
					t.Errorf("seed %d shards %d %s: %s\nwant %s\ngot  %s", seed, shards, q, d, want, got)
					found++
				}
			}
		}
	}
}
