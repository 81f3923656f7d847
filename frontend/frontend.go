package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/internal/promtime"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/querier/resultcodec"
	"github.com/orrery/orrery/querier/shard"
	"github.com/orrery/orrery/queryplan"
	"github.com/orrery/orrery/tenant"
)

// outerMaxSamples bounds the samples the outer evaluation holds at once,
// the querier's default: the partial results were already bounded by the
// queriers that computed them.
const outerMaxSamples = 50_000_000

// Frontend serves the Prometheus HTTP API under querier.PathPrefix by
// sending each query, split, sharded or whole, through a RoundTripper to
// the queriers. Safe for concurrent use.
type Frontend struct {
	cfg    Config
	down   http.RoundTripper
	limits Limits
	logger *slog.Logger
	cache  Cache // nil when results caching is off
	gens   *generations
	outer  *queryplan.Outer
	parser parser.Parser
	now    func() time.Time

	parts, shardedQueries, shardRequests, downstream prometheus.Counter
	rejected                                         *prometheus.CounterVec
	cacheRequests, cacheHits                         prometheus.Counter
}

// New returns a frontend sending to down: each request carries the
// incoming request's context and its tenants in X-Scope-OrgID.
func New(cfg Config, down http.RoundTripper, limits Limits, reg prometheus.Registerer, logger *slog.Logger) (*Frontend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Frontend{
		cfg: cfg, down: down, limits: limits, logger: logger,
		outer:  queryplan.NewOuter(outerMaxSamples),
		parser: parser.NewParser(parser.Options{}),
		now:    time.Now,
	}
	f.gens = &generations{down: down, now: func() time.Time { return f.now() }}
	if cfg.CacheResults {
		if addrs := cfg.ResultsCache.MemcachedAddresses; len(addrs) > 0 {
			c, err := NewMemcachedCache(addrs, cfg.ResultsCache.MemcachedTimeout, cfg.ResultsCache.MemcachedMaxItemSize, reg, logger)
			if err != nil {
				return nil, fmt.Errorf("frontend: results cache: %w", err)
			}
			f.cache = c
		} else {
			f.cache = NewMemoryCache(cfg.ResultsCache.MaxSizeBytes)
		}
	}
	counter := func(name, help string) prometheus.Counter {
		return promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	f.parts = counter("orrery_frontend_split_parts_total", "Parts range queries were split into.")
	f.shardedQueries = counter("orrery_frontend_sharded_queries_total", "Query evaluations (a whole instant query or one part of a range query) run sharded.")
	f.shardRequests = counter("orrery_frontend_shard_requests_total", "Partial queries sent for one shard of an aggregation.")
	f.downstream = counter("orrery_frontend_downstream_requests_total", "Requests sent to the queriers.")
	f.cacheRequests = counter("orrery_frontend_results_cache_requests_total", "Range query parts looked up in the results cache.")
	f.cacheHits = counter("orrery_frontend_results_cache_hits_total", "Range query parts answered entirely from the results cache.")
	f.rejected = promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "orrery_frontend_queries_rejected_total",
		Help: "Queries the frontend refused at the edge by a per-tenant limit, per tenant (a|b for a cross-tenant query) and reason, as orrery_querier_queries_rejected_total counts the queriers'."}, []string{"tenant", "reason"})
	return f, nil
}

// SetCache replaces the results cache (nil turns it off); for tests and
// for callers that share one cache between frontends. Not safe while
// serving.
func (f *Frontend) SetCache(c Cache) { f.cache = c }

// ServeHTTP answers query and query_range itself, splitting, sharding and
// caching, and forwards every other call unchanged.
func (f *Frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ids, err := tenant.IDsFromContext(r.Context())
	if err != nil {
		writeError(w, http.StatusUnauthorized, "bad_data", err.Error())
		return
	}
	switch path := strings.TrimPrefix(r.URL.Path, querier.PathPrefix); path {
	case "/query_range", "/query":
		began := time.Now()
		st := &queryStats{}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		if path == "/query_range" {
			f.serveRange(rec, r, ids, st)
		} else {
			f.serveInstant(rec, r, ids, st)
		}
		f.logQuery(r, ids, rec.code, time.Since(began), st)
	case querier.DeleteSeriesPath:
		// Only the admin route (ServeDeleteSeries) may forward a
		// deletion: queriers serve the frontend's requests without
		// credentials.
		http.NotFound(w, r)
	default:
		req := r.Clone(r.Context())
		req.RequestURI = ""
		setHeaders(req.Header, ids)
		f.forward(w, req)
	}
}

// query is one client query being answered.
type query struct {
	f       *Frontend
	ids     []string
	text    string
	step    int64 // ms; 0 for an instant query
	timeout string
	header  http.Header
	// sem bounds the query's downstream requests in flight.
	sem chan struct{}
	// sharded: the query has a shardable aggregation.
	sharded bool
	// cacheKey is the results cache key of a part starting at start; nil
	// when the query's parts are not cached.
	cacheKey func(start int64) string
	cacheTTL time.Duration
	// freshness keeps results newer than now minus it out of the cache.
	freshness time.Duration
	stats     *queryStats
}

// queryStats is what answering one client query took, for the query log.
type queryStats struct {
	parts, downstream, cacheLookups, cacheHits atomic.Int64
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// logQuery writes the frontend's query log line; each part's querier logs
// what it fetched from the ingesters.
func (f *Frontend) logQuery(r *http.Request, ids []string, code int, took time.Duration, st *queryStats) {
	attrs := []any{
		"tenant", tenant.JoinIDs(ids), "path", r.URL.Path, "query", r.Form.Get("query"), "status", code, "duration", took,
		"parts", st.parts.Load(), "querier_requests", st.downstream.Load(),
		"cache_lookups", st.cacheLookups.Load(), "cache_hits", st.cacheHits.Load(),
	}
	for _, p := range []string{"time", "start", "end", "step"} {
		if v := r.Form.Get(p); v != "" {
			attrs = append(attrs, p, v)
		}
	}
	f.logger.Info("query", attrs...)
}

func (f *Frontend) newQuery(r *http.Request, ids []string, text string, step int64, st *queryStats) *query {
	return &query{f: f, ids: ids, text: text, step: step, timeout: r.Form.Get("timeout"), header: r.Header,
		sem: make(chan struct{}, f.cfg.MaxParallelism), stats: st}
}

// knownParams are the parameters the frontend understands; a query with
// any other (stats, limit, lookback_delta, …) is forwarded whole, so the
// querier honours it exactly.
var knownParams = map[string]map[string]bool{
	"/query_range": {"query": true, "start": true, "end": true, "step": true, "timeout": true},
	"/query":       {"query": true, "time": true, "timeout": true},
}

func onlyKnown(path string, form url.Values) bool {
	for k := range form {
		if !knownParams[path][k] {
			return false
		}
	}
	return true
}

func (f *Frontend) serveRange(w http.ResponseWriter, r *http.Request, ids []string, qs *queryStats) {
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("error parsing form values: %v", err))
		return
	}
	start, end, step, err := parseRangeParams(r.Form)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if err := f.checkLength(ids, start, end); err != nil {
		f.rejected.WithLabelValues(tenant.JoinIDs(ids), "max-query-length").Inc()
		writeError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	text := r.Form.Get("query")
	expr, err := f.parser.ParseExpr(text)
	if err != nil || !onlyKnown("/query_range", r.Form) || !wholeMillis(start, end, step) ||
		(expr.Type() != parser.ValueTypeVector && expr.Type() != parser.ValueTypeScalar) {
		// The querier answers what the frontend does not take apart,
		// with its exact errors.
		f.forwardForm(w, r, ids, "/query_range", qs)
		return
	}
	s, e, st := start.UnixMilli(), end.UnixMilli(), step.Milliseconds()
	td := inspectTime(expr)
	interval := f.cfg.SplitInterval.Milliseconds()
	if td.startEnd {
		// @ start() and @ end() mean the whole query's range.
		interval = 0
	}
	parts := splitRange(s, e, st, interval)
	q := f.newQuery(r, ids, text, st, qs)
	q.sharded = f.cfg.QueryShards > 1 && queryplan.New(text, expr) != nil // expr is not used again
	if ttl := f.cacheTTL(ids); f.cache != nil && interval > 0 && !td.at && !td.negativeOffset && ttl > 0 && !noStore(r) {
		// Keyed by the tenants' deletion generations: after a deletion
		// no answer cached before it is read. Without them the query is
		// answered uncached.
		if gens, err := f.gens.key(r.Context(), ids); err != nil {
			f.logger.Warn("results cache skipped: deletion generation unknown", "tenant", tenant.JoinIDs(ids), "err", err)
		} else {
			q.cacheTTL, q.freshness = ttl, f.cacheFreshness(ids)
			q.cacheKey = func(start int64) string {
				return fmt.Sprintf("fe2:%s:%s:%d:%d:%d:%d:%s", tenant.JoinIDs(ids), gens, interval, floorDiv(start, interval), st, floorMod(start, st), text)
			}
		}
	}
	if q.cacheKey == nil && len(parts) > 1 && e-s < interval {
		// Parts are cut on day boundaries so that they can be cached; a
		// query shorter than a day that is not cached gains nothing
		// from being cut where it crosses midnight, and would pay each
		// part's fixed cost (a select on every ingester) twice.
		parts = []span{{parts[0].start, parts[len(parts)-1].end}}
	}
	if len(parts) == 1 && !q.sharded && q.cacheKey == nil {
		f.forwardForm(w, r, ids, "/query_range", qs)
		return
	}
	f.parts.Add(float64(len(parts)))
	qs.parts.Add(int64(len(parts)))
	results := make([]*result, len(parts))
	err = runAll(r.Context(), len(parts), f.cfg.MaxParallelism, func(ctx context.Context, k int) error {
		res, err := q.fetchPart(ctx, parts[k])
		results[k] = res
		return err
	})
	if errors.Is(err, errHistograms) {
		f.forwardForm(w, r, ids, "/query_range", qs)
		return
	}
	if err != nil {
		f.writeErr(w, err)
		return
	}
	out := &result{typ: parser.ValueTypeMatrix}
	ms := make([]promql.Matrix, 0, len(results))
	for _, res := range results {
		ms = append(ms, res.matrix)
		out.warnings = addUnique(out.warnings, res.warnings...)
		out.infos = addUnique(out.infos, res.infos...)
	}
	out.matrix = mergeMatrices(ms...)
	f.writeResult(w, out)
}

func (f *Frontend) serveInstant(w http.ResponseWriter, r *http.Request, ids []string, qs *queryStats) {
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("error parsing form values: %v", err))
		return
	}
	text := r.Form.Get("query")
	expr, err := f.parser.ParseExpr(text)
	if err != nil || f.cfg.QueryShards <= 1 || !onlyKnown("/query", r.Form) || queryplan.New(text, expr) == nil {
		f.forwardForm(w, r, ids, "/query", qs)
		return
	}
	ts := f.now()
	if v := r.Form.Get("time"); v != "" {
		if ts, err = promtime.Parse(v); err != nil {
			f.forwardForm(w, r, ids, "/query", qs)
			return
		}
	}
	if !wholeMillis(ts, ts, time.Millisecond) {
		f.forwardForm(w, r, ids, "/query", qs)
		return
	}
	q := f.newQuery(r, ids, text, 0, qs)
	q.sharded = true
	res, err := q.evalSharded(r.Context(), ts.UnixMilli(), ts.UnixMilli())
	if errors.Is(err, errHistograms) {
		f.forwardForm(w, r, ids, "/query", qs)
		return
	}
	if err != nil {
		f.writeErr(w, err)
		return
	}
	f.writeResult(w, res)
}

// fetchPart answers one part of a range query, from the results cache as
// far as it has the part's steps and from the queriers for the rest; it
// stores what it fetched, up to the freshness cutoff, unless the answer
// carried annotations.
func (q *query) fetchPart(ctx context.Context, sp span) (*result, error) {
	f := q.f
	if q.cacheKey == nil {
		return q.eval(ctx, sp)
	}
	// The last step old enough to cache.
	cutoff := f.now().Add(-q.freshness).UnixMilli()
	lastCacheable := sp.end
	if cutoff < sp.end {
		lastCacheable = sp.start + floorDiv(cutoff-sp.start, q.step)*q.step
	}
	if lastCacheable < sp.start {
		return q.eval(ctx, sp)
	}
	key := q.cacheKey(sp.start)
	f.cacheRequests.Inc()
	q.stats.cacheLookups.Add(1)
	var exts []extent
	if b, ok := f.cache.Fetch(ctx, []string{key})[key]; ok {
		var err error
		if exts, err = decodeExtents(b); err != nil {
			f.logger.Warn("results cache: ignoring a corrupt entry", "err", err)
			exts = nil
		}
	}
	missing := gaps(exts, sp.start, sp.end, q.step)
	if len(missing) == 0 {
		f.cacheHits.Inc()
		q.stats.cacheHits.Add(1)
	}
	fetched := make([]*result, len(missing))
	err := runAll(ctx, len(missing), f.cfg.MaxParallelism, func(ctx context.Context, k int) error {
		res, err := q.eval(ctx, missing[k])
		fetched[k] = res
		return err
	})
	if err != nil {
		return nil, err
	}
	out := &result{typ: parser.ValueTypeMatrix}
	ms := make([]promql.Matrix, 0, len(exts)+len(fetched))
	for _, e := range exts {
		ms = append(ms, clip(e.matrix, sp.start, sp.end))
	}
	// Store only when something cacheable was fetched, and nothing
	// fetched was annotated.
	store := false
	annotated := false
	for k, res := range fetched {
		ms = append(ms, res.matrix)
		out.warnings = addUnique(out.warnings, res.warnings...)
		out.infos = addUnique(out.infos, res.infos...)
		annotated = annotated || res.annotated()
		if g := missing[k]; g.start <= lastCacheable {
			end := min(g.end, lastCacheable)
			exts = append(exts, extent{start: g.start, end: end, matrix: clip(res.matrix, g.start, end)})
			store = true
		}
	}
	store = store && !annotated
	out.matrix = mergeMatrices(ms...)
	if store {
		f.cache.Store(ctx, map[string][]byte{key: encodeExtents(mergeExtents(exts, q.step))}, q.cacheTTL)
	}
	return out, nil
}

// eval evaluates the query over the steps of sp, sharded or whole.
func (q *query) eval(ctx context.Context, sp span) (*result, error) {
	if q.sharded {
		return q.evalSharded(ctx, sp.start, sp.end)
	}
	res, err := q.call(ctx, q.text, sp.start, sp.end, 0, 0)
	if err != nil {
		return nil, err
	}
	if res.typ != parser.ValueTypeMatrix {
		return nil, fmt.Errorf("frontend: a range query part answered %s", res.typ)
	}
	return res, nil
}

// evalSharded evaluates the query over start..end (an instant query when
// its step is 0): its partial queries downstream, then the rewritten query
// over their results.
func (q *query) evalSharded(ctx context.Context, start, end int64) (*result, error) {
	f := q.f
	expr, err := f.parser.ParseExpr(q.text)
	if err != nil {
		return nil, fmt.Errorf("frontend: parse: %w", err)
	}
	pl := queryplan.New(q.text, expr)
	if pl == nil {
		return nil, errors.New("frontend: a sharded query without a plan")
	}
	f.shardedQueries.Inc()
	type call struct{ leaf, shard, of int }
	var calls []call
	for k, l := range pl.Leaves {
		if !l.Sharded {
			calls = append(calls, call{k, 0, 0})
			continue
		}
		for i := 1; i <= f.cfg.QueryShards; i++ {
			calls = append(calls, call{k, i, f.cfg.QueryShards})
		}
	}
	results := make([]*result, len(calls))
	err = runAll(ctx, len(calls), f.cfg.MaxParallelism, func(ctx context.Context, k int) error {
		c := calls[k]
		if c.of > 0 {
			f.shardRequests.Inc()
		}
		res, err := q.call(ctx, pl.Leaves[c.leaf].Text, start, end, c.shard, c.of)
		if err == nil && res.typ != parser.ValueTypeMatrix && res.typ != parser.ValueTypeVector {
			err = fmt.Errorf("frontend: a partial query answered %s", res.typ)
		}
		results[k] = res
		return err
	})
	if err != nil {
		return nil, err
	}
	embeds := make([]promql.Matrix, len(pl.Leaves))
	var warnings, infos []string
	for k, c := range calls {
		l, res := pl.Leaves[c.leaf], results[k]
		m := res.matrix
		if l.Sharded {
			m = queryplan.WithShard(m, c.shard)
		}
		embeds[c.leaf] = append(embeds[c.leaf], m...)
		warnings = addUnique(warnings, res.warnings...)
		infos = addUnique(infos, res.infos...)
	}
	for _, m := range embeds {
		queryplan.SortByLabels(m)
	}
	out, err := evalOuter(ctx, f.outer, q.text, pl.Expr, embeds, start, end, q.step)
	if err != nil {
		return nil, err
	}
	out.warnings = addUnique(warnings, out.warnings...)
	out.infos = addUnique(infos, out.infos...)
	return out, nil
}

// call sends one query (text over start..end, an instant query at start
// when the step is 0) downstream, as shard i of n when n > 0.
func (q *query) call(ctx context.Context, text string, start, end int64, i, n int) (*result, error) {
	form := url.Values{"query": {text}}
	path := "/query"
	if q.step == 0 {
		form.Set("time", formatTime(start))
	} else {
		path = "/query_range"
		form.Set("start", formatTime(start))
		form.Set("end", formatTime(end))
		form.Set("step", strconv.FormatInt(q.step, 10)+"ms")
	}
	if q.timeout != "" {
		form.Set("timeout", q.timeout)
	}
	req, err := newFormRequest(ctx, path, form, q.header)
	if err != nil {
		return nil, err
	}
	setHeaders(req.Header, q.ids)
	// The binary answer is read far faster than the API's JSON; a querier
	// that declines it (native histograms) answers JSON.
	req.Header.Set("Accept", resultcodec.MIME.String())
	if n > 0 {
		req.Header.Set(shard.Header, shard.Value(i, n))
	}
	select {
	case q.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-q.sem }()
	// Select picks at random among ready cases: a slot freed by a
	// cancelled request must not start another.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q.f.downstream.Inc()
	q.stats.downstream.Add(1)
	resp, err := q.f.down.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("frontend: downstream: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("frontend: read downstream answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &downstreamError{code: resp.StatusCode, body: body}
	}
	var r *result
	if resp.Header.Get("Content-Type") == resultcodec.MIME.String() {
		r, err = decodeBinary(body)
	} else {
		r, err = decodeResult(body)
	}
	if err == nil && r.mentionsHistograms() {
		return nil, errHistograms
	}
	return r, err
}

// runAll runs f(ctx, k) for k in [0, n) on at most workers goroutines
// and returns the first error, cancelling the others' context when one
// fails. Workers bound the goroutines of a query of thousands of parts;
// the query's semaphore bounds its requests in flight.
func runAll(ctx context.Context, n, workers int, f func(ctx context.Context, k int) error) error {
	if n == 1 {
		return f(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  atomic.Int64
	)
	for range min(n, workers) {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < n && ctx.Err() == nil; k = int(next.Add(1) - 1) {
				if err := f(ctx, k); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		// Cancelled from outside before every k ran.
		first = ctx.Err()
	}
	return first
}

// newFormRequest is a POST of form to path under the API prefix, with the
// client's headers but those describing its own body and encoding.
func newFormRequest(ctx context.Context, path string, form url.Values, header http.Header) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, querier.PathPrefix+path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("frontend: build downstream request: %w", err)
	}
	for k, vs := range header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Content-Type", "Accept-Encoding", "Transfer-Encoding":
			continue
		case "Authorization":
			// Checked at the edge; a credential has no business in the
			// queue, nor in a querier's memory.
			continue
		}
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, nil
}

// setHeaders names the request's tenants and removes any shard header a
// client sent: only the frontend chooses shards.
func setHeaders(h http.Header, ids []string) {
	h.Set(tenant.HeaderName, tenant.JoinIDs(ids))
	h.Del(shard.Header)
}

// forwardForm sends the parsed request on whole, its form as the body.
func (f *Frontend) forwardForm(w http.ResponseWriter, r *http.Request, ids []string, path string, qs *queryStats) {
	qs.downstream.Add(1)
	req, err := newFormRequest(r.Context(), path, r.Form, r.Header)
	if err != nil {
		f.writeErr(w, err)
		return
	}
	setHeaders(req.Header, ids)
	f.forward(w, req)
}

// forward sends req downstream and copies the answer to w untouched.
func (f *Frontend) forward(w http.ResponseWriter, req *http.Request) {
	f.downstream.Inc()
	resp, err := f.down.RoundTrip(req)
	if err != nil {
		f.writeErr(w, fmt.Errorf("frontend: downstream: %w", err))
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (f *Frontend) writeResult(w http.ResponseWriter, res *result) {
	if res.typ == parser.ValueTypeMatrix && res.matrix == nil {
		res.matrix = promql.Matrix{}
	}
	b, err := res.encode()
	if err != nil {
		f.writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// writeErr answers a downstream error as the querier wrote it, and any
// other by its apierr kind.
func (f *Frontend) writeErr(w http.ResponseWriter, err error) {
	var de *downstreamError
	if errors.As(err, &de) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(de.code)
		_, _ = w.Write(de.body)
		return
	}
	code := apierr.HTTPStatus(err)
	if code == http.StatusInternalServerError {
		f.logger.Error("frontend query failed", "err", err)
	}
	writeError(w, code, apierr.PrometheusType(err), err.Error())
}

func writeError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(errorBody(typ, msg))
}

func errorBody(typ, msg string) []byte {
	b, _ := json.Marshal(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", typ, msg})
	return b
}

// noStore reports whether the client asked for an answer computed afresh
// (Cache-Control: no-store, as Mimir's frontend honours it): the results
// cache is then neither read nor written for this request.
func noStore(r *http.Request) bool {
	for _, v := range r.Header.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-store") {
				return true
			}
		}
	}
	return false
}

// cacheFreshness is how recent a result the tenants' queries may not cache:
// -frontend.max-cache-freshness, or a tenant's out_of_order_time_window if
// longer, since samples that old may still arrive and change the answer
// (as Mimir's frontend does).
func (f *Frontend) cacheFreshness(ids []string) time.Duration {
	d := f.cfg.MaxCacheFreshness
	for _, id := range ids {
		d = max(d, f.limits.For(id).OutOfOrderTimeWindow)
	}
	return d
}

// cacheTTL is how long the tenants' results may be cached: the shortest
// of their results_cache_ttl, 0 (no caching) if any has 0. A tenant with
// max_query_lookback is not cached either: its answers for a past range
// shrink as now moves on, and a cached one would not.
func (f *Frontend) cacheTTL(ids []string) time.Duration {
	var ttl time.Duration
	for k, id := range ids {
		lim := f.limits.For(id)
		l := lim.ResultsCacheTTL
		if l <= 0 || lim.MaxQueryLookback > 0 {
			return 0
		}
		if k == 0 || l < ttl {
			ttl = l
		}
	}
	return ttl
}
