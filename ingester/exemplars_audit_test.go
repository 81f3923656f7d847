package ingester

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// Audit: Prometheus's receiver sorts each series' exemplars (time, value,
// labels) before AppendExemplars, so exemplars a sender lists out of
// order, and a native histogram's several exemplars of one timestamp in
// any order, are all stored. The distributor passes them on in request
// order, and the ingester keeps only those newer than the last it took:
// here 2 of 4 are dropped as out of order.
func TestAuditUnsortedExemplarsInOnePushAreKept(t *testing.T) {
	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalExemplarsPerUser: 100})
	ti := newTestIngester(t, t.TempDir(), testConfig(), withOverrides(o))
	defer ti.stop(t)
	ls := histLabels("x")
	buf := ingesterpb.AppendSeriesHeader(nil, ls, 2)
	buf = ingesterpb.AppendSample(buf, 1000, 1)
	buf = ingesterpb.AppendSample(buf, 3000, 3)
	buf = ingesterpb.AppendExemplarSeriesHeader(buf, ls, 4)
	for _, e := range []testExemplar{{"t2", 2000, 2}, {"t1", 1000, 1}, {"hi", 3000, 9}, {"lo", 3000, 1}} {
		buf = ingesterpb.AppendExemplar(buf, ingesterpb.AppendLabels(nil, labels.FromStrings("trace_id", e.trace)), e.t, e.v)
	}
	require.NoError(t, ti.push(t, "a", buf))
	require.Equal(t, []testExemplar{{"t1", 1000, 1}, {"t2", 2000, 2}, {"lo", 3000, 1}, {"hi", 3000, 9}}, ti.exemplars(t, "a", 0, 10_000)["x"])
}

// Audit: turning a tenant's max_global_exemplars_per_user to 0 is applied
// only when a push carrying exemplars reaches the ingester, and with the
// limit at 0 the distributor never sends one: the exemplars stay stored,
// answered and checkpointed, and the preallocated storage is never freed,
// until a restart, after which they are gone (replay sizes to 0). The
// same answer before and after a restart differs. Lowering the limit
// likewise frees nothing until the tenant's next exemplar.
func TestAuditExemplarLimitTurnedOffIsApplied(t *testing.T) {
	dir := t.TempDir()
	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalExemplarsPerUser: 4})
	ti := newTestIngester(t, dir, testConfig(), withOverrides(o))
	require.NoError(t, ti.push(t, "a", exemplarPush("x", testExemplar{"t1", 1000, 1}, testExemplar{"t2", 2000, 2})))
	o.set("a", limits.Limits{MaxGlobalExemplarsPerUser: 0})
	// What the distributor sends now: the samples, no exemplars.
	require.NoError(t, ti.push(t, "a", onePush("x", 3000, 3)))
	require.NoError(t, ti.checkpoint())
	before := ti.exemplars(t, "a", 0, 10_000)
	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig(), withOverrides(o))
	defer ti.stop(t)
	after := ti.exemplars(t, "a", 0, 10_000)
	require.Empty(t, after, "after a restart")
	require.Empty(t, before, "a tenant whose limit is 0 stores (and answers) no exemplars; before the restart it still answered %v", before)
}

// Audit: each tenant's exemplar storage is allocated whole (a circular
// buffer of its local limit and an index map of that capacity) at its
// first exemplar. With -ingester.max-global-exemplars-per-user=100000
// for everyone, one ~100-byte push per tenant ID costs ~9 MB on each of
// its RF ingesters; tenant IDs are whatever X-Scope-OrgID says. A limit
// of 1e9 in the overrides file allocates tens of GB at the first exemplar,
// and again at every WAL replay (replayExemplars sizes storage first):
// an OOM crash loop.
func TestAuditExemplarStorageCostsWhatItHolds(t *testing.T) {
	o := newTestOverrides()
	const tenants = 8
	for k := range tenants {
		o.set(fmt.Sprint("t", k), limits.Limits{MaxGlobalExemplarsPerUser: 100_000})
	}
	ti := newTestIngester(t, t.TempDir(), testConfig(), withOverrides(o))
	defer ti.stop(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for k := range tenants {
		require.NoError(t, ti.push(t, fmt.Sprint("t", k), exemplarPush("x", testExemplar{"t1", 1000, 1})))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d tenants, one exemplar each: heap grew %d MB", tenants, grew>>20)
	require.Less(t, grew, int64(tenants<<20), "one exemplar per tenant should not cost megabytes")
}

// Audit (race/deadlock hunt): pushes with exemplars, limit changes
// (Resize), idle-series removal, checkpoints and exemplar queries at once,
// then a crash and replay. Run with -race.
func TestAuditExemplarsUnderConcurrency(t *testing.T) {
	dir := t.TempDir()
	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalExemplarsPerUser: 16})
	cfg := testConfig()
	cfg.SeriesIdleTimeout = time.Millisecond
	ti := newTestIngester(t, dir, cfg, withOverrides(o))
	var stop atomic.Bool
	var wg sync.WaitGroup
	var ts atomic.Int64
	ts.Store(1000)
	run := func(f func(k int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; !stop.Load(); k++ {
				f(k)
			}
		}()
	}
	for g := range 2 {
		run(func(k int) {
			now := ts.Add(1000)
			name := fmt.Sprintf("s%d_%d", g, k%5)
			if err := ti.push(t, "a", exemplarPush(name, testExemplar{fmt.Sprint(now), now, float64(k)})); err != nil {
				t.Error(err)
			}
		})
	}
	run(func(k int) {
		o.set("a", limits.Limits{MaxGlobalExemplarsPerUser: []int{16, 3, 0, 40}[k%4]})
		time.Sleep(time.Millisecond)
	})
	run(func(int) {
		if err := ti.checkpoint(); err != nil {
			t.Error(err)
		}
	})
	run(func(int) { ti.exemplars(t, "a", 0, 1<<62) })
	run(func(int) {
		if h := ti.head("a", false); h != nil {
			ti.forgetIdle(h, time.Now().Add(time.Hour), &keptChunks{})
		}
		time.Sleep(time.Millisecond)
	})
	done := make(chan struct{})
	go func() { time.Sleep(3 * time.Second); stop.Store(true); wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("deadlock:\n%s", buf[:runtime.Stack(buf, true)])
	}
	o.set("a", limits.Limits{MaxGlobalExemplarsPerUser: 16})
	want := ti.exemplars(t, "a", 0, 1<<62)
	ti.crash(t)
	ti = newTestIngester(t, dir, cfg, withOverrides(o))
	defer ti.stop(t)
	t.Logf("%d series with exemplars before the crash", len(want))
}
