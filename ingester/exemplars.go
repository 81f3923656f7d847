package ingester

import (
	"context"
	"errors"
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
// max_global_exemplars_per_user. It exists once the tenant has a limit.
type tenantExemplars struct {
	mu   sync.Mutex
	st   *tsdb.CircularExemplarStorage
	size int64
}

// storage returns the storage at size, resizing it when the limit
// changed (shrinking drops the oldest), or nil when the tenant stores no
// exemplars and never did.
func (e *tenantExemplars) storage(size int64) *tsdb.CircularExemplarStorage {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.st == nil && size <= 0:
		return nil
	case e.st == nil:
		// Per-tenant metrics would collide in one registry: unregistered.
		st, err := tsdb.NewCircularExemplarStorage(size, tsdb.NewExemplarMetrics(nil), 0)
		if err != nil {
			// It fails on nothing today; a future error leaves the
			// tenant without exemplars rather than the push failing.
			return nil
		}
		e.st, e.size = st.(*tsdb.CircularExemplarStorage), size
	case size != e.size:
		e.st.Resize(size)
		e.size = size
	}
	return e.st
}

// current returns the storage as it is, nil when there is none.
func (e *tenantExemplars) current() *tsdb.CircularExemplarStorage {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
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
// are kept in ps for logging and adding; the rest are counted.
func (i *Ingester) judgeExemplars(h *tenantHead, st *tsdb.CircularExemplarStorage, r *ingesterpb.SeriesReader, ps *pushState) {
	drop := func(reason string, n int) { i.m.exemplarsRejected.WithLabelValues(h.id, reason).Add(float64(n)) }
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
	for enc, t, v, ok := r.NextExemplar(); ok; enc, t, v, ok = r.NextExemplar() {
		ls, err := ingesterpb.DecodeLabels(&ps.sc.b, enc)
		if err != nil {
			drop("invalid", 1)
			continue
		}
		ex := exemplar.Exemplar{Labels: ls, Value: v, Ts: t, HasTs: true}
		switch err := st.ValidateExemplar(s.lset, ex); {
		case err == nil:
			ps.exemplars = append(ps.exemplars, refExemplar{ref: s.ref, ex: ex})
			ps.exemplarSeries = append(ps.exemplarSeries, s)
		case errors.Is(err, storage.ErrDuplicateExemplar):
		default:
			drop(exemplarReason(err), 1)
		}
	}
}

// addExemplars adds a logged push's exemplars. An exemplar the storage
// refuses now (two of one series in one push, out of order) is counted.
func (i *Ingester) addExemplars(h *tenantHead, st *tsdb.CircularExemplarStorage, ps *pushState) {
	for k, re := range ps.exemplars {
		err := st.AddExemplar(ps.exemplarSeries[k].lset, re.ex)
		switch {
		case err == nil:
			i.m.exemplarsAppended.Inc()
		case errors.Is(err, storage.ErrDuplicateExemplar):
		default:
			i.m.exemplarsRejected.WithLabelValues(h.id, exemplarReason(err)).Inc()
		}
	}
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
	st := h.exemplars.current()
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
	for _, r := range results {
		es := &ingesterpb.ExemplarSeries{SeriesLabels: ingesterpb.FromLabels(r.SeriesLabels)}
		for _, e := range r.Exemplars {
			es.Exemplars = append(es.Exemplars, &ingesterpb.Exemplar{Labels: ingesterpb.FromLabels(e.Labels), Value: e.Value, TimestampMs: e.Ts})
		}
		resp.Series = append(resp.Series, es)
	}
	return resp, nil
}
