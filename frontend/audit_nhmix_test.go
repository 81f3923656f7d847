package frontend

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

// A metric with float series and a native histogram series: unsharded,
// sum(m) drops the group with a "mix of histograms and floats" warning.
// Sharded, the shard that holds the histogram and some floats drops its
// group, the float-only shards answer floats, so no shard answers a
// histogram and the frontend never falls back: it sums the float-only
// shards into a number Prometheus never gives.
func TestAuditShardedSumOfFloatsAndHistograms(t *testing.T) {
	st := teststorage.New(t)
	app := st.Appender(context.Background())
	h := &histogram.Histogram{Count: 2, Sum: 3, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{2}}
	for step := range 4 * 60 {
		ts := t0.Add(time.Duration(step) * time.Minute).UnixMilli()
		for i := range 12 {
			_, err := app.Append(0, labels.FromStrings("__name__", "mixed_metric", "i", fmt.Sprint(i)), ts, float64(i))
			require.NoError(t, err)
		}
		_, err := app.AppendHistogram(0, labels.FromStrings("__name__", "mixed_metric", "i", "h"), ts, h, nil)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	down := downstreamOver(st)
	direct := roundTripHandler{down}
	cfg := testConfig()
	cfg.SplitInterval = time.Hour
	cfg.QueryShards = 4
	f := newTestFrontend(t, cfg, down, defaultLimits(), t0.Add(5*time.Hour))
	sec := func(d time.Duration) string {
		return strconv.FormatFloat(float64(t0.Add(d).UnixMilli())/1000, 'f', -1, 64)
	}
	for _, q := range []string{`sum(mixed_metric)`, `avg(mixed_metric)`, `sum(rate(mixed_metric[5m]))`, `count(mixed_metric)`, `max(mixed_metric)`, `histogram_count(sum(mixed_metric))`} {
		for _, c := range []struct {
			path   string
			params url.Values
		}{
			{"/query", url.Values{"query": {q}, "time": {sec(2 * time.Hour)}}},
			{"/query_range", url.Values{"query": {q}, "start": {sec(30 * time.Minute)}, "end": {sec(2*time.Hour + 30*time.Minute)}, "step": {"1m"}}},
		} {
			_, want := do(t, direct, "team-a", c.path, c.params)
			_, got := do(t, f, "team-a", c.path, c.params)
			if d := diffResponses(want, got); d != "" {
				t.Errorf("%s %s: %s\nwant %.400s\ngot  %.400s", q, c.path, d, want, got)
			}
		}
	}
}
