package frontend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/querier/shard"
	"github.com/orrery/orrery/tenant"
)

func apiFixture(t *testing.T) (*Frontend, *downstream, roundTripHandler) {
	down := newDownstream(t, 1)
	cfg := testConfig()
	cfg.SplitInterval = time.Hour
	cfg.QueryShards = 3
	return newTestFrontend(t, cfg, down, defaultLimits(), t0.Add(10*time.Hour)), down, roundTripHandler{down}
}

// TestCraftedInputs: bad parameters get the answer Prometheus gives, code
// and body.
func TestCraftedInputs(t *testing.T) {
	f, _, direct := apiFixture(t)
	cases := []struct {
		path   string
		params url.Values
	}{
		{"/query_range", url.Values{"query": {"up"}, "start": {"1767225600"}, "end": {"1767229200"}, "step": {"abc"}}},
		{"/query_range", url.Values{"query": {"up"}, "start": {"1767225600"}, "end": {"1767229200"}, "step": {"0"}}},
		{"/query_range", url.Values{"query": {"up"}, "start": {"1767225600"}, "end": {"1767229200"}, "step": {"-15"}}},
		{"/query_range", url.Values{"query": {"up"}, "start": {"1767225600"}, "end": {"1767229200"}, "step": {"NaN"}}},
		{"/query_range", url.Values{"query": {"up"}, "start": {"1767225600"}, "end": {"1767229200"}, "step": {"1e300"}}},
		{"/query_range", url.Values{"query": {"up"}, "start": {"1767225600"}, "end": {"1767225599"}, "step": {"15"}}},
		{"/query_range", url.Values{"query": {"up"}, "start": {"yesterday"}, "end": {"1767229200"}, "step": {"15"}}},
		{"/query_range", url.Values{"query": {"up"}, "start": {"1767225600"}, "step": {"15"}}},
		// 11,001 points, and the largest range of 11,000.
		{"/query_range", url.Values{"query": {"sum(up)"}, "start": {"1767225600"}, "end": {"1767236601"}, "step": {"1"}}},
		{"/query_range", url.Values{"query": {"sum(up)"}, "start": {"1767225600"}, "end": {"1767236600"}, "step": {"1"}}},
		// A huge range: too many points at a day's step; at two weeks' it
		// splits into 1,461 parts.
		{"/query_range", url.Values{"query": {"sum(up)"}, "start": {"0"}, "end": {"1767236600"}, "step": {"1d"}}},
		{"/query_range", url.Values{"query": {"sum(up)"}, "start": {"0"}, "end": {"1767236600"}, "step": {"2w"}}},
		{"/query_range", url.Values{"query": {"sum(up"}, "start": {"1767225600"}, "end": {"1767229200"}, "step": {"15"}}},
		{"/query_range", url.Values{"query": {"up[5m]"}, "start": {"1767225600"}, "end": {"1767229200"}, "step": {"15"}}},
		{"/query_range", url.Values{"query": {`"text"`}, "start": {"1767225600"}, "end": {"1767229200"}, "step": {"15"}}},
		{"/query_range", url.Values{"query": {"sum(up)"}, "start": {"1767225600"}, "end": {"1767229200"}, "step": {"15"}, "timeout": {"bad"}}},
		{"/query_range", url.Values{"query": {"sum(up)"}, "start": {"1767225600.0004"}, "end": {"1767229200"}, "step": {"15.0001"}}},
		{"/query", url.Values{"query": {"sum(up)"}, "time": {"never"}}},
		{"/query", url.Values{"query": {"sum(up"}, "time": {"1767229200"}}},
		{"/query", url.Values{"query": {`"text"`}, "time": {"1767229200"}}},
		{"/query", url.Values{"query": {"sum(up)"}, "time": {"1767229200"}, "timeout": {"-1s"}}},
		{"/query", url.Values{"query": {"sum(up)"}, "time": {"1767229200"}, "stats": {"all"}}},
	}
	for _, c := range cases {
		wantCode, want := do(t, direct, "a", c.path, c.params)
		gotCode, got := do(t, f, "a", c.path, c.params)
		require.Equal(t, wantCode, gotCode, "%s %v: %s vs %s", c.path, c.params, want, got)
		require.Empty(t, diffResponses(want, got), "%s %v", c.path, c.params)
	}
}

// TestMaxQueryLength: a range over the tenant's max_query_length is
// refused at the edge, with the querier's message, before any part runs.
func TestMaxQueryLength(t *testing.T) {
	f, down, _ := apiFixture(t)
	f.limits = &staticLimits{limits.Limits{MaxQueryLength: time.Hour, ResultsCacheTTL: time.Hour}}
	code, body := do(t, f, "a", "/query_range", url.Values{"query": {"sum(up)"}, "start": {"1767225600"}, "end": {"1767232801"}, "step": {"15"}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, string(body), `"errorType":"bad_data"`)
	require.Contains(t, string(body), "the query time range exceeds the limit (query length: 2h0m1s, limit: 1h0m0s) (err-orrery-max-query-length")
	require.Zero(t, down.requests.Load())
	code, _ = do(t, f, "a", "/query_range", url.Values{"query": {"sum(up)"}, "start": {"1767225600"}, "end": {"1767229200"}, "step": {"15"}})
	require.Equal(t, http.StatusOK, code)
}

// TestPassThrough: the other endpoints, and queries the frontend does not
// take apart, reach the querier unchanged but for the tenant header, and
// their answer comes back byte for byte.
func TestPassThrough(t *testing.T) {
	f, down, direct := apiFixture(t)
	var seen sync.Map
	down.onRequest = func(r *http.Request) { seen.Store(r.URL.Path, r.Header.Get(tenant.HeaderName)) }
	for _, c := range []struct {
		path   string
		params url.Values
	}{
		{"/labels", nil},
		{"/label/job/values", nil},
		{"/series", url.Values{"match[]": {"up", "node_load1"}}},
		{"/format_query", url.Values{"query": {"sum(up)by(job)"}}},
		{"/status/buildinfo", nil},
		{"/query", url.Values{"query": {"up"}, "time": {"1767229200"}}},
		{"/query_range", url.Values{"query": {"up"}, "start": {"1767229200"}, "end": {"1767229500"}, "step": {"15"}, "stats": {"all"}}},
	} {
		_, want := do(t, direct, "team-a|team-b", c.path, c.params)
		_, got := do(t, f, "team-a|team-b", c.path, c.params)
		if c.params.Has("stats") {
			// Timings differ from run to run.
			require.Contains(t, string(got), `"stats":`)
			require.Empty(t, diffResponses(want, got))
		} else {
			require.Equal(t, string(want), string(got), c.path)
		}
		header, _ := seen.Load(querier.PathPrefix + c.path)
		require.Equal(t, "team-a|team-b", header, c.path)
	}
	// GET works as POST does.
	req := httptest.NewRequest(http.MethodGet, querier.PathPrefix+"/query_range?"+url.Values{"query": {"sum(up)"}, "start": {"1767225600"}, "end": {"1767236600"}, "step": {"60"}}.Encode(), nil)
	req = req.WithContext(tenant.WithID(req.Context(), "a"))
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, req)
	_, want := do(t, direct, "a", "/query_range", url.Values{"query": {"sum(up)"}, "start": {"1767225600"}, "end": {"1767236600"}, "step": {"60"}})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, diffResponses(want, rec.Body.Bytes()))
}

// TestClientShardHeaderIgnored: a client cannot choose a shard: the header
// is dropped, and the answer is the whole query's.
func TestClientShardHeaderIgnored(t *testing.T) {
	f, down, direct := apiFixture(t)
	var sharded atomic.Int64
	down.onRequest = func(r *http.Request) {
		if r.Header.Get(shard.Header) == "2_of_2" {
			sharded.Add(1)
		}
	}
	for _, params := range []url.Values{
		{"query": {"up"}, "time": {"1767229200"}},
		{"query": {"count(up)"}, "time": {"1767229200"}},
	} {
		req := httptest.NewRequest(http.MethodPost, querier.PathPrefix+"/query", strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(shard.Header, "2_of_2")
		req = req.WithContext(tenant.WithID(req.Context(), "a"))
		rec := httptest.NewRecorder()
		f.ServeHTTP(rec, req)
		_, want := do(t, direct, "a", "/query", params)
		require.Empty(t, diffResponses(want, rec.Body.Bytes()))
	}
	require.Zero(t, sharded.Load())
}

// TestNoTenant: a request without a tenant in its context is refused.
func TestNoTenant(t *testing.T) {
	f, down, _ := apiFixture(t)
	req := httptest.NewRequest(http.MethodGet, querier.PathPrefix+"/labels", nil)
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, req)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Zero(t, down.requests.Load())
}

// TestConcurrentQueries: many clients at once over one frontend and cache
// (run with -race) each get the direct answer.
func TestConcurrentQueries(t *testing.T) {
	f, _, direct := apiFixture(t)
	queries := []string{`sum by (job) (rate(node_cpu_seconds_total[5m]))`, `avg without (cpu) (node_cpu_seconds_total)`,
		`topk(3, node_load1)`, `node_load1 - scalar(avg(node_load1))`, `count(up)`}
	type call struct {
		params url.Values
		want   []byte
	}
	var calls []call
	for _, q := range queries {
		for _, r := range [][2]time.Duration{{10 * time.Minute, 170 * time.Minute}, {40 * time.Minute, 100 * time.Minute}} {
			params := rangeParams(q, r[0], r[1], 30*time.Second)
			_, want := do(t, direct, "a", "/query_range", params)
			calls = append(calls, call{params, want})
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(calls))
	for w := range 8 {
		wg.Go(func() {
			for k := range calls {
				c := calls[(k+w)%len(calls)]
				_, got := do(t, f, "a", "/query_range", c.params)
				if d := diffResponses(c.want, got); d != "" {
					errs <- fmt.Errorf("%v: %s", c.params, d)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Positive(t, testutil.ToFloat64(f.cacheHits))
}

// TestCancellation: when the client goes away, every downstream request
// of its query is cancelled and the handler returns.
func TestCancellation(t *testing.T) {
	f, down, _ := apiFixture(t)
	started := make(chan struct{}, 100)
	var cancelled atomic.Int64
	down.onRequest = func(r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
		if errors.Is(r.Context().Err(), context.Canceled) {
			cancelled.Add(1)
		}
	}
	ctx, cancel := context.WithCancel(tenant.WithID(context.Background(), "a"))
	params := rangeParams(`sum(up)`, 10*time.Minute, 170*time.Minute, 30*time.Second)
	req := httptest.NewRequest(http.MethodPost, querier.PathPrefix+"/query_range", strings.NewReader(params.Encode())).WithContext(ctx)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.ServeHTTP(httptest.NewRecorder(), req)
	}()
	<-started
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return after the client went away")
	}
	require.Equal(t, down.requests.Load(), cancelled.Load())
	require.LessOrEqual(t, down.requests.Load(), int64(f.cfg.MaxParallelism), "requests beyond the parallelism bound must not start")
}

// TestQueryLog: the frontend logs each query with what answering it took.
func TestQueryLog(t *testing.T) {
	var buf strings.Builder
	f, _, _ := apiFixture(t)
	f.logger = slog.New(slog.NewTextHandler(&buf, nil))
	code, _ := do(t, f, "a", "/query_range", rangeParams(`sum(node_load1)`, 30*time.Minute, 150*time.Minute, time.Minute))
	require.Equal(t, http.StatusOK, code)
	line := buf.String()
	for _, want := range []string{`msg=query`, `tenant=a`, `query=sum(node_load1)`, `status=200`, `parts=3`, `cache_lookups=`, `querier_requests=`} {
		require.Contains(t, line, want)
	}
}
