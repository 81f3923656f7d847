package querier

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ringpb"
)

var allActive = []ringpb.State{ringpb.State_ACTIVE, ringpb.State_ACTIVE, ringpb.State_ACTIVE}

// askedAll waits until each ingester got n calls: a read that asks all
// returns once all but MaxErrors answered, before the last call may even
// have started.
func (c *fakeCluster) askedAll(t *testing.T, n int64, msg string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, f := range c.ingesters {
			if f.calls.Load() != n {
				return false
			}
		}
		return true
	}, 5*time.Second, time.Millisecond, "%s: %v", msg, c.calls())
}

// calls returns how many calls each ingester got so far.
func (c *fakeCluster) calls() []int64 {
	out := make([]int64, len(c.ingesters))
	for k, f := range c.ingesters {
		out[k] = f.calls.Load()
	}
	return out
}

func (tq *testQuerier) spareCalls(reason string) float64 {
	return testutil.ToFloat64(tq.q.hedged.WithLabelValues(reason))
}

// quorumData is what three replicas hold after quorum writes with each
// replica missing some: replica k lacks every third sample from the k-th
// on (it was down, or the write's answer raced past it), so every sample
// is on two of the three, and no single replica has it all. want is
// everything that was written.
func quorumData(now time.Time) (perReplica [3][]fakeSeries, want []fakeSeries) {
	want = series("up", 4, now.Add(-10*time.Minute), now)
	for k := range perReplica {
		for _, s := range want {
			kept := fakeSeries{lset: s.lset}
			for j, ts := range s.ts {
				if j%3 != k {
					kept.ts = append(kept.ts, ts)
				}
			}
			perReplica[k] = append(perReplica[k], kept)
		}
	}
	return perReplica, want
}

// countQuery is a query whose answer shows every sample: how many each
// series has over the written window.
func countQuery(now time.Time) url.Values {
	return url.Values{"query": {"count_over_time(up[11m])"}, "time": {unix(now)}}
}

func countsBody(t *testing.T, tq *testQuerier, now time.Time) string {
	t.Helper()
	code, body := tq.get(t, "a", PathPrefix+"/query", countQuery(now))
	require.Equal(t, http.StatusOK, code, body)
	return body
}

// newQuorumQuerier is a test querier over three ingesters holding
// quorumData, behind a real ring at RF=3 in the states given.
func newQuorumQuerier(t *testing.T, states []ringpb.State) (*testQuerier, []fakeSeries) {
	now := time.Now()
	perReplica, want := quorumData(now)
	tq := newTestQuerier(t, testConfig(), 3, nil, false)
	for k, f := range tq.cluster.ingesters {
		f.data = map[string][]fakeSeries{"a": perReplica[k]}
	}
	tq.cluster.ring = staticRing(3, states)
	return tq, want
}

// While the ring is settled, a read asks only the two ingesters a
// complete answer needs at RF=3, leaving each out in turn, and the answer
// holds every written sample though no replica has them all.
func TestSettledRingAsksOnlyTheIngestersItNeeds(t *testing.T) {
	now := time.Now()
	tq, want := newQuorumQuerier(t, allActive)
	all := newTestQuerier(t, testConfig(), 1, map[string][]fakeSeries{"a": want}, false)
	wantBody := countsBody(t, all, now)
	for q := 1; q <= 6; q++ {
		require.Equal(t, wantBody, countsBody(t, tq, now), "query %d", q)
		var total int64
		for _, c := range tq.cluster.calls() {
			total += c
		}
		require.Equal(t, int64(2*q), total, "query %d asked two ingesters", q)
	}
	require.Equal(t, []int64{4, 4, 4}, tq.cluster.calls(), "each ingester left out in turn")
	require.Zero(t, tq.spareCalls("failed")+tq.spareCalls("slow"))
}

// An ingester that fails is replaced by the spare at once: the read still
// succeeds, complete; two failures at RF=3 are more than the tolerance.
func TestFailedIngesterIsReplacedBySpare(t *testing.T) {
	now := time.Now()
	tq, want := newQuorumQuerier(t, allActive)
	all := newTestQuerier(t, testConfig(), 1, map[string][]fakeSeries{"a": want}, false)
	wantBody := countsBody(t, all, now)
	tq.cluster.ingesters[1].down.Store(true)
	for q := 1; q <= 3; q++ {
		require.Equal(t, wantBody, countsBody(t, tq, now), "query %d", q)
	}
	// Of three rotations, two ask the failing ingester and need its spare.
	require.Equal(t, 2.0, tq.spareCalls("failed"))
	require.Equal(t, []int64{3, 2, 3}, tq.cluster.calls())

	tq.cluster.ingesters[2].down.Store(true)
	code, body := tq.get(t, "a", PathPrefix+"/query", countQuery(now))
	require.NotEqual(t, http.StatusOK, code, body)
	require.Contains(t, body, "connection refused")
}

// A paused ingester does not hold the read up: the hedging delay after the
// first answer, its spare is asked, and the read is complete.
func TestSlowIngesterIsHedgedBySpare(t *testing.T) {
	now := time.Now()
	tq, want := newQuorumQuerier(t, allActive)
	all := newTestQuerier(t, testConfig(), 1, map[string][]fakeSeries{"a": want}, false)
	wantBody := countsBody(t, all, now)
	tq.cluster.ingesters[0].delay = time.Minute
	for q := 1; q <= 3; q++ {
		start := time.Now()
		require.Equal(t, wantBody, countsBody(t, tq, now), "query %d", q)
		require.Less(t, time.Since(start), 5*time.Second)
	}
	require.Equal(t, 2.0, tq.spareCalls("slow"), "the two rotations that asked the paused ingester")
	require.Eventually(t, func() bool { return tq.cluster.ingesters[0].cancelled.Load() == 2 }, 5*time.Second, time.Millisecond,
		"the late calls are cancelled once the answer is complete")
}

// While the ring changes (an owner JOINING or LEAVING) or reads are off
// the minimized path, every ingester is asked, as before.
func TestChangingRingAsksEveryIngester(t *testing.T) {
	now := time.Now()
	for _, states := range [][]ringpb.State{
		{ringpb.State_ACTIVE, ringpb.State_ACTIVE, ringpb.State_LEAVING},
		{ringpb.State_JOINING, ringpb.State_ACTIVE, ringpb.State_ACTIVE},
	} {
		tq, _ := newQuorumQuerier(t, states)
		for range 3 {
			countsBody(t, tq, now)
		}
		tq.cluster.askedAll(t, 3, fmt.Sprint(states))
	}
	cfg := testConfig()
	cfg.MinimizeIngesterRequests = false
	tq := newTestQuerier(t, cfg, 3, map[string][]fakeSeries{"a": series("up", 1, now.Add(-time.Minute), now)}, false)
	tq.cluster.ring = staticRing(3, allActive)
	for range 3 {
		countsBody(t, tq, now)
	}
	tq.cluster.askedAll(t, 3, "minimizing is off")
}

// At RF=1 (no tolerance) every ingester is needed: nothing is left out.
func TestNoToleranceAsksEveryIngester(t *testing.T) {
	now := time.Now()
	tq := newTestQuerier(t, testConfig(), 3, map[string][]fakeSeries{"a": series("up", 1, now.Add(-time.Minute), now)}, false)
	tq.cluster.ring = staticRing(1, allActive)
	countsBody(t, tq, now)
	require.Equal(t, []int64{1, 1, 1}, tq.cluster.calls())
}
