//go:build integration

package integration

import (
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// historySteps is six hours of 15 s steps, backfilled in three parts.
const historySteps = 6 * 60 * 4

// newBackfillWriter is a dualWriter over steps steps of genInterval that
// end a minute ago.
func newBackfillWriter(prom, distributor string, steps int) *dualWriter {
	w := newDualWriter(prom, distributor)
	w.start = w.end.Add(-time.Duration(steps-1) * genInterval)
	return w
}

// writeSteps sends steps [from, to).
func (w *dualWriter) writeSteps(t *testing.T, from, to int) {
	t.Helper()
	for step := from; step < to; step++ {
		w.write(t, step)
	}
}

// stopAsync sends SIGTERM to member id and returns a channel closed once it
// has exited.
func (c *cluster) stopAsync(id string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.members[id].stop(c.t)
	}()
	return done
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(90 * time.Second):
		t.Fatalf("%s within 90s", what)
	}
}

// requireSameHistory compares every corpus query over the whole history,
// and every series' sample count, with the reference.
func requireSameHistory(t *testing.T, prom, querier string, w *dualWriter) {
	t.Helper()
	compareQueries(t, prom, querier, w.start, w.end)
	window := strconv.Itoa(int(w.end.Sub(w.start).Seconds())+60) + "s"
	counts := url.Values{"query": {`count_over_time({__name__=~".+"}[` + window + `])`}, "time": {strconv.FormatInt(w.end.Unix(), 10)}}
	want, err := get(prom, "/api/v1/query", counts)
	require.NoError(t, err)
	got, err := get(querier, "/api/v1/query", counts)
	require.NoError(t, err)
	require.Empty(t, diffResponses(want, got), "samples per series equal what was acknowledged")
}

// TestHandoverKeepsHistoryAcrossJoinAndLeave (RELIABILITY.md scenario 15,
// RF=1): six hours are backfilled in three parts; after the first a
// fourth ingester joins (new writes of some series go to it, their history
// stays where it was), after the second one of the first three leaves by
// SIGTERM. Its handover must give the joined ingester the history it never
// had: every query and every series' sample count equals Prometheus 3's.
func TestHandoverKeepsHistoryAcrossJoinAndLeave(t *testing.T) {
	t.Parallel()
	prom := startPrometheus3(t)
	c := newCluster(t, 1)
	for _, id := range []string{"ing1", "ing2", "ing3", "dist", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")

	w := newBackfillWriter(prom, c.members["dist"].url(""), historySteps)
	third := historySteps / 3
	w.writeSteps(t, 0, third)
	c.add("ing4")
	c.waitRing("dist", "ing1", "ing2", "ing3", "ing4")
	c.waitRing("quer", "ing1", "ing2", "ing3", "ing4")
	w.writeSteps(t, third, 2*third)
	waitClosed(t, c.stopAsync("ing1"), "ing1 leaves")
	c.waitRing("dist", "ing2", "ing3", "ing4")
	c.waitRing("quer", "ing2", "ing3", "ing4")
	require.Equal(t, "LEFT", c.ring("dist")["ing1"].State)
	w.writeSteps(t, 2*third, historySteps)

	requireSameHistory(t, prom, c.members["quer"].url("/prometheus"), w)
}

// TestHandoverTwoLeaveAtOnceRF3 (RELIABILITY.md scenario 15, RF=3): three
// ingesters take the first two hours, two more join for the next two,
// then two leave at once (an original and a joined one, as a Parallel
// StatefulSet scale-in does) before the last two hours. Every series must
// then be on all three remaining replicas: with one of them paused, every
// query over the whole history still equals Prometheus 3's.
func TestHandoverTwoLeaveAtOnceRF3(t *testing.T) {
	t.Parallel()
	prom := startPrometheus3(t)
	c := newCluster(t, 3)
	for _, id := range []string{"ing1", "ing2", "ing3", "dist", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")

	w := newBackfillWriter(prom, c.members["dist"].url(""), historySteps)
	third := historySteps / 3
	w.writeSteps(t, 0, third)
	c.add("ing4")
	c.add("ing5")
	c.waitRing("dist", "ing1", "ing2", "ing3", "ing4", "ing5")
	c.waitRing("quer", "ing1", "ing2", "ing3", "ing4", "ing5")
	w.writeSteps(t, third, 2*third)
	left1, left4 := c.stopAsync("ing1"), c.stopAsync("ing4")
	waitClosed(t, left1, "ing1 leaves")
	waitClosed(t, left4, "ing4 leaves")
	c.waitRing("dist", "ing2", "ing3", "ing5")
	c.waitRing("quer", "ing2", "ing3", "ing5")
	w.writeSteps(t, 2*third, historySteps)

	c.members["ing3"].signal(syscall.SIGSTOP)
	defer c.members["ing3"].signal(syscall.SIGCONT)
	require.Eventually(t, func() bool { return !c.ring("quer")["ing3"].Healthy }, 30*time.Second, 200*time.Millisecond, "the querier sees ing3 paused")
	requireSameHistory(t, prom, c.members["quer"].url("/prometheus"), w)
}

// TestFailedHandoverStaysInRing: at RF=1 an ingester leaves while the only
// other one is down. Its handover cannot succeed: it stays in the ring,
// LEAVING with its tokens, says so (log, metrics), retries, and past
// -ingester.shutdown-timeout exits keeping its entry, so a query that
// needs it fails instead of silently missing its series. Restarted, it
// serves them again; a later POST /ingester/shutdown retries, and
// succeeds once the target is back. Nothing is lost.
func TestFailedHandoverStaysInRing(t *testing.T) {
	t.Parallel()
	prom := startPrometheus3(t)
	c := newCluster(t, 1)
	c.extra["ing1"] = []string{"-ingester.shutdown-timeout=15s"}
	// The distributor is the gossip seed: both ingesters go down here.
	for _, id := range []string{"dist", "quer", "ing1", "ing2"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2")
	c.waitRing("quer", "ing1", "ing2")
	w := newBackfillWriter(prom, c.members["dist"].url(""), 240)
	w.writeSteps(t, 0, 240)
	quer := c.members["quer"].url("/prometheus")
	requireSameHistory(t, prom, quer, w)

	// The target is down: the handover fails, is retried and shown.
	c.members["ing2"].kill9(t)
	require.Eventually(t, func() bool { return !c.ring("dist")["ing2"].Healthy }, 30*time.Second, 200*time.Millisecond, "the ring notices ing2 is down")
	stopped := c.stopAsync("ing1")
	ing1 := c.members["ing1"]
	require.Eventually(t, func() bool {
		return metricValue(t, ing1, "orrery_ingester_handover_failures_total") >= 1 && metricValue(t, ing1, "orrery_ingester_handover_failing") == 1
	}, 30*time.Second, 200*time.Millisecond, "ing1's metrics say its handover fails")
	require.Equal(t, "LEAVING", c.ring("dist")["ing1"].State)

	// Past the deadline it exits without leaving the ring.
	waitClosed(t, stopped, "ing1 gives up at its shutdown deadline")
	r := c.ring("dist")["ing1"]
	require.Equal(t, "LEAVING", r.State, "ing1 stays in the ring")
	require.Positive(t, r.Owned, "ing1 keeps its tokens")
	c.startMember("ing2")
	require.Eventually(t, func() bool { return c.ring("quer")["ing2"].Healthy && !c.ring("quer")["ing1"].Healthy }, 30*time.Second, 200*time.Millisecond)
	resp, err := get(quer, "/api/v1/query", url.Values{"query": {"count(up)"}, "time": {strconv.FormatInt(w.end.Unix(), 10)}})
	require.NoError(t, err)
	require.True(t, resp.Status == "error" || len(resp.Warnings) > 0, "a read that misses ing1 fails or warns, never silently partial: %+v", resp)

	// Back on its data dir, it serves everything again. Its next leave
	// gets time to outlast the target's restart.
	c.extra["ing1"] = []string{"-ingester.shutdown-timeout=90s"}
	c.startMember("ing1")
	c.waitRing("quer", "ing1", "ing2")
	requireSameHistory(t, prom, quer, w)

	// A requested leave while the target is down keeps retrying, and
	// succeeds once it is back.
	c.members["ing2"].kill9(t)
	require.Eventually(t, func() bool { return !c.ring("dist")["ing2"].Healthy }, 30*time.Second, 200*time.Millisecond, "the ring notices ing2 is down")
	code, body := authed(t, http.MethodPost, ing1.url("/ingester/shutdown"), "", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Eventually(t, func() bool { return metricValue(t, ing1, "orrery_ingester_handover_failing") == 1 }, 30*time.Second, 200*time.Millisecond)
	c.startMember("ing2")
	done := make(chan struct{})
	go func() { _ = ing1.cmd.Wait(); close(done) }()
	waitClosed(t, done, "ing1 hands over once ing2 is back")
	require.Equal(t, 0, ing1.cmd.ProcessState.ExitCode(), "the retried handover succeeded")
	c.waitRing("dist", "ing2")
	c.waitRing("quer", "ing2")
	require.Equal(t, "LEFT", c.ring("dist")["ing1"].State)
	requireSameHistory(t, prom, quer, w)
}
