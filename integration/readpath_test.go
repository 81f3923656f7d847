//go:build integration

package integration

import (
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// queriesServed returns each ingester's count of selects served.
func (c *cluster) queriesServed(t *testing.T, ids ...string) []float64 {
	t.Helper()
	out := make([]float64, len(ids))
	for k, id := range ids {
		out[k] = metricValue(t, c.members[id], "orrery_ingester_queries_total")
	}
	return out
}

func spareCalls(t *testing.T, o *orrery) float64 {
	t.Helper()
	return metricValue(t, o, `orrery_querier_ingester_spare_calls_total{reason="failed"}`) +
		metricValue(t, o, `orrery_querier_ingester_spare_calls_total{reason="slow"}`)
}

// startMemcached runs a Memcached on loopback, the frontend's shared
// results cache, and returns its port.
func startMemcached(t *testing.T) int {
	t.Helper()
	memcached := dependency(t, "ORRERY_MEMCACHED", "memcached, the frontend's shared results cache")
	port := freePort(t)
	args := []string{"-l", "127.0.0.1", "-p", fmt.Sprint(port), "-U", "0", "-m", "64"}
	if os.Geteuid() == 0 {
		// memcached refuses to run as root unless told which user to be.
		args = append(args, "-u", "root")
	}
	startProcess(t, "memcached", memcached, args...)
	return port
}

// TestReadpathAsksTwoOfThreeAndStaysExact: at RF=3 a settled ring lets
// the querier ask two of the three ingesters per select, in rotation. One
// ingester is killed with -9 in the middle of the written window and
// restarted while writes go on, so it lacks a stretch of every series;
// every corpus query still equals Prometheus 3's though many of them ask
// the restarted ingester and one other, and the selects reach two
// ingesters each, spread over all three. The corpus is also asked through
// a query frontend that splits, shards and caches in a real Memcached,
// cold and then warm, with the same answers.
func TestReadpathAsksTwoOfThreeAndStaysExact(t *testing.T) {
	prom := startPrometheus3(t)
	mcPort := startMemcached(t)
	c := newCluster(t, 3)
	// The frontend splits the half hour of data into 10-minute parts,
	// shards aggregations three ways and caches every part in Memcached
	// (nothing is written while it is asked, so no freshness cut).
	c.extra["qfe"] = []string{"-frontend.split-interval=10m", "-frontend.query-shards=3", "-frontend.max-cache-freshness=0s",
		fmt.Sprintf("-frontend.results-cache.memcached-addresses=127.0.0.1:%d", mcPort)}
	ingesters := []string{"ing1", "ing2", "ing3"}
	for _, id := range append(ingesters, "dist", "quer", "qfe") {
		c.add(id)
	}
	c.waitRing("dist", ingesters...)
	c.waitRing("quer", ingesters...)

	w := newDualWriter(prom, c.members["dist"].url(""))
	for step := 0; step < genSteps; step++ {
		switch step {
		case genSteps / 2:
			c.members["ing2"].kill9(t)
		case genSteps/2 + 15:
			require.Eventually(t, func() bool { return !c.ring("dist")["ing2"].Healthy }, 30*time.Second, 200*time.Millisecond, "the ring notices")
		case genSteps/2 + 30:
			c.startMember("ing2")
			c.waitRing("dist", ingesters...)
		}
		w.write(t, step)
	}
	c.waitRing("quer", ingesters...)
	quer := c.members["quer"]

	// Through the frontend, with a cold cache and then a warm one.
	qfe := c.members["qfe"]
	require.Eventually(t, func() bool { return metricValue(t, qfe, "orrery_frontend_connected_workers") > 0 },
		30*time.Second, 200*time.Millisecond, "the querier pulls from the frontend")
	compareQueries(t, prom, qfe.url("/prometheus"), w.start, w.end)
	hits := metricValue(t, qfe, "orrery_frontend_results_cache_hits_total")
	compareQueries(t, prom, qfe.url("/prometheus"), w.start, w.end)
	require.Greater(t, metricValue(t, qfe, "orrery_frontend_results_cache_hits_total"), hits, "the second pass reads Memcached")
	require.Positive(t, metricValue(t, qfe, "orrery_frontend_shard_requests_total"), "aggregations were sharded")
	require.Zero(t, metricValue(t, qfe, `orrery_frontend_memcached_failures_total{operation="fetch"}`))
	require.Zero(t, metricValue(t, qfe, `orrery_frontend_memcached_failures_total{operation="store"}`))

	before := c.queriesServed(t, ingesters...)
	compareQueries(t, prom, quer.url("/prometheus"), w.start, w.end)
	during := c.queriesServed(t, ingesters...)
	require.Greater(t, during[1], before[1], "the restarted ingester answered corpus selects")
	// Aggregations were pushed down to the ingesters, and the series the
	// restarted ingester lacks a stretch of were merged by the querier.
	require.Positive(t, metricValue(t, quer, `orrery_querier_pushdown_queries_total{outcome="pushed"}`))
	require.Positive(t, metricValue(t, quer, `orrery_querier_pushdown_series_total{where="ingester"}`))
	require.Positive(t, metricValue(t, quer, `orrery_querier_pushdown_series_total{where="querier"}`))

	// A known number of single-select queries (no aggregation: nothing
	// pushed down, which reads twice): two ingesters each, one
	// third of them left out of each ingester, nothing asked twice unless
	// a spare was.
	const queries = 30
	spares := spareCalls(t, quer)
	for range queries {
		resp, err := get(quer.url("/prometheus"), "/api/v1/query", url.Values{"query": {"up"}, "time": {fmt.Sprint(w.end.Unix())}})
		require.NoError(t, err)
		require.Equal(t, "success", resp.Status, resp.Error)
	}
	after := c.queriesServed(t, ingesters...)
	spares = spareCalls(t, quer) - spares
	var total float64
	for k := range after {
		d := after[k] - during[k]
		total += d
		require.GreaterOrEqual(t, d, float64(queries/3), "%s is asked in turn", ingesters[k])
		require.Less(t, d, float64(queries), "%s is left out in turn", ingesters[k])
	}
	require.Equal(t, float64(2*queries)+spares, total, "two ingesters per select, plus %v spares", spares)
	t.Logf("selects per ingester: corpus %v, %d single-select queries %v; spares %v",
		[]float64{during[0] - before[0], during[1] - before[1], during[2] - before[2]}, queries,
		[]float64{after[0] - during[0], after[1] - during[1], after[2] - during[2]}, spares)
}
