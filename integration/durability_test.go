//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// ackWriter writes one sample per series per step, one step per request,
// and records which steps Orrery acknowledged with a 2xx.
type ackWriter struct {
	gen  *loadgen.Generator
	base time.Time
	// pace, if set, is the pause between two writes of run: steady load
	// rather than as fast as possible.
	pace  time.Duration
	mu    sync.Mutex
	acked []int
}

func (w *ackWriter) ts(step int) int64 {
	return w.base.Add(time.Duration(step) * time.Second).UnixMilli()
}

// run writes steps from first on until stop is closed or a write fails.
func (w *ackWriter) run(t *testing.T, pushURL string, first int, stop <-chan struct{}) int {
	c := loadgen.NewClient(pushURL, "", 5*time.Second)
	var raw, body []byte
	for step := first; ; step++ {
		select {
		case <-stop:
			return step
		default:
		}
		raw = w.gen.AppendRequest(raw[:0], 0, w.gen.Len(), step, w.ts(step))
		body = loadgen.Compress(body[:0], raw)
		if err := c.Send(ctxTimeout(t, 5*time.Second), body); err != nil {
			return step
		}
		w.mu.Lock()
		w.acked = append(w.acked, step)
		w.mu.Unlock()
		time.Sleep(w.pace)
	}
}

// rawSamples returns, per series, the timestamps Orrery holds in the last
// 3 hours before at.
func rawSamples(t *testing.T, o *orrery, at time.Time) map[string]map[int64]bool {
	t.Helper()
	resp, err := get(o.url("/prometheus"), "/api/v1/query", url.Values{
		"query": {`{__name__=~".+"}[3h]`}, "time": {strconv.FormatInt(at.Unix(), 10)},
	})
	require.NoError(t, err)
	require.Equal(t, "success", resp.Status, resp.Error)
	var d queryData
	require.NoError(t, json.Unmarshal(resp.Data, &d))
	var series []seriesResult
	require.NoError(t, json.Unmarshal(d.Result, &series))
	out := map[string]map[int64]bool{}
	for _, s := range series {
		key := fmt.Sprint(s.Metric)
		out[key] = map[int64]bool{}
		for _, v := range s.Values {
			ms := int64(v[0].(float64)*1000 + 0.5)
			out[key][ms] = true
		}
	}
	return out
}

func requireAllAcked(t *testing.T, o *orrery, w *ackWriter) {
	t.Helper()
	got := rawSamples(t, o, time.Now())
	require.Len(t, got, w.gen.Len(), "series")
	missing := 0
	for _, step := range w.acked {
		for key, ts := range got {
			if !ts[w.ts(step)] {
				missing++
				if missing < 5 {
					t.Errorf("acknowledged step %d missing from %s", step, key)
				}
			}
		}
	}
	require.Zero(t, missing, "acknowledged samples missing")
}

// TestKill9LosesNothingAcknowledged kills Orrery with SIGKILL during steady
// remote_write load; after restart every acknowledged sample is queryable.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	o := startOrrery(t, dir)
	w := &ackWriter{gen: loadgen.New(7, 1), base: time.Now().Add(-2 * time.Hour)}
	stop := make(chan struct{})
	var next atomic.Int64
	done := make(chan struct{})
	go func() {
		next.Store(int64(w.run(t, o.url("/api/v1/push"), 0, stop)))
		close(done)
	}()
	time.Sleep(3 * time.Second)
	o.kill9(t)
	<-done
	require.NotEmpty(t, w.acked)
	t.Logf("%d steps of %d series acknowledged before kill -9", len(w.acked), w.gen.Len())

	o.start(t)
	requireAllAcked(t, o, w)
	// And it keeps taking writes where it left off.
	close(stop)
	w.run(t, o.url("/api/v1/push"), int(next.Load())+1, stop)
}

// TestStoreServesFlushedDataAfterCrash makes chunks small and flushes and
// checkpoints fast, so that after a crash most data can only come from the
// bbolt store: the WAL behind the checkpoint is gone and memory kept only
// the unflushed head chunks.
func TestStoreServesFlushedDataAfterCrash(t *testing.T) {
	dir := t.TempDir()
	fast := []string{"-ingester.max-chunk-samples=10", "-ingester.flush-period=200ms", "-ingester.checkpoint-period=500ms"}
	o := startOrrery(t, dir, fast...)
	w := &ackWriter{gen: loadgen.New(9, 1), base: time.Now().Add(-2 * time.Hour)}
	for step := 0; step < 45; step++ {
		w.runOne(t, o.url("/api/v1/push"), step)
	}
	require.Eventually(t, func() bool {
		return metricValue(t, o, "orrery_ingester_chunks_flushed_total") >= float64(4*w.gen.Len()) &&
			metricValue(t, o, "orrery_ingester_checkpoint_duration_seconds_count") >= 2
	}, 20*time.Second, 100*time.Millisecond)
	o.kill9(t)

	o.start(t, fast...)
	requireAllAcked(t, o, w)
}

func (w *ackWriter) runOne(t *testing.T, pushURL string, step int) {
	t.Helper()
	c := loadgen.NewClient(pushURL, "", 5*time.Second)
	raw := w.gen.AppendRequest(nil, 0, w.gen.Len(), step, w.ts(step))
	require.NoError(t, c.Send(ctxTimeout(t, 5*time.Second), loadgen.Compress(nil, raw)))
	w.acked = append(w.acked, step)
}

// metricValue reads one unlabelled metric (or one series, labels given in
// name) from /metrics. A metric asked for without labels that has them
// fails the test: it would read as 0 whatever its value, so a check
// against it would check nothing (labelledMetric sums such a metric).
func metricValue(t *testing.T, o *orrery, name string) float64 {
	t.Helper()
	resp, err := httpGet(o.url("/metrics"))
	require.NoError(t, err)
	for _, line := range strings.Split(resp, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(t, err)
			return f
		}
		if !strings.Contains(name, "{") && strings.HasPrefix(line, name+"{") {
			t.Fatalf("metric %s has labels: read it with labelledMetric", name)
		}
	}
	return 0
}
