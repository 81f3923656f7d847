//go:build integration

package integration

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

const (
	genSeed      = 42
	genInstances = 4
	genSteps     = 120
	genInterval  = 15 * time.Second
)

// writeGenerated sends the same generated data to every URL, one request per
// step, and returns the time range it covers.
func writeGenerated(t *testing.T, gen *loadgen.Generator, steps int, end time.Time, urls ...string) (start time.Time) {
	t.Helper()
	start = end.Add(-time.Duration(steps-1) * genInterval)
	clients := make([]*loadgen.Client, len(urls))
	for k, u := range urls {
		clients[k] = loadgen.NewClient(u, "", 10*time.Second)
	}
	var raw, body []byte
	for step := 0; step < steps; step++ {
		ts := start.Add(time.Duration(step) * genInterval).UnixMilli()
		raw = gen.AppendRequest(raw[:0], 0, gen.Len(), step, ts)
		body = loadgen.Compress(body[:0], raw)
		for k, c := range clients {
			require.NoError(t, c.Send(ctxTimeout(t, 10*time.Second), body), "step %d to %s", step, urls[k])
		}
	}
	return start
}

// TestPromQLMatchesPrometheus3 writes the same data into Orrery and into a
// real Prometheus 3 and requires every query of testdata/queries.txt to
// answer identically, instant and range.
func TestPromQLMatchesPrometheus3(t *testing.T) {
	prom := startPrometheus3(t)
	o := startOrrery(t, t.TempDir())
	gen := loadgen.New(genSeed, genInstances)
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	start := writeGenerated(t, gen, genSteps, end, prom+"/api/v1/write", o.url("/api/v1/push"))

	require.Zero(t, compareCorpus(t, prom, o.url("/prometheus"), start, end))

}

// compareCorpus evaluates every query of testdata/queries.txt against
// Prometheus 3 at prom and Orrery at orreryBase, instant at the data's end
// and middle and as a range, over data written from start to end, and
// returns how many answers differ (each reported).
func compareCorpus(t *testing.T, prom, orreryBase string, start, end time.Time) int {
	t.Helper()
	queries := readLines(t, "testdata/queries.txt")
	require.GreaterOrEqual(t, len(queries), 50)
	sec := func(tm time.Time) string { return strconv.FormatFloat(float64(tm.UnixMilli())/1000, 'f', 3, 64) }
	failures := 0
	for _, q := range queries {
		cases := []struct {
			kind, path string
			params     url.Values
		}{
			{"instant", "/api/v1/query", url.Values{"query": {q}, "time": {sec(end)}}},
			{"instant-mid", "/api/v1/query", url.Values{"query": {q}, "time": {sec(start.Add(17*time.Minute + 7*time.Second))}}},
			{"range", "/api/v1/query_range", url.Values{"query": {q}, "start": {sec(start.Add(10 * time.Minute))}, "end": {sec(end.Add(2 * time.Minute))}, "step": {"37"}}},
		}
		for _, c := range cases {
			want, err := get(prom, c.path, c.params)
			require.NoError(t, err, "prometheus: %s", q)
			got, err := get(orreryBase, c.path, c.params)
			require.NoError(t, err, "orrery: %s", q)
			if d := diffResponses(want, got); d != "" {
				failures++
				t.Errorf("%s %q: %s", c.kind, q, d)
			}
		}
	}
	t.Logf("%d queries × 3 evaluations compared, %d differences", len(queries), failures)
	return failures
}

// TestPromQLOverCompactedData: data in a complete 2-hour partition,
// compacted into cold blocks of runs by a restarted Orrery, answers the
// corpus as Prometheus 3 does: read once rebuilding the runs, once from
// the block cache, and again after another restart.
func TestPromQLOverCompactedData(t *testing.T) {
	prom := startPrometheus3(t)
	dir := t.TempDir()
	o := startOrrery(t, dir)
	gen := loadgen.New(genSeed, genInstances)
	// An hour of data ending a minute before the last 2-hour boundary:
	// its partition is complete, so compaction takes all of it.
	const partition = 2 * time.Hour
	end := time.Now().Truncate(partition).Add(-time.Minute)
	start := writeGenerated(t, gen, 4*genSteps/2, end, prom+"/api/v1/write", o.url("/api/v1/push"))
	o.stop(t) // flushes every chunk, the open ones too, to the store

	o.start(t, "-ingester.compact-after=1s")
	deadline := time.Now().Add(60 * time.Second)
	for metricValue(t, o, "orrery_store_compacted_chunks_total") == 0 {
		require.True(t, time.Now().Before(deadline), "no chunk compacted within 60s")
		time.Sleep(200 * time.Millisecond)
	}
	require.Zero(t, compareCorpus(t, prom, o.url("/prometheus"), start, end), "first read, rebuilding the runs")
	require.Zero(t, compareCorpus(t, prom, o.url("/prometheus"), start, end), "second read, from the block cache")
	require.Positive(t, labelledMetric(t, o, "orrery_store_block_cache_requests_total", `result="hit"`))
	require.Zero(t, metricValue(t, o, "orrery_store_damaged_blocks_total"))
	o.stop(t)
	o.start(t)
	require.Zero(t, compareCorpus(t, prom, o.url("/prometheus"), start, end), "after a restart")
}

// TestKill9DuringCompaction: an Orrery killed -9 again and again while it
// compacts a complete partition of 4,200 series answers the corpus as
// Prometheus 3 does, with the partition part in blocks and part in the
// chunks bucket, and again once a clean start has compacted the rest: a
// compaction transaction moves chunks into blocks and deletes them in one.
func TestKill9DuringCompaction(t *testing.T) {
	prom := startPrometheus3(t)
	dir := t.TempDir()
	o := startOrrery(t, dir)
	gen := loadgen.New(genSeed, 20)
	const partition = 2 * time.Hour
	end := time.Now().Truncate(partition).Add(-time.Minute)
	start := writeGenerated(t, gen, 4*genSteps/2, end, prom+"/api/v1/write", o.url("/api/v1/push"))
	o.stop(t)

	// Compaction starts with the process, and here commits its first
	// transaction a few hundred milliseconds after the process is ready:
	// kills every 50 ms from then on land before, inside and after the
	// pass (locally, kills up to 350 ms left 5,483 of 10,481 chunks for
	// the last start), and each start goes on from the last.
	var kills []time.Duration
	for after := time.Duration(0); after <= 400*time.Millisecond; after += 50 * time.Millisecond {
		kills = append(kills, after)
	}
	for _, after := range append(kills, 600*time.Millisecond, 900*time.Millisecond) {
		o.start(t, "-ingester.compact-after=1s")
		time.Sleep(after)
		o.kill9(t)
	}
	o.start(t, "-ingester.compact-after=0")
	require.Zero(t, compareCorpus(t, prom, o.url("/prometheus"), start, end), "after the kills, compaction off")
	require.Zero(t, metricValue(t, o, "orrery_store_damaged_blocks_total"))
	o.stop(t)

	o.start(t, "-ingester.compact-after=1s")
	time.Sleep(3 * time.Second) // what the kills left of the pass is a few transactions
	t.Logf("the last start compacted %v chunks (10,481 without kills)", metricValue(t, o, "orrery_store_compacted_chunks_total"))
	require.Zero(t, compareCorpus(t, prom, o.url("/prometheus"), start, end), "compacted")
	require.Zero(t, metricValue(t, o, "orrery_store_damaged_blocks_total"))
}
