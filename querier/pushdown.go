package querier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/querier/shard"
	"github.com/orrery/orrery/queryplan"
	"github.com/orrery/orrery/tenant"
)

// PushdownClients hands out the Pushdown service of an ingester by
// address.
type PushdownClients interface {
	PushdownClient(addr string) (ingesterpb.PushdownClient, error)
}

// ErrHistograms is the message of an evaluation whose result holds native
// histograms, which pushdown does not carry: the querier then evaluates
// the query itself.
const ErrHistograms = "evaluator: the result has native histograms"

// MaxDigestSeries bounds the series one pushed-down selector reads on one
// ingester: past it the query is evaluated here, streaming, instead.
const MaxDigestSeries = 1 << 18

// pushdownEngine is the querier's promql.QueryEngine: the upstream engine,
// with the shardable aggregations of a query (queryplan) evaluated next to
// the data when it reads two ingesters or more (docs/architecture.md,
// "Pushdown"). For each such aggregation it asks every ingester it reads
// for the digests of the series the aggregation's selector reads; each
// series whose replicas all hold the same chunks is evaluated by one of
// them, and the rest here over every replica's chunks, merged; the
// partial results are aggregated again. Anything it cannot push down it
// evaluates as the upstream engine does, whole.
type pushdownEngine struct {
	upstream *promql.Engine
	q        *Queryable
	clients  PushdownClients
	outer    *queryplan.Outer
	parser   parser.Parser
	lookback time.Duration
	minRange time.Duration

	queries *prometheus.CounterVec
	series  *prometheus.CounterVec
}

// NewPushdownEngine returns upstream with pushdown over q's ingesters,
// or upstream itself when cfg.Pushdown is off.
func NewPushdownEngine(cfg Config, upstream *promql.Engine, q *Queryable, clients PushdownClients, reg prometheus.Registerer) promql.QueryEngine {
	if !cfg.Pushdown {
		return upstream
	}
	return &pushdownEngine{
		upstream: upstream, q: q, clients: clients, outer: queryplan.NewOuter(cfg.MaxSamples),
		parser: parser.NewParser(parser.Options{}), lookback: cfg.LookbackDelta, minRange: cfg.PushdownMinRange,
		queries: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "orrery_querier_pushdown_queries_total",
			Help: "Queries with a shardable aggregation, by outcome: pushed down, or evaluated here whole and why."}, []string{"outcome"}),
		series: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "orrery_querier_pushdown_series_total",
			Help: "Series read by pushed-down aggregations: evaluated by one ingester (replicas agreed), or merged from every replica and evaluated here (they differed)."}, []string{"where"}),
	}
}

// NewInstantQuery implements promql.QueryEngine.
func (e *pushdownEngine) NewInstantQuery(ctx context.Context, qa storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	up, err := e.upstream.NewInstantQuery(ctx, qa, opts, qs, ts)
	if err != nil {
		return nil, err
	}
	return e.newQuery(up, qa, opts, qs, ts.UnixMilli(), ts.UnixMilli(), 0), nil
}

// NewRangeQuery implements promql.QueryEngine.
func (e *pushdownEngine) NewRangeQuery(ctx context.Context, qa storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	up, err := e.upstream.NewRangeQuery(ctx, qa, opts, qs, start, end, interval)
	if err != nil {
		return nil, err
	}
	return e.newQuery(up, qa, opts, qs, start.UnixMilli(), end.UnixMilli(), interval.Milliseconds()), nil
}

// newQuery returns up itself unless the query may be pushed down; up,
// which the upstream engine has checked, is then the fallback.
func (e *pushdownEngine) newQuery(up promql.Query, qa storage.Queryable, opts promql.QueryOpts, qs string, start, end, step int64) promql.Query {
	// Per-step stats are not asked of: the upstream engine here has them
	// off (NewEngine), so it ignores them too.
	if qa != storage.Queryable(e.q) {
		return up
	}
	expr, err := e.parser.ParseExpr(qs)
	if err != nil || queryplan.New(qs, expr) == nil {
		return up
	}
	lookback := e.lookback
	if opts != nil && opts.LookbackDelta() > 0 {
		lookback = opts.LookbackDelta()
	}
	return &pushdownQuery{e: e, up: up, qs: qs, start: start, end: end, step: step, lookback: lookback}
}

// pushdownQuery is a query that may be pushed down; up evaluates it whole.
type pushdownQuery struct {
	e                *pushdownEngine
	up               promql.Query
	qs               string
	start, end, step int64
	lookback         time.Duration

	mu       sync.Mutex
	fellBack bool
	cancel   context.CancelFunc
	stats    *stats.Statistics
}

// notPushed is why a query is evaluated whole after all; the outcome label.
type notPushed string

func (n notPushed) Error() string { return "querier: not pushed down: " + string(n) }

func (p *pushdownQuery) Exec(ctx context.Context) *promql.Result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.mu.Lock()
	p.cancel = cancel
	p.mu.Unlock()
	timers := stats.NewQueryTimers()
	total := timers.GetTimer(stats.ExecTotalTime).Start()
	// What the attempt fetched reaches the query log only if it answers:
	// a query evaluated whole after all fetches again.
	attemptCtx, fetched := withFetchStats(ctx)
	res, samples, err := p.e.pushdown(attemptCtx, p, p.e.q.newSharedScope())
	total.Stop()
	var why notPushed
	if errors.As(err, &why) {
		p.e.queries.WithLabelValues(string(why)).Inc()
		p.mu.Lock()
		p.fellBack = true
		p.mu.Unlock()
		return p.up.Exec(ctx)
	}
	if err != nil {
		return &promql.Result{Err: queryError(ctx, err)}
	}
	addFetchStats(ctx, fetched)
	p.e.queries.WithLabelValues("pushed").Inc()
	qs := stats.NewQuerySamples(false)
	qs.TotalSamples = samples
	p.mu.Lock()
	p.stats = &stats.Statistics{Timers: timers, Samples: qs}
	p.mu.Unlock()
	return res
}

// queryError is err as the upstream engine would report it: the query's
// own end as its timeout or cancellation.
func queryError(ctx context.Context, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return promql.ErrQueryTimeout("pushed down")
	case ctx.Err() != nil:
		return promql.ErrQueryCanceled("pushed down")
	}
	return err
}

func (p *pushdownQuery) Close()                      { p.up.Close() }
func (p *pushdownQuery) Statement() parser.Statement { return p.up.Statement() }
func (p *pushdownQuery) String() string              { return p.qs }

func (p *pushdownQuery) Stats() *stats.Statistics {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fellBack || p.stats == nil {
		return p.up.Stats()
	}
	return p.stats
}

func (p *pushdownQuery) Cancel() {
	p.mu.Lock()
	if p.cancel != nil {
		p.cancel()
	}
	p.mu.Unlock()
	p.up.Cancel()
}

// leafResult is one partial query's result.
type leafResult struct {
	matrix  promql.Matrix
	annos   annotations.Annotations
	samples int64
}

// pushdown evaluates the query's plan: sharded leaves next to the data,
// the others here, then the outer query over their results.
func (e *pushdownEngine) pushdown(ctx context.Context, p *pushdownQuery, shared *sharedScope) (*promql.Result, int64, error) {
	ids, err := tenant.IDsFromContext(ctx)
	if err != nil || len(ids) != 1 {
		return nil, 0, notPushed("tenants")
	}
	rs, err := e.q.ring.ForQuery()
	if err != nil || len(rs.Instances)-rs.MaxErrors < 2 {
		return nil, 0, notPushed("one-ingester")
	}
	expr, err := e.parser.ParseExpr(p.qs)
	if err != nil {
		return nil, 0, notPushed("parse")
	}
	pl := queryplan.New(p.qs, expr)
	if pl == nil {
		return nil, 0, notPushed("plan")
	}
	parts := make([]promql.Matrix, len(pl.Leaves))
	var (
		annos   annotations.Annotations
		samples int64
	)
	for k, l := range pl.Leaves {
		var (
			lr  leafResult
			err error
		)
		if l.Sharded {
			lr, err = e.pushLeaf(ctx, ids[0], p, shared, l.Text)
		} else {
			lr, err = e.evalHere(ctx, p, shared, l.Text, nil)
		}
		if err != nil {
			return nil, 0, err
		}
		if mentionsHistograms(lr) {
			// A mix of floats and histograms in one group is no answer as
			// a whole while its float-only shares answer numbers
			// (frontend's mentionsHistograms says more).
			return nil, 0, notPushed("histograms")
		}
		parts[k] = lr.matrix
		annos.Merge(lr.annos)
		samples += lr.samples
	}
	for _, m := range parts {
		queryplan.SortByLabels(m)
	}
	v, outer, err := e.outer.Eval(ctx, pl.Expr, parts, p.start, p.end, p.step)
	if err != nil {
		return nil, 0, err
	}
	annos.Merge(outer)
	return &promql.Result{Value: v, Warnings: annos}, samples, nil
}

func mentionsHistograms(lr leafResult) bool {
	for _, s := range lr.matrix {
		if len(s.Histograms) > 0 {
			return true
		}
	}
	for _, a := range lr.annos {
		if strings.Contains(a.Error(), "histogram") {
			return true
		}
	}
	return false
}

// evalHere evaluates text (a leaf of the query's plan) here with the
// upstream engine, over the series of hashes only when not nil, its
// selects counted against the query's limits with the rest of it.
func (e *pushdownEngine) evalHere(ctx context.Context, p *pushdownQuery, shared *sharedScope, text string, hashes []uint64) (leafResult, error) {
	if hashes != nil {
		ctx = WithSeriesHashes(ctx, hashes)
	}
	qry, err := e.newUpstream(ctx, shared, p, text)
	if err != nil {
		return leafResult{}, err
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return leafResult{}, res.Err
	}
	lr := leafResult{annos: res.Warnings}
	if st := qry.Stats(); st != nil && st.Samples != nil {
		lr.samples = st.Samples.TotalSamples
	}
	// Close returns the points to the engine's pool: copy them.
	switch v := res.Value.(type) {
	case promql.Matrix:
		lr.matrix = make(promql.Matrix, len(v))
		for k, s := range v {
			lr.matrix[k] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats), Histograms: slices.Clone(s.Histograms)}
		}
	case promql.Vector:
		lr.matrix = make(promql.Matrix, len(v))
		for k, s := range v {
			lr.matrix[k] = promql.Series{Metric: s.Metric}
			if s.H != nil {
				lr.matrix[k].Histograms = []promql.HPoint{{T: s.T, H: s.H}}
			} else {
				lr.matrix[k].Floats = []promql.FPoint{{T: s.T, F: s.F}}
			}
		}
	default:
		return leafResult{}, notPushed("leaf-type")
	}
	return lr, nil
}

func (e *pushdownEngine) newUpstream(ctx context.Context, qa storage.Queryable, p *pushdownQuery, text string) (promql.Query, error) {
	opts := promql.NewPrometheusQueryOpts(false, p.lookback, nil)
	if p.step == 0 {
		return e.upstream.NewInstantQuery(ctx, qa, opts, text, time.UnixMilli(p.start))
	}
	return e.upstream.NewRangeQuery(ctx, qa, opts, text, time.UnixMilli(p.start), time.UnixMilli(p.end), time.Duration(p.step)*time.Millisecond)
}

// selectOf returns the one select text makes, found by evaluating it over
// no data: its hints (the time range it reads) and matchers.
func (e *pushdownEngine) selectOf(ctx context.Context, p *pushdownQuery, text string) (*storage.SelectHints, []*labels.Matcher, error) {
	rec := &selectRecorder{}
	qry, err := e.newUpstream(ctx, rec, p, text)
	if err != nil {
		return nil, nil, err
	}
	defer qry.Close()
	if res := qry.Exec(ctx); res.Err != nil {
		return nil, nil, res.Err
	}
	if len(rec.selects) != 1 || rec.selects[0].hints == nil {
		return nil, nil, notPushed("selects")
	}
	return rec.selects[0].hints, rec.selects[0].ms, nil
}

// selectRecorder is a queryable of no data that records the selects made
// of it.
type selectRecorder struct {
	mu      sync.Mutex
	selects []recordedSelect
}

type recordedSelect struct {
	hints *storage.SelectHints
	ms    []*labels.Matcher
}

func (r *selectRecorder) Querier(int64, int64) (storage.Querier, error) { return r, nil }

func (r *selectRecorder) Select(_ context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	r.mu.Lock()
	defer r.mu.Unlock()
	var h *storage.SelectHints
	if hints != nil {
		c := *hints
		h = &c
	}
	r.selects = append(r.selects, recordedSelect{hints: h, ms: slices.Clone(ms)})
	return storage.EmptySeriesSet()
}

func (*selectRecorder) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (*selectRecorder) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (*selectRecorder) Close() error { return nil }

// digested is one ingester's digests.
type digested struct {
	inst *ringpb.Instance
	resp *ingesterpb.DigestResponse
}

// pushLeaf evaluates a shardable aggregation next to the data: digests
// from the ingesters a read needs, each series whose replicas agree
// evaluated by one of them, the others here.
func (e *pushdownEngine) pushLeaf(ctx context.Context, tenantID string, p *pushdownQuery, shared *sharedScope, text string) (leafResult, error) {
	hints, ms, err := e.selectOf(ctx, p, text)
	if err != nil {
		return leafResult{}, err
	}
	if i, n, ok := shard.FromContext(ctx); ok {
		ms = append(ms, shard.Matcher(i, n))
	}
	qr := shared.querier(hints.Start, hints.End)
	sc, err := qr.scopeOf(ctx)
	if err != nil {
		return leafResult{}, err
	}
	start, end, ok := sc.window(hints.Start, hints.End)
	if !ok {
		return e.evalHere(ctx, p, shared, text, nil)
	}
	if end-start < e.minRange.Milliseconds() {
		// A few minutes of samples evaluate here in less time than the
		// digests' and evaluations' round trips take.
		return leafResult{}, notPushed("short")
	}
	lim := qr.q.limitsOf(sc.ids)
	req := &ingesterpb.DigestRequest{StartMs: start, EndMs: end, Matchers: ingesterpb.FromMatchers(ms), Limit: MaxDigestSeries}
	if lim.maxSeries > 0 {
		req.Limit = min(lim.maxSeries+1, MaxDigestSeries)
	}
	o, err := openFanout(ctx, e.q, tenantID, func(ctx context.Context, _ ingesterpb.IngesterClient, inst *ringpb.Instance) (digested, error) {
		c, err := e.clients.PushdownClient(inst.Addr)
		if err != nil {
			return digested{}, err
		}
		resp, err := c.SeriesDigests(ctx, req)
		return digested{inst: inst, resp: resp}, err
	})
	if err != nil {
		if isLimitError(err) || ctx.Err() != nil {
			return leafResult{}, err
		}
		e.q.logger.Debug("pushdown: digests failed, evaluating here", "err", err)
		return leafResult{}, notPushed("digests")
	}
	o.stop()
	d, err := designate(o.vals)
	if err != nil {
		e.q.logger.Warn("pushdown: digests unusable, evaluating here", "err", err)
		return leafResult{}, notPushed("digests")
	}
	evaluated := d.series - len(d.merge)
	if err := sc.fetched.addPushed(evaluated, d.samples); err != nil {
		if errors.Is(err, errPushedOverLimit) {
			// Counted per aggregation, a series two of them read counts
			// twice: the query read whole gives the exact verdict.
			return leafResult{}, notPushed("limits")
		}
		return leafResult{}, fmt.Errorf("expanding series: %w", err)
	}
	recordPushed(ctx, evaluated, d.samples)
	e.series.WithLabelValues("ingester").Add(float64(evaluated))
	e.series.WithLabelValues("querier").Add(float64(len(d.merge)))

	results := make([]leafResult, len(o.vals)+1)
	errs := make([]error, len(o.vals)+1)
	// The first evaluation that fails ends the others: the query is then
	// evaluated here whole. The merge runs on ctx, its error the query's.
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for k, hashes := range d.evaluate {
		if len(hashes) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if results[k], errs[k] = e.evaluate(ectx, tenantID, o.vals[k].inst, p, text, hashes); errs[k] != nil {
				cancel()
			}
		}()
	}
	if len(d.merge) > 0 {
		if results[len(o.vals)], errs[len(o.vals)] = e.evalHere(ctx, p, shared, text, d.merge); errs[len(o.vals)] != nil {
			cancel()
		}
	}
	wg.Wait()
	if err := errs[len(o.vals)]; err != nil {
		return leafResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return leafResult{}, err
	}
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = err
		}
	}
	if first != nil {
		if strings.Contains(first.Error(), ErrHistograms) {
			return leafResult{}, notPushed("histograms")
		}
		e.q.logger.Warn("pushdown: an ingester's evaluation failed, evaluating here", "err", first)
		return leafResult{}, notPushed("evaluate")
	}
	out := leafResult{annos: o.warns}
	for k, r := range results {
		out.matrix = append(out.matrix, queryplan.WithShard(r.matrix, k)...)
		out.annos.Merge(r.annos)
		out.samples += r.samples
	}
	return out, nil
}

// evaluate has inst evaluate text over the series of hashes.
func (e *pushdownEngine) evaluate(ctx context.Context, tenantID string, inst *ringpb.Instance, p *pushdownQuery, text string, hashes []uint64) (leafResult, error) {
	c, err := e.clients.PushdownClient(inst.Addr)
	if err != nil {
		return leafResult{}, err
	}
	// As a select on one ingester: a replica paused or too busy to answer
	// in time makes the query fall back, not time out.
	ctx, cancel := context.WithTimeout(ctx, e.q.cfg.IngesterTimeout)
	defer cancel()
	resp, err := c.Evaluate(tenant.WithID(ctx, tenantID), &ingesterpb.EvaluateRequest{
		Query: text, StartMs: p.start, EndMs: p.end, StepMs: p.step,
		LookbackDeltaMs: p.lookback.Milliseconds(), SeriesHashes: hashes,
	})
	if err != nil {
		return leafResult{}, fmt.Errorf("ingester %s: %w", inst.Id, err)
	}
	m, err := evaluatedMatrix(resp)
	if err != nil {
		return leafResult{}, fmt.Errorf("ingester %s: %w", inst.Id, err)
	}
	return leafResult{matrix: m, annos: evaluatedAnnotations(resp), samples: resp.TotalSamples}, nil
}

// designation is which series each ingester evaluates and which are
// merged here.
type designation struct {
	evaluate [][]uint64 // per ingester answer, sorted
	merge    []uint64   // sorted
	series   int
	// samples of the series the ingesters evaluate, per series the most
	// any replica holds; the merged ones are counted by their select.
	samples int64
}

// designate picks, for each series whose every digest agrees, the replica
// with the fewest series so far to evaluate it; a series whose replicas'
// digests differ, or whose hash one ingester gives twice (two series of
// one hash), is merged here. Correct because a read of these ingesters
// holds every acknowledged sample on at least one of them (openFanout): a
// replica that agrees with every other one that has the series holds all
// of them. It walks the answers' sorted lists side by side, so it holds
// nothing per series beyond the lists it returns.
func designate(answers []digested) (designation, error) {
	for _, a := range answers {
		r := a.resp
		if len(r.Digests) != len(r.Hashes) || len(r.Samples) != len(r.Hashes) {
			return designation{}, fmt.Errorf("ingester %s: digests of unequal lengths", a.inst.Id)
		}
		if !slices.IsSorted(r.Hashes) {
			return designation{}, fmt.Errorf("ingester %s: digests not sorted", a.inst.Id)
		}
	}
	d := designation{evaluate: make([][]uint64, len(answers))}
	next := make([]int, len(answers)) // per answer, its first entry not walked
	holders := make([]int, 0, len(answers))
	for {
		var (
			h     uint64
			found bool
		)
		for k, a := range answers {
			if next[k] < len(a.resp.Hashes) && (!found || a.resp.Hashes[next[k]] < h) {
				h, found = a.resp.Hashes[next[k]], true
			}
		}
		if !found {
			break
		}
		d.series++
		holders = holders[:0]
		var (
			digest  uint64
			differ  bool
			samples int64
		)
		for k, a := range answers {
			r := a.resp
			for j := next[k]; j < len(r.Hashes) && r.Hashes[j] == h; j++ {
				if len(holders) == 0 {
					digest = r.Digests[j]
				}
				differ = differ || r.Digests[j] != digest || j > next[k]
				holders = append(holders, k)
				samples = max(samples, r.Samples[j])
			}
			for next[k] < len(r.Hashes) && r.Hashes[next[k]] == h {
				next[k]++
			}
		}
		if differ {
			d.merge = append(d.merge, h)
			continue
		}
		d.samples += samples
		pick := holders[0]
		for _, k := range holders[1:] {
			if len(d.evaluate[k]) < len(d.evaluate[pick]) {
				pick = k
			}
		}
		d.evaluate[pick] = append(d.evaluate[pick], h)
	}
	return d, nil
}

// remoteAnnotation is an annotation an ingester's evaluation raised. Like
// the engine's own, it is keyed by its raw text until the API formats it
// with the query (SetQuery), so the same one raised in several shares is
// answered once, as the upstream engine answers it.
type remoteAnnotation struct {
	a         *ingesterpb.Annotation
	formatted bool
}

func (r *remoteAnnotation) Error() string {
	if r.formatted {
		return r.a.Formatted
	}
	return r.a.Raw
}

func (r *remoteAnnotation) Unwrap() error {
	if r.a.Info {
		return annotations.PromQLInfo
	}
	return annotations.PromQLWarning
}

// SetQuery formats the annotation: its position was formatted by the
// ingester against the query's partial text, whose positions are the
// query's.
func (r *remoteAnnotation) SetQuery(string) { r.formatted = true }

// Merge keeps the later annotation, as the engine's generic ones do.
func (r *remoteAnnotation) Merge(error) error { return r }

// evaluatedAnnotations returns an evaluation's annotations.
func evaluatedAnnotations(resp *ingesterpb.EvaluateResponse) annotations.Annotations {
	var out annotations.Annotations
	for _, a := range resp.Annotations {
		out.Add(&remoteAnnotation{a: a})
	}
	return out
}

// evaluatedMatrix decodes an evaluation's series.
func evaluatedMatrix(resp *ingesterpb.EvaluateResponse) (promql.Matrix, error) {
	var b labels.ScratchBuilder
	out := make(promql.Matrix, 0, len(resp.Series))
	for _, s := range resp.Series {
		ls, err := ingesterpb.DecodeLabels(&b, s.PackedLabels)
		if err != nil {
			return nil, fmt.Errorf("a result series' labels: %w", err)
		}
		if len(s.TimestampsMs) != len(s.Values) {
			return nil, errors.New("a result series has unequal timestamps and values")
		}
		pts := make([]promql.FPoint, len(s.Values))
		for k := range pts {
			pts[k] = promql.FPoint{T: s.TimestampsMs[k], F: s.Values[k]}
		}
		out = append(out, promql.Series{Metric: ls, Floats: pts})
	}
	return out, nil
}
