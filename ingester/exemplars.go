package ingester

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

// tenantExemplars is one tenant's exemplars: Prometheus's circular
// exemplar storage (bounded, oldest dropped first, newer than each
// series' newest only), sized to this ingester's share of the tenant's
// max_global_exemplars_per_user. The storage allocates its whole size
// at once, so it starts small and doubles as it fills, up to the limit:
// a tenant that sends a few exemplars pays for a few.
type tenantExemplars struct {
	mu sync.Mutex
	st *tsdb.CircularExemplarStorage
	// size is the storage's size, limit what it may grow to; held counts
	// the exemplars added, which fill it once size of them were.
	size, limit, held int64
}

// initialExemplars is a tenant's first storage size.
const initialExemplars = 1024

// storage applies the limit and returns the storage, nil when the tenant
// keeps no exemplars: a limit of 0 drops them (and their memory), a lower
// one shrinks the storage, the oldest dropped first.
func (e *tenantExemplars) storage(limit int64) *tsdb.CircularExemplarStorage {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.limit = limit
	switch {
	case limit <= 0:
		e.st, e.size, e.held = nil, 0, 0
	case e.st == nil:
		e.size = min(limit, initialExemplars)
		// Per-tenant metrics would collide in one registry: unregistered.
		st, err := tsdb.NewCircularExemplarStorage(e.size, tsdb.NewExemplarMetrics(nil), 0)
		if err != nil {
			// It fails on nothing today; a future error leaves the
			// tenant without exemplars rather than the push failing.
			e.size = 0
			return nil
		}
		e.st = st.(*tsdb.CircularExemplarStorage)
	case e.size > limit:
		e.st.Resize(limit)
		e.size, e.held = limit, min(e.held, limit)
	}
	return e.st
}

// added records n exemplars added to st, doubling the storage (up to the
// limit) once it is full.
func (e *tenantExemplars) added(st *tsdb.CircularExemplarStorage, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st != st {
		return
	}
	e.held = min(e.held+int64(n), e.size)
	if e.held == e.size && e.size < e.limit {
		e.size = min(2*e.size, e.limit)
		e.st.Resize(e.size)
	}
}

// exemplarLimit is this ingester's share of the tenant's exemplar limit.
func (i *Ingester) exemplarLimit(tenantID string) int64 {
	global := i.limits.For(tenantID).MaxGlobalExemplarsPerUser
	if global <= 0 {
		return 0
	}
	return int64(localLimit(global, i.ring.ReplicationFactor(), i.ring.HealthyIngesters()))
}

// refExemplar is an accepted exemplar of the series numbered ref.
type refExemplar struct {
	ref uint64
	ex  exemplar.Exemplar
}

// exemplarReason is why an exemplar was dropped: the reason label of
// orrery_ingester_exemplars_rejected_total. Exemplars never fail a push,
// as Prometheus's remote-write receiver does not fail one for them.
func exemplarReason(err error) string {
	switch {
	case errors.Is(err, storage.ErrOutOfOrderExemplar):
		return "out_of_order"
	case errors.Is(err, storage.ErrExemplarLabelLength):
		return "label_length"
	case errors.Is(err, storage.ErrExemplarsDisabled):
		return "disabled"
	}
	return "invalid"
}

// judgeExemplars reads the current exemplars entry of r: exemplars of a
// series this push or an earlier one created, that the storage would take,
// are kept in ps for logging and adding, sorted as Prometheus's receiver
// sorts them (the storage takes a series' exemplars in order); the rest
// are counted, and refused in the push's answer.
func (i *Ingester) judgeExemplars(h *tenantHead, st *tsdb.CircularExemplarStorage, r *ingesterpb.SeriesReader, ps *pushState) {
	drop := func(reason string, n int) {
		i.m.exemplarsRejected.WithLabelValues(h.id, reason).Add(float64(n))
		ps.exRefused += n
	}
	if st == nil {
		drop("disabled", r.Len())
		return
	}
	h.mu.RLock()
	s := h.lookup(seriesHash(r.Labels()), r.Labels(), &ps.sc.buf)
	h.mu.RUnlock()
	if s == nil {
		drop("no_series", r.Len())
		return
	}
	exs := ps.exScratch[:0]
	for enc, t, v, ok := r.NextExemplar(); ok; enc, t, v, ok = r.NextExemplar() {
		ls, err := ingesterpb.DecodeLabels(&ps.sc.b, enc)
		if err != nil {
			drop("invalid", 1)
			continue
		}
		exs = append(exs, exemplar.Exemplar{Labels: ls, Value: v, Ts: t, HasTs: true})
	}
	slices.SortFunc(exs, exemplar.Compare)
	for _, ex := range exs {
		switch err := st.ValidateExemplar(s.lset, ex); {
		case err == nil:
			ps.exemplars = append(ps.exemplars, refExemplar{ref: s.ref, ex: ex})
			ps.exemplarSeries = append(ps.exemplarSeries, s)
		case errors.Is(err, storage.ErrDuplicateExemplar):
		default:
			drop(exemplarReason(err), 1)
		}
	}
	clear(exs)
	ps.exScratch = exs[:0]
}

// addExemplars adds a logged push's exemplars. An exemplar the storage
// refuses now (one of several of a series in one push that the others
// overtook) is counted and refused.
func (i *Ingester) addExemplars(h *tenantHead, st *tsdb.CircularExemplarStorage, ps *pushState) {
	n := 0
	for k, re := range ps.exemplars {
		err := st.AddExemplar(ps.exemplarSeries[k].lset, re.ex)
		switch {
		case err == nil:
			n++
		case errors.Is(err, storage.ErrDuplicateExemplar):
		default:
			i.m.exemplarsRejected.WithLabelValues(h.id, exemplarReason(err)).Inc()
			ps.exRefused++
		}
	}
	i.m.exemplarsAppended.Add(float64(n))
	h.exemplars.added(st, n)
}

// QueryExemplars implements ingesterpb.IngesterServer.
func (i *Ingester) QueryExemplars(ctx context.Context, req *ingesterpb.ExemplarQueryRequest) (*ingesterpb.ExemplarQueryResponse, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, apierr.ToGRPC(apierr.New(apierr.Unauthorized, "%s", err))
	}
	resp := &ingesterpb.ExemplarQueryResponse{}
	h := i.head(tenantID, false)
	if h == nil {
		return resp, nil
	}
	// The limit as it is now: one lowered to 0 answers nothing.
	st := h.exemplars.storage(i.exemplarLimit(tenantID))
	if st == nil {
		return resp, nil
	}
	sets := make([][]*labels.Matcher, 0, len(req.MatcherSets))
	for _, set := range req.MatcherSets {
		ms, err := ingesterpb.ToMatchers(set.Matchers)
		if err != nil {
			return nil, apierr.ToGRPC(apierr.New(apierr.BadData, "exemplar query: %s", err))
		}
		sets = append(sets, ms)
	}
	results, err := st.Select(req.StartMs, req.EndMs, sets...)
	if err != nil {
		return nil, apierr.ToGRPC(apierr.New(apierr.Internal, "exemplar query: %s", err))
	}
	// Deleted series lose their exemplars in the deleted range too, which
	// Prometheus keeps: what was deleted must not be readable.
	stones := i.deleted.tombstones(tenantID)
	for _, r := range results {
		es := &ingesterpb.ExemplarSeries{SeriesLabels: ingesterpb.FromLabels(r.SeriesLabels)}
		ivs := deletedIntervals(stones, r.SeriesLabels)
		for _, e := range r.Exemplars {
			if !deleted(ivs, e.Ts) {
				es.Exemplars = append(es.Exemplars, &ingesterpb.Exemplar{Labels: ingesterpb.FromLabels(e.Labels), Value: e.Value, TimestampMs: e.Ts})
			}
		}
		if len(es.Exemplars) > 0 {
			resp.Series = append(resp.Series, es)
		}
	}
	return resp, nil
}
