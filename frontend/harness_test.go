package frontend

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/teststorage"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/internal/apicompare"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/loadgen"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/querier/resultcodec"
	"github.com/orrery/orrery/querier/shard"
	"github.com/orrery/orrery/tenant"
)

// t0 is where the test data starts: 2026-01-01T00:00:00Z.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	dataSteps    = 3 * 60 * 4 // 3h of 15s samples
	dataInterval = 15 * time.Second
)

// downstream is a real Prometheus API (upstream's web/api/v1 handler and
// engine) over upstream test storage filled with loadgen's series. It
// honours the shard header as the querier does, by answering only the
// series of the shard. It counts and records what it serves.
type downstream struct {
	handler  http.Handler
	requests atomic.Int64
	shards   atomic.Int64
	// onRequest, if set, sees each request before it is served.
	onRequest func(*http.Request)
	// generation is every tenant's deletion generation, as the queriers
	// answer it; its requests are counted in genAsks only, not requests.
	generation atomic.Int64
	genAsks    atomic.Int64
}

func newDownstream(t testing.TB, instances int) *downstream {
	t.Helper()
	st := teststorage.New(t)
	gen := loadgen.New(42, instances)
	app := st.Appender(context.Background())
	for k, ls := range gen.Series() {
		for step := range dataSteps {
			ts := t0.Add(time.Duration(step) * dataInterval).UnixMilli()
			_, err := app.Append(0, ls, ts, gen.Value(k, step))
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	return downstreamOver(st)
}

// downstreamOver is the API over st.
func downstreamOver(st *teststorage.TestStorage) *downstream {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine := querier.NewEngine(querier.Config{LookbackDelta: 5 * time.Minute, MaxSamples: 50_000_000}, nil, logger)
	reg := prometheus.NewRegistry()
	api := v1.NewAPI(engine, shardedQueryable{st}, nil, nil,
		nil, nil, nil,
		func() config.Config { return config.DefaultConfig },
		nil,
		v1.GlobalURLOptions{Scheme: "http"},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		nil, "", false, false, 0,
		logger, nil,
		5e7, 10, 1048576,
		false, nil, nil, &v1.PrometheusVersion{},
		nil, nil,
		reg, reg, nil,
		false, nil, false, false, false,
		5*time.Minute, false, false, nil, nil,
		v1.OpenAPIOptions{}, parser.NewParser(parser.Options{}), false, 2*time.Minute,
	)
	r := route.New().WithPrefix(querier.PathPrefix)
	api.InstallCodec(resultcodec.Codec{})
	api.Register(r)
	return &downstream{handler: r}
}

// RoundTrip serves req in process, as the queue would through a querier.
func (d *downstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == querier.PathPrefix+querier.DeletionGenerationPath {
		d.genAsks.Add(1)
		rec := httptest.NewRecorder()
		fmt.Fprintf(rec, `{"status":"success","data":{"generation":"%d"}}`, d.generation.Load())
		return rec.Result(), nil
	}
	d.requests.Add(1)
	if d.onRequest != nil {
		d.onRequest(req)
	}
	ctx := req.Context()
	if v := req.Header.Get(shard.Header); v != "" {
		i, n, err := shard.Parse(v)
		if err != nil {
			return nil, err
		}
		d.shards.Add(1)
		ctx = shard.WithShard(ctx, i, n)
	}
	rec := httptest.NewRecorder()
	d.handler.ServeHTTP(rec, req.WithContext(ctx))
	return rec.Result(), nil
}

// shardedQueryable answers a select of a shard with that shard's series.
type shardedQueryable struct{ *teststorage.TestStorage }

func (s shardedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := s.TestStorage.Querier(mint, maxt)
	return shardedQuerier{q}, err
}

type shardedQuerier struct{ storage.Querier }

func (q shardedQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	set := q.Querier.Select(ctx, sorted, hints, ms...)
	if i, n, ok := shard.FromContext(ctx); ok {
		return &shardSet{SeriesSet: set, i: i, n: n}
	}
	return set
}

type shardSet struct {
	storage.SeriesSet
	i, n int
}

func (s *shardSet) Next() bool {
	for s.SeriesSet.Next() {
		if shard.Owns(s.At().Labels(), s.i, s.n) {
			return true
		}
	}
	return false
}

func (s *shardSet) Warnings() annotations.Annotations { return s.SeriesSet.Warnings() }

// staticLimits gives every tenant the same limits.
type staticLimits struct{ l limits.Limits }

func (s *staticLimits) For(string) *limits.Limits { return &s.l }

func defaultLimits() *staticLimits {
	return &staticLimits{limits.Limits{ResultsCacheTTL: 7 * 24 * time.Hour}}
}

// testConfig is the flags' defaults.
func testConfig() Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	return cfg
}

func newTestFrontend(t testing.TB, cfg Config, down http.RoundTripper, l Limits, now time.Time) *Frontend {
	t.Helper()
	f, err := New(cfg, down, l, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	f.now = func() time.Time { return now }
	return f
}

// do serves one API call through h for tenant ids, as a form POST.
func do(t testing.TB, h http.Handler, ids string, path string, params url.Values) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, querier.PathPrefix+path, strings.NewReader(params.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	parsed, err := tenant.ParseIDs(ids)
	require.NoError(t, err)
	req = req.WithContext(tenant.WithIDs(req.Context(), parsed))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// roundTripHandler serves requests straight from a RoundTripper: the
// direct, unsplit and unsharded answer.
type roundTripHandler struct{ rt http.RoundTripper }

func (h roundTripHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ids, _ := tenant.IDsFromContext(r.Context())
	r.Header.Set(tenant.HeaderName, tenant.JoinIDs(ids))
	resp, err := h.rt.RoundTrip(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

type apiResponse = apicompare.Response

// diffResponses returns "" when two API answers carry the same result, as
// the end-to-end comparison judges them (integration/compare_test.go):
// same status and error type, same series, same timestamps, values within
// 1e-9 relative (NaN equals NaN); annotations compared as sets.
func diffResponses(wantBody, gotBody []byte) string {
	var want, got apiResponse
	if err := json.Unmarshal(wantBody, &want); err != nil {
		return fmt.Sprintf("want: %v: %s", err, wantBody)
	}
	if err := json.Unmarshal(gotBody, &got); err != nil {
		return fmt.Sprintf("got: %v: %s", err, gotBody)
	}
	if want.Status != got.Status || want.ErrorType != got.ErrorType || want.Error != got.Error {
		return fmt.Sprintf("status %s/%s (%s) vs %s/%s (%s)", want.Status, want.ErrorType, want.Error, got.Status, got.ErrorType, got.Error)
	}
	if want.Status != "success" {
		return ""
	}
	slices.Sort(want.Warnings)
	slices.Sort(got.Warnings)
	slices.Sort(want.Infos)
	slices.Sort(got.Infos)
	if !slices.Equal(want.Warnings, got.Warnings) || !slices.Equal(want.Infos, got.Infos) {
		return fmt.Sprintf("annotations %q %q vs %q %q", want.Warnings, want.Infos, got.Warnings, got.Infos)
	}
	return apicompare.DiffData(want.Data, got.Data, roundingSeen.record)
}

// roundingSeen collects the relative differences between values that are
// not bit-identical but within tolerance, to report how far float
// rounding moves sharded answers.
var roundingSeen rounding

type rounding struct {
	mu    sync.Mutex
	count int
	max   float64
}

func (r *rounding) record(rel float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	r.max = max(r.max, rel)
}

func (r *rounding) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%d values differ from the direct answer by float rounding, at most %.3g relative", r.count, r.max)
}

// corpus reads the end-to-end PromQL corpus.
func corpus(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile("../integration/testdata/queries.txt")
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}
