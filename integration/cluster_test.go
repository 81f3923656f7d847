//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// cluster is a set of single-role Orrery processes joined by gossip.
type cluster struct {
	t       *testing.T
	rf      int
	seed    *orrery
	members map[string]*orrery
	// extra are flags for one member, on every start.
	extra map[string][]string
}

// fastRing makes the ring notice a dead member in seconds, not a minute.
var fastRing = []string{"-ring.heartbeat-period=500ms", "-ring.heartbeat-timeout=4s"}

// pushEveryAggregation has the queriers push down aggregations over the
// corpus's minutes-long windows too, so that every cluster test checks
// pushdown against Prometheus 3.
var pushEveryAggregation = []string{"-querier.pushdown-min-range=0s"}

func newCluster(t *testing.T, rf int) *cluster {
	return &cluster{t: t, rf: rf, members: map[string]*orrery{}, extra: map[string][]string{}}
}

func (c *cluster) add(id string) *orrery {
	c.t.Helper()
	o := &orrery{http: freePort(c.t), grpc: freePort(c.t), gossip: freePort(c.t), dataDir: c.t.TempDir()}
	c.members[id] = o
	if c.seed == nil {
		c.seed = o
	}
	c.startMember(id)
	return o
}

func (c *cluster) startMember(id string) {
	c.t.Helper()
	o := c.members[id]
	o.start(c.t, append([]string{
		"-target=" + targetOf(id), "-instance.id=" + id,
		fmt.Sprintf("-replication-factor=%d", c.rf),
		fmt.Sprintf("-memberlist.join=127.0.0.1:%d", c.seed.gossip),
	}, slices.Concat(fastRing, pushEveryAggregation, c.extra[id])...)...)
}

func targetOf(id string) string {
	switch id[:3] {
	case "ing":
		return "ingester"
	case "dis":
		return "distributor"
	case "qfe":
		return "query-frontend"
	case "rul":
		return "ruler"
	default:
		return "querier"
	}
}

type ringMember struct {
	ID         string    `json:"id"`
	State      string    `json:"state"`
	Healthy    bool      `json:"healthy"`
	Owned      float64   `json:"owned_percent"`
	Registered time.Time `json:"registered"`
}

// ring is the ring as member id sees it.
func (c *cluster) ring(id string) map[string]ringMember {
	c.t.Helper()
	_, body := rawGet(c.t, c.members[id].url("/ring?format=json"))
	var r struct {
		Members []ringMember `json:"members"`
	}
	require.NoError(c.t, json.Unmarshal([]byte(body), &r), body)
	out := map[string]ringMember{}
	for _, m := range r.Members {
		out[m.ID] = m
	}
	return out
}

// waitRing waits until member id sees exactly the healthy, ACTIVE token
// owners listed, each by the entry of its running process. An entry from
// before a restart does not count: a member stopped for a restart may
// still look ACTIVE to id while its LEAVING entry is on the way, which
// would let a test read through a ring about to change.
func (c *cluster) waitRing(id string, owners ...string) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		r := c.ring(id)
		n := 0
		for _, m := range r {
			if m.Owned > 0 && m.State == "ACTIVE" && m.Healthy {
				n++
			}
		}
		for _, o := range owners {
			m := r[o]
			if m.State != "ACTIVE" || !m.Healthy {
				return false
			}
			if p := c.members[o]; p != nil && p.process != nil && m.Registered.Before(p.started.Truncate(time.Millisecond)) {
				return false
			}
		}
		return n == len(owners)
	}, 30*time.Second, 200*time.Millisecond, "%s sees ring %v", id, owners)
}

// compareQueries runs every corpus query against both, instant and range.
func compareQueries(t *testing.T, prom, orreryBase string, start, end time.Time) {
	t.Helper()
	sec := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }
	failures := 0
	queries := readLines(t, "testdata/queries.txt")
	for _, q := range queries {
		for _, c := range []struct{ path, kind string }{{"/api/v1/query", "instant"}, {"/api/v1/query_range", "range"}} {
			params := url.Values{"query": {q}, "time": {sec(end)}}
			if c.kind == "range" {
				params = url.Values{"query": {q}, "start": {sec(start.Add(10 * time.Minute))}, "end": {sec(end)}, "step": {"30"}}
			}
			want, err := get(prom, c.path, params)
			require.NoError(t, err)
			got, err := get(orreryBase, c.path, params)
			require.NoError(t, err)
			if d := diffResponses(want, got); d != "" {
				failures++
				t.Errorf("%s %q: %s", c.kind, q, d)
			}
		}
	}
	require.Zero(t, failures, "%d queries compared", len(queries))
}

// dualWriter sends the same generated step to the reference Prometheus
// and to Orrery's distributor, one request each.
type dualWriter struct {
	gen          *loadgen.Generator
	start, end   time.Time
	prom, orrery *loadgen.Client
	raw, body    []byte
}

func newDualWriter(prom, distributor string) *dualWriter {
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	return &dualWriter{
		gen: loadgen.New(genSeed, 2), end: end, start: end.Add(-time.Duration(genSteps-1) * genInterval),
		prom:   loadgen.NewClient(prom+"/api/v1/write", "", 10*time.Second),
		orrery: loadgen.NewClient(distributor+"/api/v1/push", "", 10*time.Second),
	}
}

// write sends one step; a failed write to Orrery fails the test.
func (w *dualWriter) write(t *testing.T, step int) {
	t.Helper()
	w.raw = w.gen.AppendRequest(w.raw[:0], 0, w.gen.Len(), step, w.start.Add(time.Duration(step)*genInterval).UnixMilli())
	w.body = loadgen.Compress(w.body[:0], w.raw)
	require.NoError(t, w.prom.Send(ctxTimeout(t, 10*time.Second), w.body))
	require.NoError(t, w.orrery.Send(ctxTimeout(t, 10*time.Second), w.body), "step %d: a write failed", step)
}

// TestClusterRF3SurvivesKill9: three ingesters at RF=3 behind a distributor
// and a querier. One is killed with -9 during steady writes: no write
// fails, every query equals Prometheus 3's; restarted on its data dir, it
// rejoins with its own tokens and takes writes again.
func TestClusterRF3SurvivesKill9(t *testing.T) {
	prom := startPrometheus3(t)
	c := newCluster(t, 3)
	for _, id := range []string{"ing1", "ing2", "ing3", "dist", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")
	ownedBefore := c.ring("dist")["ing2"].Owned

	w := newDualWriter(prom, c.members["dist"].url(""))
	for step := 0; step < genSteps; step++ {
		switch step {
		case 40:
			c.members["ing2"].kill9(t)
		case 60:
			require.Eventually(t, func() bool { return !c.ring("dist")["ing2"].Healthy }, 30*time.Second, 200*time.Millisecond, "the ring notices")
		case 80:
			c.startMember("ing2")
			c.waitRing("dist", "ing1", "ing2", "ing3")
		}
		w.write(t, step)
	}
	require.Equal(t, ownedBefore, c.ring("dist")["ing2"].Owned, "ing2 rejoined with its own tokens")
	compareQueries(t, prom, c.members["quer"].url("/prometheus"), w.start, w.end)

	// Every replica holds what it was sent: ing2 misses only its downtime.
	for _, id := range []string{"ing1", "ing3"} {
		require.Equal(t, float64(w.gen.Len()), metricValue(t, c.members[id], "orrery_ingester_memory_series"))
	}
}

// TestClusterRF3SurvivesPausedIngester: one ingester is frozen with
// SIGSTOP (its gossip and gRPC stop answering, its connections stay open)
// while writes go on: quorum writes succeed without waiting for it; after
// SIGCONT the ring converges and no acknowledged sample is lost.
func TestClusterRF3SurvivesPausedIngester(t *testing.T) {
	prom := startPrometheus3(t)
	c := newCluster(t, 3)
	for _, id := range []string{"ing1", "ing2", "ing3", "dist", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")

	w := newDualWriter(prom, c.members["dist"].url(""))
	var slowest time.Duration
	for step := 0; step < genSteps; step++ {
		switch step {
		case 30:
			c.members["ing3"].signal(syscall.SIGSTOP)
		case 60:
			began := time.Now()
			resp, err := get(c.members["quer"].url("/prometheus"), "/api/v1/query", url.Values{"query": {"count(up)"}})
			require.NoError(t, err)
			require.Equal(t, "success", resp.Status, resp.Error)
			require.Less(t, time.Since(began), 2*time.Second, "a query does not wait for the paused ingester")
		case 90:
			c.members["ing3"].signal(syscall.SIGCONT)
		}
		began := time.Now()
		w.write(t, step)
		slowest = max(slowest, time.Since(began))
	}
	t.Logf("slowest write while an ingester was paused: %v", slowest)
	require.Less(t, slowest, 2*time.Second, "writes do not wait for the paused replica")
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")
	compareQueries(t, prom, c.members["quer"].url("/prometheus"), w.start, w.end)
}

// TestClusterScaleOutAndIn: 3 → 4 ingesters under steady writes, then
// 4 → 3 by a graceful leave (SIGTERM: LEAVING, handover, LEFT), at RF=1 and
// RF=3. No write fails, and every corpus query, including the per-series
// sample counts, equals Prometheus 3's on the same data.
func TestClusterScaleOutAndIn(t *testing.T) {
	t.Parallel()
	for _, rf := range []int{1, 3} {
		t.Run(fmt.Sprintf("rf=%d", rf), func(t *testing.T) {
			prom := startPrometheus3(t)
			c := newCluster(t, rf)
			for _, id := range []string{"ing1", "ing2", "ing3", "dist", "quer"} {
				c.add(id)
			}
			c.waitRing("dist", "ing1", "ing2", "ing3")

			w := newDualWriter(prom, c.members["dist"].url(""))
			left := make(chan struct{})
			for step := 0; step < genSteps; step++ {
				switch step {
				case 40:
					c.add("ing4")
					c.waitRing("dist", "ing1", "ing2", "ing3", "ing4")
					c.waitRing("quer", "ing1", "ing2", "ing3", "ing4")
				case 80:
					go func() {
						c.members["ing4"].stop(t)
						close(left)
					}()
				}
				w.write(t, step)
				// Steady load, not a burst: the leaving ingester must see
				// writes stop because the ring changed, not because they ended.
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case <-left:
			case <-time.After(60 * time.Second):
				t.Fatal("ing4 did not leave within 60s")
			}
			c.waitRing("dist", "ing1", "ing2", "ing3")
			c.waitRing("quer", "ing1", "ing2", "ing3")
			received := metricValue(t, c.members["ing1"], "orrery_ingester_handover_chunks_received_total") +
				metricValue(t, c.members["ing2"], "orrery_ingester_handover_chunks_received_total") +
				metricValue(t, c.members["ing3"], "orrery_ingester_handover_chunks_received_total")
			require.Positive(t, received, "ing4 handed its chunks over")
			t.Logf("chunks handed over: %v", received)
			compareQueries(t, prom, c.members["quer"].url("/prometheus"), w.start, w.end)
			counts := url.Values{"query": {`count_over_time({__name__=~".+"}[2h])`}, "time": {strconv.FormatInt(w.end.Unix(), 10)}}
			want, err := get(prom, "/api/v1/query", counts)
			require.NoError(t, err)
			got, err := get(c.members["quer"].url("/prometheus"), "/api/v1/query", counts)
			require.NoError(t, err)
			require.Empty(t, diffResponses(want, got), "samples per series equal what was acknowledged")
		})
	}
}

// TestClusterRestartKeepsDataInPlace: at RF=1 an ingester started with
// -ingester.handover-on-shutdown=false is restarted (SIGTERM, start again
// on the same data dir) under steady writes. It hands nothing over: it
// stays in the ring LEAVING while down, its series' writes go to the next
// owner meanwhile, and it comes back with its tokens and its data. No write
// fails, and every query and per-series sample count equals Prometheus 3's.
func TestClusterRestartKeepsDataInPlace(t *testing.T) {
	t.Parallel()
	prom := startPrometheus3(t)
	c := newCluster(t, 1)
	c.extra["ing2"] = []string{"-ingester.handover-on-shutdown=false"}
	for _, id := range []string{"ing1", "ing2", "ing3", "dist", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")
	ownedBefore := c.ring("dist")["ing2"].Owned

	w := newDualWriter(prom, c.members["dist"].url(""))
	restarted := make(chan struct{})
	for step := 0; step < genSteps; step++ {
		switch step {
		case 40:
			go func() {
				c.members["ing2"].stop(t)
				close(restarted)
			}()
		case 80:
			select {
			case <-restarted:
			case <-time.After(60 * time.Second):
				t.Fatal("ing2 did not stop within 60s")
			}
			require.Equal(t, "LEAVING", c.ring("dist")["ing2"].State, "a restarting ingester keeps its place in the ring")
			c.startMember("ing2")
			c.waitRing("dist", "ing1", "ing2", "ing3")
			c.waitRing("quer", "ing1", "ing2", "ing3")
		}
		w.write(t, step)
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, ownedBefore, c.ring("dist")["ing2"].Owned, "ing2 came back with its own tokens")
	for _, id := range []string{"ing1", "ing3"} {
		require.Zero(t, metricValue(t, c.members[id], "orrery_ingester_handover_chunks_received_total"), "nothing was handed to %s", id)
	}
	compareQueries(t, prom, c.members["quer"].url("/prometheus"), w.start, w.end)
	require.Positive(t, metricValue(t, c.members["quer"], `orrery_querier_pushdown_queries_total{outcome="pushed"}`), "RF=1: aggregations pushed down to the three ingesters")
	counts := url.Values{"query": {`count_over_time({__name__=~".+"}[2h])`}, "time": {strconv.FormatInt(w.end.Unix(), 10)}}
	want, err := get(prom, "/api/v1/query", counts)
	require.NoError(t, err)
	got, err := get(c.members["quer"].url("/prometheus"), "/api/v1/query", counts)
	require.NoError(t, err)
	require.Empty(t, diffResponses(want, got), "samples per series equal what was acknowledged")
}
