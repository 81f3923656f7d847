package querier

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
)

// TestPackedLabelsFromEitherIngester: queriers ask for packed labels, and
// an ingester that predates them answers label pairs. A cluster of both
// kinds, as during an upgrade, answers as one of either kind does, and a
// series from both kinds counts once against the fetched-series limit.
func TestPackedLabelsFromEitherIngester(t *testing.T) {
	now := time.Now()
	data := map[string][]fakeSeries{"t": series("up", 5, now.Add(-10*time.Minute), now)}
	params := url.Values{"query": {"up"}, "start": {unix(now.Add(-5 * time.Minute))}, "end": {unix(now)}, "step": {"60"}}
	answer := func(packs ...bool) string {
		tq := newTestQuerier(t, testConfig(), len(packs), data, false)
		for k, p := range packs {
			tq.cluster.ingesters[k].packs = p
		}
		// Exactly the series there are: counted twice, the query fails.
		tq.limits.set("t", limits.Limits{MaxFetchedSeriesPerQuery: 5})
		code, body := tq.get(t, "t", PathPrefix+"/query_range", params)
		require.Equal(t, http.StatusOK, code, "packs %v: %s", packs, body)
		return body
	}
	want := answer(false, false)
	require.Contains(t, want, `"instance":"i4"`)
	require.Equal(t, want, answer(true, true))
	require.Equal(t, want, answer(true, false))
	require.Equal(t, want, answer(false, true))
}
