//go:build integration

package integration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// TestRepeatedKill9UnderLoad is RELIABILITY.md scenario 5 on one process:
// under steady writes, Orrery is killed with SIGKILL every 15 s, 3 times,
// with chunks cut, flushed and checkpointed every few seconds so that the
// kills land in the middle of those too. The sender retries the write
// that failed once Orrery is back. No acknowledged sample is missing, and
// each replay time is read from the metric and logged.
func TestRepeatedKill9UnderLoad(t *testing.T) {
	fast := []string{"-ingester.max-chunk-samples=10", "-ingester.flush-period=1s", "-ingester.checkpoint-period=3s"}
	o := startOrrery(t, t.TempDir(), fast...)
	w := &ackWriter{gen: loadgen.NewWithSeries(5, 50), base: time.Now().Add(-2 * time.Hour), pace: 20 * time.Millisecond}
	next := 0
	for kill := 1; kill <= 3; kill++ {
		stop := make(chan struct{})
		done := make(chan int)
		go func() { done <- w.run(t, o.url("/api/v1/push"), next, stop) }()
		time.Sleep(15 * time.Second)
		o.kill9(t)
		next = <-done
		close(stop)
		o.start(t, fast...)
		replay := metricValue(t, o, "orrery_ingester_wal_replay_duration_seconds")
		t.Logf("kill %d: %d steps of %d series acknowledged so far; replay took %.3fs", kill, len(w.acked), w.gen.Len(), replay)
		require.Less(t, replay, 10.0, "replay time is bounded")
		requireAllAcked(t, o, w)
	}
	require.Zero(t, labelledMetric(t, o, "orrery_ingester_wal_corruptions_total", `kind=`), "kill -9 damages nothing")
}
