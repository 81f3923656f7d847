//go:build integration

package integration

import (
	"fmt"
	"net/url"
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

// TestReadpathAsksTwoOfThreeAndStaysExact: at RF=3 a settled ring lets
// the querier ask two of the three ingesters per select, in rotation. One
// ingester is killed with -9 in the middle of the written window and
// restarted while writes go on, so it lacks a stretch of every series;
// every corpus query still equals Prometheus 3's though many of them ask
// the restarted ingester and one other, and the selects reach two
// ingesters each, spread over all three.
func TestReadpathAsksTwoOfThreeAndStaysExact(t *testing.T) {
	prom := startPrometheus3(t)
	c := newCluster(t, 3)
	ingesters := []string{"ing1", "ing2", "ing3"}
	for _, id := range append(ingesters, "dist", "quer") {
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

	before := c.queriesServed(t, ingesters...)
	compareQueries(t, prom, quer.url("/prometheus"), w.start, w.end)
	during := c.queriesServed(t, ingesters...)
	require.Greater(t, during[1], before[1], "the restarted ingester answered corpus selects")

	// A known number of single-select queries: two ingesters each, one
	// third of them left out of each ingester, nothing asked twice unless
	// a spare was.
	const queries = 30
	spares := spareCalls(t, quer)
	for range queries {
		resp, err := get(quer.url("/prometheus"), "/api/v1/query", url.Values{"query": {"count(up)"}, "time": {fmt.Sprint(w.end.Unix())}})
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
