package ingester

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// The same annotation, raised by an ingester's share and by the share
// merged here, or by two aggregations of the query, is answered once, at
// the position the upstream engine gives it: the evaluator sends its raw
// text, which the querier de-duplicates by as the engine does.
func TestPushdownAnswersEachAnnotationOnce(t *testing.T) {
	var tis []*testIngester
	for range 2 {
		ti := newTestIngester(t, t.TempDir(), testConfig(), withPushdown())
		t.Cleanup(func() { ti.stop(t) })
		tis = append(tis, ti)
	}
	writePushdownData(t, tis, 1800, func(r int, ls labels.Labels, ts int) bool {
		// One load series differs between the replicas: merged here.
		return !(r == 0 && ls.Get("job") == "api" && ls.Get("instance") == "i0" && ts >= 600 && ts < 900)
	})
	r := replicaRing{tis: tis}
	plain, _ := pushdownQuerier(t, r, fixedLimits{}, false)
	pushed, _ := pushdownQuerier(t, r, fixedLimits{}, true)
	var want, got []string
	for _, q := range []string{
		`sum(rate(load[5m]))`,                        // an ingester's share and the merged one
		`sum(rate(load[5m])) + sum(rate(load[10m]))`, // two leaves
	} {
		params := url.Values{"query": {q}, "start": {"0"}, "end": {"1800"}, "step": {"60"}}
		code, body := apiGet(t, plain, "/query_range", params)
		require.Equal(t, http.StatusOK, code, body)
		want = append(want, fmt.Sprint(q, "\n", body))
		code, body = apiGet(t, pushed, "/query_range", params)
		require.Equal(t, http.StatusOK, code, body)
		got = append(got, fmt.Sprint(q, "\n", body))
	}
	requireSameValues(t, want, got)
}
