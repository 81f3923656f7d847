//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// retryBatch is one remote-write request of n series with k samples each,
// 15 s apart, ending a minute ago: what a sender retries whole.
type retryBatch struct {
	body []byte
	// want is every series' samples, by timestamp in ms.
	want map[string]map[int64]float64
	n    int
	// first is the batch's first series.
	first prompb.TimeSeries
}

func newRetryBatch(t *testing.T, name string, n, k int) retryBatch {
	end := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	b := retryBatch{want: map[string]map[int64]float64{}, n: n * k}
	var series []prompb.TimeSeries
	for i := range n {
		s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}, {Name: "i", Value: strconv.Itoa(i)}}}
		key := fmt.Sprint(map[string]string{"__name__": name, "i": strconv.Itoa(i)})
		b.want[key] = map[int64]float64{}
		for j := range k {
			ts, v := end-int64(k-1-j)*15000, float64(i*1000+j)+0.25
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: ts, Value: v})
			b.want[key][ts] = v
		}
		series = append(series, s)
	}
	b.body = writeRequest(t, series...)
	b.first = series[0]
	return b
}

// requireExactly checks that a query of name through base returns exactly
// the batch: every series, every timestamp once, every value as sent.
func (b retryBatch) requireExactly(t *testing.T, base, name string) {
	t.Helper()
	resp, err := get(base, "/api/v1/query", url.Values{"query": {name + "[1h]"}, "time": {strconv.FormatInt(time.Now().Unix(), 10)}})
	require.NoError(t, err)
	require.Equal(t, "success", resp.Status, resp.Error)
	var d queryData
	require.NoError(t, json.Unmarshal(resp.Data, &d))
	var series []seriesResult
	require.NoError(t, json.Unmarshal(d.Result, &series))
	got := map[string]map[int64]float64{}
	for _, s := range series {
		key := fmt.Sprint(s.Metric)
		got[key] = map[int64]float64{}
		for _, v := range s.Values {
			ms := int64(v[0].(float64)*1000 + 0.5)
			_, dup := got[key][ms]
			require.False(t, dup, "%s has two points at %d", key, ms)
			f, err := strconv.ParseFloat(v[1].(string), 64)
			require.NoError(t, err)
			got[key][ms] = f
		}
	}
	require.Equal(t, b.want, got)
}

// TestIdenticalRetriesAreAccepted is RELIABILITY.md scenario 3 on one
// process: the same multi-sample batch sent 5 times is a 2xx every time and
// stored once; then the process restarts (its chunks flushed to the store)
// and the 5 retries are still 2xx, while another value at a stored
// timestamp is a 400.
func TestIdenticalRetriesAreAccepted(t *testing.T) {
	keep := "-ingester.handover-on-shutdown=false"
	o := startOrrery(t, t.TempDir(), keep)
	b := newRetryBatch(t, "retry_single", 20, 8)
	send := func(what string) {
		t.Helper()
		for k := range 5 {
			code, body := pushAs(t, o, "anonymous", b.body)
			require.Equal(t, 2, code/100, "%s, send %d: %d %s", what, k+1, code, body)
		}
	}
	send("before a restart")
	require.Equal(t, float64(b.n), metricValue(t, o, "orrery_ingester_samples_appended_total"), "stored once")
	b.requireExactly(t, o.url("/prometheus"), "retry_single")

	o.stop(t)
	o.start(t, keep)
	send("after a restart")
	require.Zero(t, metricValue(t, o, "orrery_ingester_samples_appended_total"), "nothing stored again")
	b.requireExactly(t, o.url("/prometheus"), "retry_single")

	conflicting := b.first
	conflicting.Samples = []prompb.Sample{{Timestamp: b.first.Samples[3].Timestamp, Value: -1}}
	code, body := pushAs(t, o, "anonymous", writeRequest(t, conflicting))
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "duplicate sample with a different value")
	b.requireExactly(t, o.url("/prometheus"), "retry_single")
}

// TestRetryAfterA5xxAtRF3 is RELIABILITY.md scenario 3 after a 5xx
// mid-request: at RF=3 with ing3 refusing (killed), ing2 is paused while a
// batch is sent, so only ing1 takes it and the write is a 5xx. The sender
// retries the same batch 4 times once ing2 is back: every retry is a 2xx
// (ing1 takes its copy as the identical duplicate it is), and each replica
// stored every sample exactly once.
func TestRetryAfterA5xxAtRF3(t *testing.T) {
	c := newCluster(t, 3)
	// A long heartbeat timeout keeps the ring from dropping ing2 or ing3
	// during the test: the distributor sends to all three and the paused
	// ing2 fails the write by the distributor's timeout, not by the ring.
	slowRing := []string{"-ring.heartbeat-timeout=2m"}
	for _, id := range []string{"ing1", "ing2", "ing3"} {
		c.extra[id] = slowRing
	}
	c.extra["dist"] = append([]string{"-distributor.remote-timeout=2s"}, slowRing...)
	c.extra["quer"] = slowRing
	for _, id := range []string{"ing1", "ing2", "ing3", "dist", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")
	dist := c.members["dist"]
	b := newRetryBatch(t, "retry_rf3", 30, 6)

	c.members["ing3"].kill9(t)
	c.members["ing2"].signal(syscall.SIGSTOP)
	code, body := pushAs(t, dist, "anonymous", b.body)
	require.GreaterOrEqual(t, code, 500, "two replicas of three failed: %s", body)
	require.Equal(t, float64(b.n), metricValue(t, c.members["ing1"], "orrery_ingester_samples_appended_total"), "ing1 took the failed write")
	c.members["ing2"].signal(syscall.SIGCONT)

	for k := range 4 {
		code, body := pushAs(t, dist, "anonymous", b.body)
		require.Equal(t, 2, code/100, "retry %d: %d %s", k+1, code, body)
	}
	for _, id := range []string{"ing1", "ing2"} {
		require.Equal(t, float64(b.n), metricValue(t, c.members[id], "orrery_ingester_samples_appended_total"), "%s stored every sample once", id)
	}
	// ing3 is still down: the querier reads ing1 and ing2.
	b.requireExactly(t, c.members["quer"].url("/prometheus"), "retry_rf3")
}
