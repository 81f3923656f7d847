package ingester

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/orrery/orrery/ingester/client"
	"github.com/orrery/orrery/internal/apicompare"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/querier/evaluator"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// withPushdown has the ingester serve the Pushdown service, as
// cmd/orrery's servePushdown wires it.
func withPushdown() testOption { return func(d *testDeps) { d.pushdown = true } }

func servePushdown(t testing.TB, srv *grpc.Server, ing *Ingester, addr string, lim querier.Limits) {
	t.Helper()
	pool := client.NewPool()
	t.Cleanup(func() { _ = pool.Close() })
	pool.ServeLocally(addr, ing)
	cfg := pushdownQuerierConfig(false)
	logger := slog.New(slog.DiscardHandler)
	local := querier.NewQueryable(cfg, querier.InstanceRing{Instance: &ringpb.Instance{Id: addr, Addr: addr}}, pool, lim, nil, logger)
	c, err := pool.Client(addr)
	require.NoError(t, err)
	ingesterpb.RegisterPushdownServer(srv, evaluator.New(querier.NewEngine(cfg, nil, logger), local, c, cfg.MaxConcurrent, cfg.Timeout))
}

func pushdownQuerierConfig(pushdown bool) querier.Config {
	return querier.Config{Timeout: 20 * time.Second, MaxConcurrent: 4, MaxSamples: 1e7, LookbackDelta: 5 * time.Minute,
		IngesterTimeout: 20 * time.Second, HedgeDelay: time.Minute, Pushdown: pushdown}
}

// replicaRing reads the ingesters tis, with maxErrors of them allowed to
// fail, as the ring would for that replication.
type replicaRing struct {
	tis       []*testIngester
	maxErrors int
}

func (r replicaRing) ForQuery() (ring.ReplicationSet, error) {
	rs, _ := replicaSet(r.tis).ForQuery()
	rs.MaxErrors = r.maxErrors
	return rs, nil
}

func (r replicaRing) ForDeletion() ([]*ringpb.Instance, error) {
	return replicaSet(r.tis).ForDeletion()
}

func (r replicaRing) Client(addr string) (ingesterpb.IngesterClient, error) {
	return replicaSet(r.tis).Client(addr)
}

func (r replicaRing) PushdownClient(addr string) (ingesterpb.PushdownClient, error) {
	var k int
	if _, err := fmt.Sscan(addr, &k); err != nil {
		return nil, err
	}
	return r.tis[k].pool.PushdownClient(r.tis[k].addr)
}

// pushdownQuerier is the querier's API over the ingesters of r, with
// pushdown on or off, and the registry of its metrics.
func pushdownQuerier(t testing.TB, r replicaRing, lim querier.Limits, pushdown bool) (http.Handler, *prometheus.Registry) {
	t.Helper()
	cfg := pushdownQuerierConfig(pushdown)
	cfg.MinimizeIngesterRequests = r.maxErrors > 0
	return pushdownQuerierWith(cfg, r, lim)
}

// pushdownRing is what a querier needs of a test's ingesters.
type pushdownRing interface {
	querier.Ring
	querier.Clients
	querier.PushdownClients
}

// pushdownQuerierWith is the querier's API configured as cfg over the
// ingesters of r, and the registry of its metrics.
func pushdownQuerierWith(cfg querier.Config, r pushdownRing, lim querier.Limits) (http.Handler, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	q := querier.NewQueryable(cfg, r, r, lim, reg, logger)
	engine := querier.NewPushdownEngine(cfg, querier.NewEngine(cfg, reg, logger), q, r, reg)
	api := querier.NewAPI(cfg, engine, q, querier.BuildInfo{}, nil, "", reg, logger)
	mux := http.NewServeMux()
	mux.Handle(querier.PathPrefix+"/", tenant.Middleware(true, nil, api))
	return mux, reg
}

const pushdownStep = 15 // seconds between samples

// pushdownSeries are the series of the pushdown tests: counters, gauges
// and classic histogram buckets.
func pushdownSeries() []labels.Labels {
	var out []labels.Labels
	for _, job := range []string{"api", "db", "web"} {
		for i := range 4 {
			for _, code := range []string{"200", "500"} {
				out = append(out, labels.FromStrings("__name__", "req_total", "job", job, "instance", fmt.Sprint("i", i), "code", code))
			}
			out = append(out, labels.FromStrings("__name__", "load", "job", job, "instance", fmt.Sprint("i", i)))
		}
	}
	for _, h := range []string{"/a", "/b"} {
		for _, le := range []string{"0.1", "0.5", "1", "+Inf"} {
			out = append(out, labels.FromStrings("__name__", "lat_bucket", "handler", h, "le", le))
		}
	}
	return out
}

// pushdownValue is series k's value at second ts: counters grow (with a
// reset at 3000 s for one of them), gauges wander.
func pushdownValue(ls labels.Labels, k int, ts int) float64 {
	switch ls.Get("__name__") {
	case "load":
		return math.Sin(float64(ts+k*100)/700) + 1
	case "lat_bucket":
		le := map[string]float64{"0.1": 1, "0.5": 3, "1": 4, "+Inf": 5}[ls.Get("le")]
		return le * float64(ts/pushdownStep) * float64(1+k%3)
	}
	if k == 5 && ts >= 3000 {
		return float64(ts-3000) * 0.5
	}
	return float64(ts) * (0.1 + 0.0137*float64(k))
}

// writePushdownData writes the series for seconds [0, until) to the
// ingesters for which keep says yes.
func writePushdownData(t *testing.T, tis []*testIngester, until int, keep func(replica int, ls labels.Labels, ts int) bool) {
	t.Helper()
	all := pushdownSeries()
	for from := 0; from < until; from += 600 {
		for r, ti := range tis {
			var bufs [][]byte
			for k, ls := range all {
				var pts [][2]float64
				for ts := from; ts < min(from+600, until); ts += pushdownStep {
					if keep(r, ls, ts) {
						pts = append(pts, [2]float64{float64(ts), pushdownValue(ls, k, ts)})
					}
				}
				if len(pts) == 0 {
					continue
				}
				buf := ingesterpb.AppendSeriesHeader(nil, ingesterpb.AppendLabels(nil, ls), len(pts))
				for _, p := range pts {
					buf = ingesterpb.AppendSample(buf, int64(p[0])*1000, p[1])
				}
				bufs = append(bufs, buf)
			}
			if len(bufs) > 0 {
				require.NoError(t, ti.push(t, "t", bufs...))
			}
		}
	}
}

// pushdownReplicas starts n ingesters that serve pushdown, each holding
// every series for seconds [0, until).
func pushdownReplicas(t *testing.T, n, until int) replicaRing {
	t.Helper()
	var tis []*testIngester
	for range n {
		ti := newTestIngester(t, t.TempDir(), testConfig(), withPushdown())
		t.Cleanup(func() { ti.stop(t) })
		tis = append(tis, ti)
	}
	writePushdownData(t, tis, until, func(int, labels.Labels, int) bool { return true })
	return replicaRing{tis: tis}
}

// pushdownQueries are aggregations pushdown takes and queries around them.
var pushdownQueries = []string{
	`sum(rate(req_total[5m]))`,
	`sum by (job) (rate(req_total[5m]))`,
	`sum without (instance) (increase(req_total[10m]))`,
	`count by (code) (req_total)`,
	`max(load)`,
	`min without (instance) (load)`,
	`group by (job) (req_total)`,
	`topk(2, sum by (instance) (rate(req_total[5m])))`,
	`histogram_quantile(0.9, sum by (le) (rate(lat_bucket[5m])))`,
	`sum(rate(req_total[5m])) / sum(rate(req_total[10m]))`,
	`count(load > 0.5)`,
	`sum(req_total offset 10m)`,
	`sum(req_total @ end())`,
	`sum(rate(req_total{job="api"}[5m])) + on() group_left count(load)`,
	`avg(load)`,
	`sum(nonexistent)`,
}

// pushdownAnswers asks h every pushdown query as range queries over the
// written window and as instant queries at a few times.
func pushdownAnswers(t *testing.T, h http.Handler, until int) []string {
	t.Helper()
	var out []string
	for _, q := range pushdownQueries {
		code, body := apiGet(t, h, "/query_range", url.Values{"query": {q}, "start": {"0"}, "end": {fmt.Sprint(until)}, "step": {"60"}})
		require.Equal(t, http.StatusOK, code, "%s: %s", q, body)
		out = append(out, q+" range\n"+body)
		for _, at := range []int{300, 1830, until - 1} {
			code, body := apiGet(t, h, "/query", url.Values{"query": {q}, "time": {fmt.Sprint(at)}})
			require.Equal(t, http.StatusOK, code, "%s: %s", q, body)
			out = append(out, fmt.Sprint(q, " @", at, "\n", body))
		}
	}
	return out
}

// requireSameValues compares API answers as the PromQL corpus does
// (apicompare): floats to a relative 1e-9, since a sum of partial sums
// rounds differently from one sum, and vectors in any order.
func requireSameValues(t *testing.T, want, got []string) {
	t.Helper()
	require.Equal(t, len(want), len(got))
	type answer struct {
		Status   string          `json:"status"`
		Data     json.RawMessage `json:"data"`
		Warnings []string        `json:"warnings"`
		Infos    []string        `json:"infos"`
	}
	for k := range want {
		name := want[k][:strings.LastIndex(want[k], "\n")+1]
		var w, g answer
		require.NoError(t, json.Unmarshal([]byte(want[k][len(name):]), &w))
		require.NoError(t, json.Unmarshal([]byte(got[k][len(name):]), &g))
		require.Equal(t, w.Status, g.Status, name)
		require.ElementsMatch(t, w.Warnings, g.Warnings, name)
		require.ElementsMatch(t, w.Infos, g.Infos, name)
		require.Empty(t, apicompare.DiffData(w.Data, g.Data, nil), "%s\nwant %s\ngot  %s", name, want[k][len(name):], got[k][len(name):])
	}
}

func pushdownCounter(reg *prometheus.Registry, name, label string) float64 {
	mfs, _ := reg.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// Pushed down, every query answers as the querier merging every replica's
// chunks does, when the replicas differ: one missed twenty minutes of
// everything (it was down), one never got a series, one alone holds
// another, and a series' samples differ between replicas in value.
func TestPushdownAnswersAsTheMergeOfReplicas(t *testing.T) {
	o := newTestOverrides()
	var tis []*testIngester
	for range 3 {
		ti := newTestIngester(t, t.TempDir(), testConfig(), withOverrides(o), withPushdown())
		t.Cleanup(func() { ti.stop(t) })
		tis = append(tis, ti)
	}
	const until = 2 * 3600
	writePushdownData(t, tis, until, func(r int, ls labels.Labels, ts int) bool {
		switch {
		case r == 2 && ts >= 1800 && ts < 3000:
			return false // down
		case r == 1 && ls.Get("instance") == "i3" && ls.Get("__name__") == "req_total":
			return false // never got these
		case r != 0 && ls.Get("instance") == "i2" && ls.Get("job") == "db" && ls.Get("__name__") == "load":
			return false // only replica 0 has it
		}
		return true
	})
	r := replicaRing{tis: tis}
	merged, _ := pushdownQuerier(t, r, fixedLimits{}, false)
	pushed, reg := pushdownQuerier(t, r, fixedLimits{}, true)
	want := pushdownAnswers(t, merged, until)
	got := pushdownAnswers(t, pushed, until)
	requireSameValues(t, want, got)
	require.Positive(t, pushdownCounter(reg, "orrery_querier_pushdown_queries_total", "pushed"))
	require.Positive(t, pushdownCounter(reg, "orrery_querier_pushdown_series_total", "ingester"), "series whose replicas agree are evaluated by one")
	require.Positive(t, pushdownCounter(reg, "orrery_querier_pushdown_series_total", "querier"), "series whose replicas differ are merged here")
}

// An ingester killed in the middle of the queried window, then back with
// its WAL but without what was written while it was down: with it down,
// and with it up again, each read of two of the three (in rotation, as
// at RF=3) answers pushed down as the merge of every replica does.
func TestPushdownWithAnIngesterKilledMidWindow(t *testing.T) {
	o := newTestOverrides()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	tis := make([]*testIngester, 3)
	for k := range tis {
		tis[k] = newTestIngester(t, dirs[k], testConfig(), withOverrides(o), withPushdown())
	}
	t.Cleanup(func() {
		for _, ti := range tis {
			ti.stop(t)
		}
	})
	const until = 2 * 3600
	upTo := func(limit int) func(int, labels.Labels, int) bool {
		return func(r int, _ labels.Labels, ts int) bool { return r != 2 || ts < limit }
	}
	writePushdownData(t, tis, 3600, upTo(until))
	tis[2].crash(t)
	writePushdownData(t, tis[:2], 5400, func(_ int, _ labels.Labels, ts int) bool { return ts >= 3600 })

	r := replicaRing{tis: tis, maxErrors: 1}
	check := func(step string) {
		merged, _ := pushdownQuerier(t, replicaRing{tis: r.tis[:2]}, fixedLimits{}, false)
		want := pushdownAnswers(t, merged, 5400)
		pushed, reg := pushdownQuerier(t, r, fixedLimits{}, true)
		for range 3 { // the rotation leaves each ingester out in turn
			requireSameValues(t, want, pushdownAnswers(t, pushed, 5400))
		}
		require.Positive(t, pushdownCounter(reg, "orrery_querier_pushdown_queries_total", "pushed"), step)
	}
	// Down: its calls fail, a spare answers in its place.
	tis[2].srv.Stop()
	check("down")
	// Back with what its WAL held: it misses [3600, 5400).
	tis[2] = newTestIngester(t, dirs[2], testConfig(), withOverrides(o), withPushdown())
	check("back")
}

// Ingesters that predate pushdown answer its calls Unimplemented: the
// querier then evaluates the query itself, with the same answers.
func TestPushdownFallsBackForIngestersWithoutIt(t *testing.T) {
	var tis []*testIngester
	for range 2 {
		ti := newTestIngester(t, t.TempDir(), testConfig())
		t.Cleanup(func() { ti.stop(t) })
		tis = append(tis, ti)
	}
	writePushdownData(t, tis, 1800, func(int, labels.Labels, int) bool { return true })
	r := replicaRing{tis: tis}
	merged, _ := pushdownQuerier(t, r, fixedLimits{}, false)
	pushed, reg := pushdownQuerier(t, r, fixedLimits{}, true)
	requireSameValues(t, pushdownAnswers(t, merged, 1800), pushdownAnswers(t, pushed, 1800))
	require.Zero(t, pushdownCounter(reg, "orrery_querier_pushdown_queries_total", "pushed"))
	require.Positive(t, pushdownCounter(reg, "orrery_querier_pushdown_queries_total", "digests"))
}

// A tenant's query limits stop a pushed-down query as they stop the
// same query read whole, with the same error.
func TestPushdownKeepsQueryLimits(t *testing.T) {
	r := pushdownReplicas(t, 2, 1800)
	for _, lim := range []limits.Limits{{MaxFetchedSeriesPerQuery: 5}, {MaxFetchedSamplesPerQuery: 1000}} {
		merged, _ := pushdownQuerier(t, r, fixedLimits{lim}, false)
		pushed, _ := pushdownQuerier(t, r, fixedLimits{lim}, true)
		for _, q := range []string{`sum(rate(req_total[5m]))`, `count(load)`} {
			params := url.Values{"query": {q}, "start": {"0"}, "end": {"1800"}, "step": {"60"}}
			want, got := answersWithStatus(t, merged, pushed, params, http.StatusUnprocessableEntity)
			require.JSONEq(t, want, got)
		}
	}
}

// stats=all answers what a pushed-down query read: the samples its
// ingesters' evaluations read, as Prometheus counts them.
func TestPushdownStats(t *testing.T) {
	r := pushdownReplicas(t, 2, 1800)
	tis := r.tis
	pushed, reg := pushdownQuerier(t, replicaRing{tis: tis}, fixedLimits{}, true)
	code, body := apiGet(t, pushed, "/query_range", url.Values{"query": {`sum(rate(req_total[5m]))`}, "start": {"0"}, "end": {"1800"}, "step": {"60"}, "stats": {"all"}})
	require.Equal(t, http.StatusOK, code, body)
	require.Positive(t, pushdownCounter(reg, "orrery_querier_pushdown_queries_total", "pushed"))
	var resp struct {
		Data struct {
			Stats struct {
				Timings struct {
					ExecTotalTime float64 `json:"execTotalTime"`
				} `json:"timings"`
				Samples struct {
					TotalQueryableSamples int64 `json:"totalQueryableSamples"`
				} `json:"samples"`
			} `json:"stats"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.Positive(t, resp.Data.Stats.Samples.TotalQueryableSamples, body)
	require.Positive(t, resp.Data.Stats.Timings.ExecTotalTime, body)
}

// The Pushdown service refuses what would count series twice or run
// unbounded, with InvalidArgument naming the problem, and keeps serving.
func TestPushdownRefusesCraftedCalls(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig(), withPushdown())
	t.Cleanup(func() { ti.stop(t) })
	writePushdownData(t, []*testIngester{ti}, 600, func(int, labels.Labels, int) bool { return true })
	c, err := ti.pool.PushdownClient(ti.addr)
	require.NoError(t, err)
	ctx := ctxFor("t")
	ok := &ingesterpb.EvaluateRequest{Query: `sum(load)`, StartMs: 0, EndMs: 600_000, StepMs: 60_000, SeriesHashes: []uint64{1, 2}}
	for name, mutate := range map[string]func(*ingesterpb.EvaluateRequest){
		"no series":     func(r *ingesterpb.EvaluateRequest) { r.SeriesHashes = nil },
		"unsorted":      func(r *ingesterpb.EvaluateRequest) { r.SeriesHashes = []uint64{2, 1} },
		"no query":      func(r *ingesterpb.EvaluateRequest) { r.Query = "" },
		"bad query":     func(r *ingesterpb.EvaluateRequest) { r.Query = "sum(" },
		"steps":         func(r *ingesterpb.EvaluateRequest) { r.StepMs, r.EndMs = 1, 1<<40 },
		"negative step": func(r *ingesterpb.EvaluateRequest) { r.StepMs = -1 },
		"end first":     func(r *ingesterpb.EvaluateRequest) { r.EndMs = -1 },
		"string":        func(r *ingesterpb.EvaluateRequest) { r.Query, r.StepMs = `"text"`, 0 },
	} {
		req := proto.Clone(ok).(*ingesterpb.EvaluateRequest)
		mutate(req)
		_, err := c.Evaluate(ctx, req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", name, err)
	}
	resp, err := c.Evaluate(ctx, ok)
	require.NoError(t, err)
	require.Empty(t, resp.Series, "hashes of no series evaluate nothing")

	_, err = c.SeriesDigests(ctx, &ingesterpb.DigestRequest{StartMs: 0, EndMs: 600_000, Matchers: ingesterpb.FromMatchers([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "load")}), Limit: 3})
	require.Equal(t, codes.OutOfRange, status.Code(err), "%v", err)
	stream, err := ti.client.QueryStream(ctx, &ingesterpb.QueryRequest{StartMs: 0, EndMs: 600_000, SeriesHashes: []uint64{2, 1}})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	_, err = c.SeriesDigests(context.Background(), &ingesterpb.DigestRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
}

// With -querier.pushdown-min-range, a select over a shorter range is
// evaluated in the querier (outcome "short"), a longer one pushed down;
// both answer as the merge does.
func TestPushdownMinRange(t *testing.T) {
	r := pushdownReplicas(t, 2, 2*3600)
	merged, _ := pushdownQuerier(t, r, fixedLimits{}, false)
	cfg := pushdownQuerierConfig(true)
	cfg.PushdownMinRange = time.Hour
	pushed, reg := pushdownQuerierWith(cfg, r, fixedLimits{})
	ask := func(h http.Handler, start int) []string {
		code, body := apiGet(t, h, "/query_range", url.Values{"query": {`sum(rate(req_total[5m]))`}, "start": {fmt.Sprint(start)}, "end": {"7199"}, "step": {"60"}})
		require.Equal(t, http.StatusOK, code, body)
		return []string{"range\n" + body}
	}
	requireSameValues(t, ask(merged, 7199-1800), ask(pushed, 7199-1800))
	require.Equal(t, 1.0, pushdownCounter(reg, "orrery_querier_pushdown_queries_total", "short"))
	require.Zero(t, pushdownCounter(reg, "orrery_querier_pushdown_queries_total", "pushed"))
	requireSameValues(t, ask(merged, 0), ask(pushed, 0))
	require.Equal(t, 1.0, pushdownCounter(reg, "orrery_querier_pushdown_queries_total", "pushed"))
}
