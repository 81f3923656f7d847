//go:build integration

package integration

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// TestFrontendAnswersAsQuerier: a query frontend in its own process, and a
// querier in another that pulls the frontend's queue over gRPC (found by
// gossip), answer every corpus query as Prometheus 3 does; the answers
// went through the frontend's queue.
func TestFrontendAnswersAsQuerier(t *testing.T) {
	prom := startPrometheus3(t)
	c := newCluster(t, 1)
	for _, id := range []string{"ing1", "dist", "qfe1", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1")
	c.waitRing("quer", "ing1")
	require.Eventually(t, func() bool {
		return metricValue(t, c.members["quer"], "orrery_querier_frontend_workers_connected") == 20 &&
			metricValue(t, c.members["qfe1"], "orrery_frontend_connected_workers") == 20
	}, 30*time.Second, 200*time.Millisecond, "the querier's 20 workers connect to the frontend it found in the ring")

	w := newDualWriter(prom, c.members["dist"].url(""))
	for step := 0; step < genSteps; step++ {
		w.write(t, step)
	}
	compareQueries(t, prom, c.members["qfe1"].url("/prometheus"), w.start, w.end)
	answered := metricValue(t, c.members["qfe1"], `orrery_frontend_requests_total{outcome="answered"}`)
	require.GreaterOrEqual(t, answered, float64(2*len(readLines(t, "testdata/queries.txt"))), "every query went through the queue")

	// The querier leaves: the frontend has no worker and says so by
	// waiting; a new querier takes the work.
	c.members["quer"].stop(t)
	require.Eventually(t, func() bool {
		return metricValue(t, c.members["qfe1"], "orrery_frontend_connected_workers") == 0
	}, 30*time.Second, 200*time.Millisecond)
	c.add("quer2")
	resp, err := get(c.members["qfe1"].url("/prometheus"), "/api/v1/query", url.Values{"query": {"count(up)"}})
	require.NoError(t, err)
	require.Equal(t, "success", resp.Status, resp.Error)
}

// writeTenant writes steps of gen's series for tenant, ending at end.
func writeTenant(t *testing.T, o *orrery, tenantID string, gen *loadgen.Generator, steps int, end time.Time) {
	t.Helper()
	cl := loadgen.NewClient(o.url("/api/v1/push"), tenantID, 30*time.Second)
	start := end.Add(-time.Duration(steps-1) * genInterval)
	var raw, body []byte
	for step := 0; step < steps; step++ {
		raw = gen.AppendRequest(raw[:0], 0, gen.Len(), step, start.Add(time.Duration(step)*genInterval).UnixMilli())
		body = loadgen.Compress(body[:0], raw)
		require.NoError(t, cl.Send(ctxTimeout(t, 30*time.Second), body), "step %d for %s", step, tenantID)
	}
}

// TestFrontendFairness is the fairness test: tenant A keeps 50
// heavy queries in flight while tenant B's dashboard queries keep their
// median latency within 2× of B's latency on the idle process, with the
// default worker count (-target=all: the frontend and its local workers).
func TestFrontendFairness(t *testing.T) {
	o := startOrrery(t, t.TempDir())
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	writeTenant(t, o, "tenant-a", loadgen.New(genSeed, 20), genSteps, end)
	writeTenant(t, o, "tenant-b", loadgen.New(genSeed+1, 1), genSteps, end)
	sec := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }
	rangeParams := func(q string) url.Values {
		return url.Values{"query": {q}, "start": {sec(end.Add(-25 * time.Minute))}, "end": {sec(end)}, "step": {"15"}}
	}
	dashboard := []string{
		`sum(rate(node_cpu_seconds_total{mode!="idle"}[5m]))`,
		`sum by (device) (rate(node_network_receive_bytes_total[5m]))`,
		`node_filesystem_avail_bytes / node_filesystem_size_bytes`,
		`up`,
	}
	// B's median latency over rounds of its dashboard, each query alone.
	measureB := func(d time.Duration) (time.Duration, int) {
		var lat []time.Duration
		for stop := time.Now().Add(d); time.Now().Before(stop); {
			for _, q := range dashboard {
				began := time.Now()
				code, r := queryAs(t, o, "tenant-b", "/query_range", rangeParams(q))
				lat = append(lat, time.Since(began))
				require.Equal(t, http.StatusOK, code, r.Error)
			}
			time.Sleep(20 * time.Millisecond)
		}
		slices.Sort(lat)
		return lat[len(lat)/2], len(lat)
	}
	measureB(2 * time.Second) // warm-up
	idle, _ := measureB(5 * time.Second)

	// A's heavy query reads every series of its 4200 over the whole range.
	heavy := rangeParams(`sum by (job) ({__name__=~".+"})`)
	began := time.Now()
	code, r := queryAs(t, o, "tenant-a", "/query_range", heavy)
	require.Equal(t, http.StatusOK, code, r.Error)
	t.Logf("tenant A's heavy query alone: %v", time.Since(began))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var heavyDone, heavyRefused atomic.Int64
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _ := getAs(t, o.url("/prometheus/api/v1/query_range?"+heavy.Encode()), "tenant-a")
				switch code {
				case http.StatusOK:
					heavyDone.Add(1)
				case http.StatusTooManyRequests:
					heavyRefused.Add(1)
				default:
					t.Errorf("tenant A's heavy query: status %d", code)
				}
			}
		}()
	}
	require.Eventually(t, func() bool {
		return metricValue(t, o, `orrery_frontend_queue_length{tenant="tenant-a"}`) >= 20
	}, 30*time.Second, 50*time.Millisecond, "tenant A's queries queue up: the workers are all busy")
	loaded, n := measureB(10 * time.Second)
	queuedA := metricValue(t, o, `orrery_frontend_queue_length{tenant="tenant-a"}`)
	close(stop)
	wg.Wait()
	// Idle again: the machine's other load drifts over a minute, and the
	// mean of the idle medians before and after the flood is the idle
	// latency at the time of the flood.
	idleAfter, _ := measureB(5 * time.Second)
	baseline := (idle + idleAfter) / 2
	t.Logf("tenant B under A's flood: median %v over %d queries, %.2f× idle (idle %v before, %v after); A: %d heavy queries answered meanwhile, %d refused, %v queued at the end",
		loaded, n, float64(loaded)/float64(baseline), idle, idleAfter, heavyDone.Load(), heavyRefused.Load(), queuedA)
	require.Positive(t, heavyDone.Load(), "tenant A is served too")
	require.LessOrEqual(t, loaded, 2*baseline, "tenant B's median latency stays within 2× of idle")
}
