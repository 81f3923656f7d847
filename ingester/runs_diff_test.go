package ingester

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// replicaSet are real ingesters queried all at once, as replicas.
type replicaSet []*testIngester

func (c replicaSet) ForQuery() (ring.ReplicationSet, error) {
	var rs ring.ReplicationSet
	for k := range c {
		rs.Instances = append(rs.Instances, &ringpb.Instance{Id: fmt.Sprint("ingester-", k), Addr: fmt.Sprint(k)})
	}
	return rs, nil
}
func (c replicaSet) ForDeletion() ([]*ringpb.Instance, error) {
	rs, err := c.ForQuery()
	return rs.Instances, err
}
func (c replicaSet) Client(addr string) (ingesterpb.IngesterClient, error) {
	var k int
	_, err := fmt.Sscan(addr, &k)
	return c[k].client, err
}

// querierOver is the querier's HTTP API over the real ingesters tis, as
// replicas of every series, with the tenant limits lim.
func querierOver(t testing.TB, lim limits.Limits, tis ...*testIngester) http.Handler {
	t.Helper()
	cfg := querier.Config{Timeout: 10 * time.Second, MaxConcurrent: 4, MaxSamples: 1e7, LookbackDelta: 5 * time.Minute,
		IngesterTimeout: 10 * time.Second, MinimizeIngesterRequests: false, HedgeDelay: time.Minute}
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	c := replicaSet(tis)
	q := querier.NewQueryable(cfg, c, c, fixedLimits{lim}, reg, logger)
	api := querier.NewAPI(cfg, querier.NewEngine(cfg, reg, logger), q, querier.BuildInfo{}, nil, "", reg, logger)
	mux := http.NewServeMux()
	mux.Handle(querier.PathPrefix+"/", tenant.Middleware(true, nil, api))
	return mux
}

// apiAnswers asks h the queries that see partition edges, chunk edges
// and the late and deleted samples.
func apiAnswers(t *testing.T, h http.Handler) []string {
	t.Helper()
	var out []string
	for _, at := range []int{5, 10, 370, 999, 1000, 1003, 2000, 7199, 7200, 7201, 9000} {
		for _, q := range []string{"up", "count_over_time(up[10s])", "sum_over_time(up[37s])", "timestamp(up)"} {
			code, body := apiGet(t, h, "/query", url.Values{"query": {q}, "time": {fmt.Sprint(at)}})
			require.Equal(t, http.StatusOK, code, body)
			out = append(out, q+"@"+fmt.Sprint(at)+" "+body)
		}
	}
	for _, r := range [][2]int{{0, 10799}, {990, 1010}, {7150, 7250}} {
		code, body := apiGet(t, h, "/query_range", url.Values{"query": {"sum_over_time(up[3s])"}, "start": {fmt.Sprint(r[0])}, "end": {fmt.Sprint(r[1])}, "step": {"1"}})
		require.Equal(t, http.StatusOK, code, body)
		out = append(out, fmt.Sprint(r)+" "+body)
		code, body = apiGet(t, h, "/series", url.Values{"match[]": {"up"}, "start": {fmt.Sprint(r[0])}, "end": {fmt.Sprint(r[1])}})
		require.Equal(t, http.StatusOK, code, body)
		out = append(out, "series "+fmt.Sprint(r)+" "+body)
	}
	return out
}

func requireSameAnswers(t *testing.T, step string, want, got []string) {
	t.Helper()
	require.Equal(t, len(want), len(got))
	for k := range want {
		require.Equal(t, want[k], got[k], "%s: answer %d", step, k)
	}
}

// A compacted ingester answers every query as one that never compacted,
// alone and as a replica beside it, through late samples written into the
// compacted partition (in memory, then flushed under and beside the
// runs' keys), deletions partially covering runs, and compaction again.
func TestCompactedIngesterAnswersAsOneThatNeverCompacted(t *testing.T) {
	o := newTestOverrides()
	o.set("t", limits.Limits{OutOfOrderTimeWindow: 24 * time.Hour})
	cfg := testConfig()
	ref := newTestIngester(t, t.TempDir(), cfg, withOverrides(o))
	defer ref.stop(t)
	cfg.CompactAfter = time.Millisecond
	cmp := newTestIngester(t, t.TempDir(), cfg, withOverrides(o))
	defer cmp.stop(t)
	both := func(f func(ti *testIngester)) { f(ref); f(cmp) }
	late := func(k int) bool { return k < 7200 && (k%37 == 0 || (k >= 1000 && k < 1004)) }
	var pushes [][]byte
	for k := 0; k < 3*3600; k++ {
		if !late(k) {
			pushes = append(pushes, onePush("up", int64(k)*1000, float64(k)))
		}
	}
	both(func(ti *testIngester) {
		for len(pushes) > 0 {
			n := min(len(pushes), 500)
			require.NoError(t, ti.push(t, "t", pushes[:n]...))
			pushes = pushes[n:]
		}
	})
	// push consumed pushes for ref only: rebuild for cmp.
	for k := 0; k < 3*3600; k++ {
		if !late(k) {
			pushes = append(pushes, onePush("up", int64(k)*1000, float64(k)))
		}
	}
	for len(pushes) > 0 {
		n := min(len(pushes), 500)
		require.NoError(t, cmp.push(t, "t", pushes[:n]...))
		pushes = pushes[n:]
	}
	both(func(ti *testIngester) { ti.flush(true) })
	cmp.compact()
	hRef, hCmp, hBoth := querierOver(t, limits.Limits{}, ref), querierOver(t, limits.Limits{}, cmp), querierOver(t, limits.Limits{}, ref, cmp)
	check := func(step string) {
		want := apiAnswers(t, hRef)
		requireSameAnswers(t, step+" (compacted alone)", want, apiAnswers(t, hCmp))
		requireSameAnswers(t, step+" (replicas)", want, apiAnswers(t, hBoth))
		require.Equal(t, ref.samples(t, "t"), cmp.samples(t, "t"), step)
		encs, _ := cmp.queryEncodings(t, "t", true)
		require.Positive(t, encs[128], "%s: the compacted ingester sends runs", step)
	}
	check("compacted")
	var latePushes [][]byte
	for k := 0; k < 7200; k++ {
		if late(k) {
			latePushes = append(latePushes, onePush("up", int64(k)*1000, float64(k)))
		}
	}
	both(func(ti *testIngester) { require.NoError(t, ti.push(t, "t", latePushes...)) })
	check("late samples in memory")
	both(func(ti *testIngester) { ti.flush(true) })
	check("late samples flushed")
	now := time.Now().UnixMilli()
	m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	both(func(ti *testIngester) {
		require.NoError(t, ti.deleteSeries(t, "t", 995_000, 1_002_000, now, m))
		require.NoError(t, ti.deleteSeries(t, "t", 7_100_000, 7_250_000, now, m))
	})
	check("deleted")
	cmp.compact()
	check("compacted again")
}
