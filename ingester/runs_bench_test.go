package ingester

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/loadgen"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/tenant"
)

// BenchmarkRangeQueryOverCompactedData times dashboard range queries
// through the querier and its engine over the load tool's series (20
// hosts, 4,200 series) for 6 hours of 15 s samples (from the epoch, so
// that its partitions are long complete), from an ingester whose store
// holds them as flushed chunks ("stored") and from one that compacted
// them into runs ("compacted"). The two answer the same; the store's
// block cache is warm after the first query, as a dashboard finds it.
//
//	go test ./ingester -run '^$' -bench BenchmarkRangeQueryOverCompactedData -benchtime 5x
func BenchmarkRangeQueryOverCompactedData(b *testing.B) {
	const steps = 6 * 3600 / 15
	gen := loadgen.New(42, 20)
	queries := []string{
		`sum by (mode) (irate(node_cpu_seconds_total{job="node",mode!="idle"}[5m]))`,
		`100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{job="node",mode="idle"}[5m])))`,
		`histogram_quantile(0.99, sum by (le, handler) (rate(prometheus_http_request_duration_seconds_bucket[5m])))`,
		`node_load1{job="node"}`,
	}
	fill := func(b *testing.B, compact bool) *testIngester {
		cfg := testConfig()
		cfg.MaxChunkSamples, cfg.QueryBatchSeries = 120, 128
		if compact {
			cfg.CompactAfter = time.Millisecond
		}
		ti := newTestIngester(b, b.TempDir(), cfg)
		encoded := make([][]byte, gen.Len())
		for k, ls := range gen.Series() {
			encoded[k] = ingesterpb.AppendLabels(nil, ls)
		}
		for from := 0; from < steps; from += 40 {
			var buf []byte
			for k := range encoded {
				buf = ingesterpb.AppendSeriesHeader(buf, encoded[k], 40)
				for s := from; s < from+40; s++ {
					buf = ingesterpb.AppendSample(buf, int64(s)*15_000, gen.Value(k, s))
				}
			}
			require.NoError(b, ti.push(b, "t", buf))
		}
		ti.flush(true)
		if compact {
			ti.compact()
		}
		return ti
	}
	// Both ingesters are filled first and live through both timings, so
	// that neither runs with the other's garbage or a smaller heap.
	tis := map[string]*testIngester{"stored": fill(b, false), "compacted": fill(b, true)}
	answers := map[string][]string{}
	for _, name := range []string{"stored", "compacted"} {
		h := querierOver(b, limits.Limits{}, tis[name])
		ask := func(q string) string {
			params := url.Values{"query": {q}, "start": {"0"}, "end": {strconv.Itoa((steps - 1) * 15)}, "step": {"60"}}
			r := httptest.NewRequest(http.MethodGet, querier.PathPrefix+"/query_range?"+params.Encode(), nil)
			r.Header.Set(tenant.HeaderName, "t")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			require.Equal(b, http.StatusOK, w.Code, w.Body.String())
			return w.Body.String()
		}
		for _, q := range queries {
			answers[name] = append(answers[name], ask(q))
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				for _, q := range queries {
					ask(q)
				}
			}
		})
	}
	for _, ti := range tis {
		ti.stop(b)
	}
	require.Equal(b, answers["stored"], answers["compacted"], "compacted data answers as stored data")
}
