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

// TestRepeatedKill9AtRF3 is RELIABILITY.md scenario 5 on a cluster: three
// ingesters at RF=3 behind a distributor, one killed with SIGKILL every
// 15 s in turn (ing1, ing2, ing3) under steady writes, each restarted on
// its data dir once the next is due. A write the sender saw fail is
// retried until it succeeds, as a remote-write client would. Every
// acknowledged sample is readable through the querier at the end, and each
// replay time is read from the metric and logged.
func TestRepeatedKill9AtRF3(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	fast := []string{"-ingester.max-chunk-samples=10", "-ingester.flush-period=1s", "-ingester.checkpoint-period=3s"}
	for _, id := range []string{"ing1", "ing2", "ing3"} {
		c.extra[id] = fast
	}
	for _, id := range []string{"ing1", "ing2", "ing3", "dist", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")

	w := &ackWriter{gen: loadgen.NewWithSeries(6, 50), base: time.Now().Add(-2 * time.Hour), pace: 20 * time.Millisecond}
	stop := make(chan struct{})
	done := make(chan struct{})
	retries := 0
	go func() {
		defer close(done)
		for next := 0; ; retries++ {
			next = w.run(t, c.members["dist"].url("/api/v1/push"), next, stop)
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	for _, id := range []string{"ing1", "ing2", "ing3"} {
		time.Sleep(15 * time.Second)
		c.members[id].kill9(t)
		c.startMember(id)
		t.Logf("%s killed and restarted: replay took %.3fs; %d steps acknowledged so far", id,
			metricValue(t, c.members[id], "orrery_ingester_wal_replay_duration_seconds"), len(w.acked))
		c.waitRing("dist", "ing1", "ing2", "ing3")
	}
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	t.Logf("%d steps of %d series acknowledged, %d writes retried", len(w.acked), w.gen.Len(), retries)
	c.waitRing("quer", "ing1", "ing2", "ing3")
	requireAllAcked(t, c.members["quer"], w)
}
