package querier

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/querier/shard"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// Ring is what the querier needs of the ring: the ingesters to ask, and
// for a deletion every ingester, once none is changing.
type Ring interface {
	ForQuery() (ring.ReplicationSet, error)
	ForDeletion() ([]*ringpb.Instance, error)
}

// Clients hands out an ingester client by address.
type Clients interface {
	Client(addr string) (ingesterpb.IngesterClient, error)
}

// Queryable is a storage.SampleAndChunkQueryable over the ingesters.
type Queryable struct {
	ring     Ring
	clients  Clients
	limits   Limits
	cfg      Config
	rejected *prometheus.CounterVec
	partial  *prometheus.CounterVec
	hedged   *prometheus.CounterVec
	logger   *slog.Logger
	// rotation picks which ingesters a minimized read leaves out (rotate).
	rotation atomic.Uint64
	// queue admits at most cfg.MaxConcurrent reads at once, whatever their
	// entry point: the query API, /federate and metadata.
	queue chan struct{}
}

// NewQueryable returns a queryable that asks the ingesters r names, under
// each tenant's query limits l.
func NewQueryable(cfg Config, r Ring, clients Clients, l Limits, reg prometheus.Registerer, logger *slog.Logger) *Queryable {
	return &Queryable{
		ring: r, clients: clients, limits: l, cfg: cfg, logger: logger, queue: make(chan struct{}, cfg.MaxConcurrent),
		rejected: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "orrery_querier_queries_rejected_total",
			Help: "Queries rejected or stopped by a per-tenant query limit, per tenant (a|b for a cross-tenant query) and reason."}, []string{"tenant", "reason"}),
		partial: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "orrery_querier_partial_reads_total",
			Help: "Reads of the ingesters answered with a warning that they may be incomplete (an owner forgotten, or an ingester missing while the ring changes), per tenant."}, []string{"tenant"}),
		hedged: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "orrery_querier_ingester_spare_calls_total",
			Help: "Spare ingesters asked by minimized reads (-querier.minimize-ingester-requests) in the place of one that failed or was slow to answer, per reason."}, []string{"reason"}),
	}
}

// admit waits for a place among the MaxConcurrent reads that evaluate at
// once and returns its release; false when ctx ended first. Waiting here
// is the queue: the rest wait until one finishes or their client gives up.
func (q *Queryable) admit(ctx context.Context) (func(), bool) {
	select {
	case q.queue <- struct{}{}:
		return func() { <-q.queue }, true
	case <-ctx.Done():
		return nil, false
	}
}

// Querier implements storage.Queryable.
func (q *Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{q: q, mint: mint, maxt: maxt, created: time.Now(), sc: &scopeOnce{}}, nil
}

// ChunkQuerier implements storage.ChunkQueryable, for remote read.
func (q *Queryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return &chunkQuerier{querier{q: q, mint: mint, maxt: maxt, created: time.Now(), sc: &scopeOnce{}}}, nil
}

// querier serves one query: the engine, the series API, federation and
// remote read each take one per request. It is what holds the query to
// its limits across its selects.
type querier struct {
	q          *Queryable
	mint, maxt int64
	created    time.Time

	// sc is resolved once per query: shared by the queriers of one
	// pushed-down query (sharedScope), one querier's own otherwise.
	sc *scopeOnce

	// closers end what the query's selects left open (their ingester
	// streams) when the query closes it, however far they were read.
	mu      sync.Mutex
	closers []func()
}

// onClose has Close call f.
func (qr *querier) onClose(f func()) {
	qr.mu.Lock()
	defer qr.mu.Unlock()
	qr.closers = append(qr.closers, f)
}

// queryScope is what a query knows of its tenants. The querier is created
// before any context exists, so the scope is resolved at the first call.
type queryScope struct {
	ids     []string
	minT    int64 // nothing older is read: max_query_lookback
	fetched *fetchLimiter
}

func (qr *querier) scopeOf(ctx context.Context) (queryScope, error) {
	sc := qr.sc
	sc.once.Do(func() {
		ids, err := tenant.IDsFromContext(ctx)
		if err != nil {
			sc.err = apierr.New(apierr.Unauthorized, "%s", err)
			return
		}
		lim := qr.q.limitsOf(ids)
		org := tenant.JoinIDs(ids)
		sc.scope = queryScope{ids: ids, minT: lim.minTime(qr.created), fetched: newFetchLimiter(lim, func(reason string) {
			qr.q.rejected.WithLabelValues(org, reason).Inc()
		})}
	})
	return sc.scope, sc.err
}

// scopeOnce is a query's scope, resolved at its first call.
type scopeOnce struct {
	once  sync.Once
	scope queryScope
	err   error
}

// sharedScope is a storage.Queryable whose queriers all belong to one
// query: its limits count what every one of them fetches, as they count
// an upstream query's selects. Pushdown evaluates a query as several
// (its plan's leaves, the series merged here) that are one to the user.
type sharedScope struct {
	q       *Queryable
	created time.Time
	sc      *scopeOnce
}

func (q *Queryable) newSharedScope() *sharedScope {
	return &sharedScope{q: q, created: time.Now(), sc: &scopeOnce{}}
}

// Querier implements storage.Queryable.
func (s *sharedScope) Querier(mint, maxt int64) (storage.Querier, error) {
	return s.querier(mint, maxt), nil
}

func (s *sharedScope) querier(mint, maxt int64) *querier {
	return &querier{q: s.q, mint: mint, maxt: maxt, created: s.created, sc: s.sc}
}

// window is the time range a call may read: [mint, maxt] with mint
// clamped by max_query_lookback; ok is false when nothing is left.
func (sc queryScope) window(mint, maxt int64) (int64, int64, bool) {
	mint = max(mint, sc.minT)
	return mint, maxt, mint <= maxt
}

// Close implements storage.Querier: it ends the ingester streams its
// selects still read.
func (qr *querier) Close() error {
	qr.mu.Lock()
	defer qr.mu.Unlock()
	for _, f := range qr.closers {
		f()
	}
	qr.closers = nil
	return nil
}

// Select implements storage.Querier. Series come back sorted whatever
// sortSeries says: the merge needs them sorted anyway. When ctx carries a
// query shard (shard.WithShard), only that shard's series are read: the
// ingesters apply its matcher.
func (qr *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	sc, err := qr.scopeOf(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if i, n, ok := shard.FromContext(ctx); ok {
		ms = append(slices.Clip(ms), shard.Matcher(i, n))
	}
	start, end := qr.mint, qr.maxt
	if hints != nil {
		start, end = hints.Start, hints.End
	}
	start, end, ok := sc.window(start, end)
	if !ok {
		return storage.EmptySeriesSet()
	}
	if len(sc.ids) > 1 {
		return qr.selectTenants(ctx, sc, start, end, hints, ms)
	}
	return qr.selectTenant(ctx, sc, sc.ids[0], start, end, hints, ms)
}

// selectTenant is Select of one tenant's series.
func (qr *querier) selectTenant(ctx context.Context, sc queryScope, tenantID string, start, end int64, hints *storage.SelectHints, ms []*labels.Matcher) storage.SeriesSet {
	fetch, err := sc.fetched.newSelect(tenantID)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	matchers := ingesterpb.FromMatchers(ms)
	if hints != nil && hints.Func == "series" {
		return qr.selectLabelsOnly(ctx, tenantID, fetch, &ingesterpb.SeriesRequest{StartMs: start, EndMs: end, Matchers: matchers, Limit: int64(hints.Limit)})
	}
	req := &ingesterpb.QueryRequest{StartMs: start, EndMs: end, Matchers: matchers, PackedLabels: true, RunChunks: true, SeriesHashes: seriesHashesFrom(ctx)}
	open := func(ctx context.Context, c ingesterpb.IngesterClient, inst *ringpb.Instance) (*ingesterStream, error) {
		return openStream(ctx, c, inst.Id, req, fetch.fromIngester())
	}
	o, err := openFanout(ctx, qr.q, tenantID, open)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	qr.onClose(o.stop)
	return newStreamSeriesSet(ctx, o.vals, sc.minT, o.warns, o.spare, o.stop)
}

func (qr *querier) selectLabelsOnly(ctx context.Context, tenantID string, fetch *selectFetch, req *ingesterpb.SeriesRequest) storage.SeriesSet {
	perIngester, warns, err := fanout(ctx, qr.q, tenantID, func(ctx context.Context, c ingesterpb.IngesterClient) ([]labels.Labels, error) {
		resp, err := c.Series(ctx, req)
		if err != nil {
			return nil, err
		}
		if err := fetch.addLabels(resp.Series); err != nil {
			return nil, err
		}
		var b labels.ScratchBuilder
		out := make([]labels.Labels, 0, len(resp.Series))
		for _, s := range resp.Series {
			out = append(out, ingesterpb.ToLabels(&b, s.Labels))
		}
		return out, nil
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	sets := slices.Concat(perIngester...)
	slices.SortFunc(sets, labels.Compare)
	return &labelsSeriesSet{sets: slices.CompactFunc(sets, labels.Equal), idx: -1, warns: warns}
}

// LabelValues implements storage.LabelQuerier.
func (qr *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	sc, err := qr.scopeOf(ctx)
	if err != nil {
		return nil, nil, err
	}
	mint, maxt, ok := sc.window(qr.mint, qr.maxt)
	if !ok {
		return nil, nil, nil
	}
	if len(sc.ids) > 1 {
		return qr.labelValuesOfTenants(ctx, sc.ids, name, mint, maxt, limitOf(hints), ms)
	}
	return qr.labelValues(ctx, sc.ids[0], name, mint, maxt, limitOf(hints), ms)
}

func (qr *querier) labelValues(ctx context.Context, tenantID, name string, mint, maxt, limit int64, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &ingesterpb.LabelValuesRequest{Name: name, StartMs: mint, EndMs: maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: limit}
	return unionStrings(ctx, qr.q, tenantID, limit, func(ctx context.Context, c ingesterpb.IngesterClient) ([]string, error) {
		resp, err := c.LabelValues(ctx, req)
		return resp.GetValues(), err
	})
}

// LabelNames implements storage.LabelQuerier.
func (qr *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	sc, err := qr.scopeOf(ctx)
	if err != nil {
		return nil, nil, err
	}
	mint, maxt, ok := sc.window(qr.mint, qr.maxt)
	if !ok {
		return nil, nil, nil
	}
	if len(sc.ids) > 1 {
		return qr.labelNamesOfTenants(ctx, sc.ids, mint, maxt, limitOf(hints), ms)
	}
	return qr.labelNames(ctx, sc.ids[0], mint, maxt, limitOf(hints), ms)
}

func (qr *querier) labelNames(ctx context.Context, tenantID string, mint, maxt, limit int64, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &ingesterpb.LabelNamesRequest{StartMs: mint, EndMs: maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: limit}
	return unionStrings(ctx, qr.q, tenantID, limit, func(ctx context.Context, c ingesterpb.IngesterClient) ([]string, error) {
		resp, err := c.LabelNames(ctx, req)
		return resp.GetNames(), err
	})
}

func unionStrings(ctx context.Context, q *Queryable, tenantID string, limit int64, call func(context.Context, ingesterpb.IngesterClient) ([]string, error)) ([]string, annotations.Annotations, error) {
	perIngester, warns, err := fanout(ctx, q, tenantID, call)
	if err != nil {
		return nil, nil, err
	}
	return sortedUnion(perIngester, limit), warns, nil
}

// sortedUnion merges string lists into one sorted list without
// duplicates, cut to limit when positive.
func sortedUnion(lists [][]string, limit int64) []string {
	out := slices.Concat(lists...)
	slices.Sort(out)
	out = slices.Compact(out)
	if limit > 0 && int64(len(out)) > limit {
		out = out[:limit]
	}
	return out
}

type answer[T any] struct {
	val  T
	err  error
	call int // index in the order of launch
	inst *ringpb.Instance
}

// fanout calls the ingesters of the read replication set in parallel and
// returns the results of those that answered (openFanout has the rules).
// Nothing of a call outlives it.
func fanout[T any](ctx context.Context, q *Queryable, tenantID string, call func(context.Context, ingesterpb.IngesterClient) (T, error)) ([]T, annotations.Annotations, error) {
	o, err := openFanout(ctx, q, tenantID, func(ctx context.Context, c ingesterpb.IngesterClient, _ *ringpb.Instance) (T, error) {
		return call(ctx, c)
	})
	if err != nil {
		return nil, nil, err
	}
	o.stop()
	return o.vals, o.warns, nil
}

// opened is what openFanout returns: the answers, still in use (open
// streams), and how to end or replace them.
type opened[T any] struct {
	vals  []T
	warns annotations.Annotations
	// stop cancels every call still open. It must be called once the
	// answers are no longer read; the query's end calls it too.
	stop func()
	// spare asks one more instance, neither answered nor failed, in the
	// place of an answer that failed while being read; ok is false when
	// none is left or answers. Only one goroutine may call it.
	spare func() (val T, ok bool, err error)
}

// openFanout calls the ingesters of the read replication set in parallel
// and returns the results of those that answered, with their calls left
// open until stop. A write reached a quorum of its replicas, and the
// ring's budget MaxErrors is small enough that any all-but-MaxErrors
// subset of the instances still holds one of those replicas of every
// acknowledged sample (ring.ForQuery; the argument is in
// docs/architecture.md, "The read path"). So it needs answers from all but
// MaxErrors ingesters, and:
//
//   - while the ring is settled (no owner JOINING or LEAVING, none
//     forgotten beyond the budget) and MinimizeIngesterRequests is on, it
//     asks only that many, leaving out MaxErrors of them in rotation so
//     the load spreads; each one that fails is replaced at once by a
//     spare (one left out), and HedgeDelay after the first answer each
//     one still out gets a spare too, so a paused or slow ingester
//     neither fails nor holds up the query;
//   - otherwise it asks them all and returns as soon as all but MaxErrors
//     answered.
//
// Either way the calls still running at the end are cancelled and their
// results dropped, and more than MaxErrors failures fail the query. A
// query limit error fails it at once, whatever the tolerance: the query is
// over its limit, not the ingester broken, and returning cancels the
// other calls, so fetching stops.
//
// That reasoning holds only while data sits where the ring says, so the
// answer carries a warning (the API's warnings field) when it may miss
// data: the ring names forgotten owners beyond the budget (Incomplete), or
// an instance did not answer while the ring is changing (an owner JOINING
// or LEAVING, its data possibly on its way). Waiting for every instance
// during a change instead would stall every query on one slow replica for
// the whole handover; a fast answer that says it may be partial is the
// better trade, and a settled ring keeps both speed and completeness.
//
// Every call is for tenantID alone: a cross-tenant read fans out once per
// tenant.
func openFanout[T any](ctx context.Context, q *Queryable, tenantID string, call func(context.Context, ingesterpb.IngesterClient, *ringpb.Instance) (T, error)) (*opened[T], error) {
	rs, err := q.ring.ForQuery()
	if err != nil {
		return nil, apierr.New(apierr.Unavailable, "querier: %s", err)
	}
	// The calls do not inherit the query's deadline: gRPC would send it
	// along, and the ingester's copy could expire a moment before the
	// query's own, turning a timeout into a transport error. The query's end
	// reaches the ingesters as a cancellation instead.
	callCtx, cancel := context.WithTimeout(tenant.WithID(context.WithoutCancel(ctx), tenantID), q.cfg.IngesterTimeout)
	stopAfter := context.AfterFunc(ctx, cancel)
	stop := func() { stopAfter(); cancel() }
	returned := false
	defer func() {
		if !returned {
			stop()
		}
	}()
	answers := make(chan answer[T], len(rs.Instances))
	var calls []context.CancelFunc // by launch
	var launched []*ringpb.Instance
	launch := func(inst *ringpb.Instance) {
		cctx, ccancel := context.WithCancel(callCtx)
		n := len(calls)
		calls, launched = append(calls, ccancel), append(launched, inst)
		go func() {
			val, err := callOne(cctx, q, inst, call)
			answers <- answer[T]{val: val, err: err, call: n, inst: inst}
		}()
	}
	need := len(rs.Instances) - rs.MaxErrors
	asked, spares := rs.Instances, []*ringpb.Instance(nil)
	if q.cfg.MinimizeIngesterRequests && !rs.Changing && rs.Incomplete == "" && rs.MaxErrors > 0 {
		asked, spares = q.rotate(rs.Instances, need)
	}
	for _, inst := range asked {
		launch(inst)
	}
	out := len(asked) // calls not answered yet
	// spare asks the next spare in the place of a call that failed or is
	// late; false when none is left.
	spare := func(reason string) bool {
		if len(spares) == 0 {
			return false
		}
		launch(spares[0])
		spares = spares[1:]
		out++
		q.hedged.WithLabelValues(reason).Inc()
		return true
	}
	var late <-chan time.Time
	var answered []T
	kept := map[int]bool{}   // calls answered
	failed := map[int]bool{} // calls failed
	var firstErr error
	for len(answered) < need && len(failed) <= rs.MaxErrors {
		select {
		case a := <-answers:
			out--
			if isLimitError(a.err) {
				return nil, a.err
			}
			if a.err != nil {
				failed[a.call] = true
				if firstErr == nil {
					firstErr = a.err
				}
				spare("failed")
				continue
			}
			answered = append(answered, a.val)
			kept[a.call] = true
			if late == nil && len(spares) > 0 && out > 0 {
				t := time.NewTimer(q.cfg.HedgeDelay)
				defer t.Stop()
				late = t.C
			}
		case <-late:
			for range out {
				if !spare("slow") {
					break
				}
			}
		}
	}
	// When the query itself was cancelled or timed out, that is the error,
	// not the broken streams it caused: the API maps it to Prometheus's
	// timeout or canceled error.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("querier: %w", err)
	}
	if len(failed) > rs.MaxErrors {
		return nil, firstErr
	}
	if len(failed) > 0 {
		q.logger.Warn("ingesters failed within the replication tolerance", "failed", len(failed), "tolerated", rs.MaxErrors, "first", firstErr)
	}
	// The calls not kept are cancelled; those neither kept nor failed
	// remain spares for answers that fail later, the ones never asked
	// first: those asked were cancelled for being late.
	for k, c := range calls {
		if !kept[k] {
			c()
			if !failed[k] {
				spares = append(spares, launched[k])
			}
		}
	}
	var warns annotations.Annotations
	if rs.Incomplete != "" {
		warns.Add(fmt.Errorf("orrery: results may be incomplete: %s", rs.Incomplete))
	}
	if missing := len(rs.Instances) - len(answered); missing > 0 && rs.Changing {
		warns.Add(fmt.Errorf("orrery: results may be incomplete: %d of %d ingesters did not answer while the ring is changing (an ingester is joining or leaving)", missing, len(rs.Instances)))
	}
	if len(warns) > 0 {
		q.partial.WithLabelValues(tenantID).Inc()
	}
	returned = true
	return &opened[T]{vals: answered, warns: warns, stop: stop, spare: func() (T, bool, error) {
		for len(spares) > 0 {
			inst := spares[0]
			spares = spares[1:]
			q.hedged.WithLabelValues("failed").Inc()
			val, err := callOne(callCtx, q, inst, call)
			if err == nil || isLimitError(err) || ctx.Err() != nil {
				return val, err == nil, err
			}
			q.logger.Warn("spare ingester failed", "err", err)
		}
		var zero T
		return zero, false, nil
	}}, nil
}

// callOne calls one instance, its error (other than a query limit's)
// naming it.
func callOne[T any](ctx context.Context, q *Queryable, inst *ringpb.Instance, call func(context.Context, ingesterpb.IngesterClient, *ringpb.Instance) (T, error)) (T, error) {
	c, err := q.clients.Client(inst.Addr)
	var val T
	if err == nil {
		val, err = call(ctx, c, inst)
	}
	if err != nil && !isLimitError(err) {
		err = fmt.Errorf("ingester %s: %w", inst.Id, apierr.FromGRPC(err))
	}
	return val, err
}

// rotate splits instances into the need to ask and the spares, starting
// one further along the list at each call, so that every instance is left
// out in turn and a settled cluster's read load spreads evenly. The
// caller owns both slices.
func (q *Queryable) rotate(instances []*ringpb.Instance, need int) (asked, spares []*ringpb.Instance) {
	off := int(q.rotation.Add(1) % uint64(len(instances)))
	order := append(slices.Clone(instances[off:]), instances[:off]...)
	return order[:need], order[need:]
}

func limitOf(h *storage.LabelHints) int64 {
	if h == nil {
		return 0
	}
	return int64(h.Limit)
}

type seriesHashesKey struct{}

// WithSeriesHashes returns ctx with the selects of a query made in it
// reading only the series whose labels.StableHash is in hashes, which must
// be sorted: the ingesters leave out the rest (QueryRequest.series_hashes).
// Pushdown reads so the series one replica evaluates, or the ones whose
// replicas differ.
func WithSeriesHashes(ctx context.Context, hashes []uint64) context.Context {
	return context.WithValue(ctx, seriesHashesKey{}, hashes)
}

func seriesHashesFrom(ctx context.Context) []uint64 {
	h, _ := ctx.Value(seriesHashesKey{}).([]uint64)
	return h
}

// InstanceRing is a ring of one instance, never changing: a querier over
// it reads that one ingester, as pushdown's evaluation inside an ingester
// process reads its own.
type InstanceRing struct{ Instance *ringpb.Instance }

// ForQuery implements Ring.
func (r InstanceRing) ForQuery() (ring.ReplicationSet, error) {
	return ring.ReplicationSet{Instances: []*ringpb.Instance{r.Instance}}, nil
}

// ForDeletion implements Ring.
func (r InstanceRing) ForDeletion() ([]*ringpb.Instance, error) {
	return []*ringpb.Instance{r.Instance}, nil
}

type chunkQuerier struct{ querier }

// Select implements storage.ChunkQuerier.
func (cq *chunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(cq.querier.Select(ctx, sortSeries, hints, ms...))
}
