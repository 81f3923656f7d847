package ingester

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// tenantHead holds one tenant's in-memory series. Tenants share nothing, so
// one tenant's queries can never see another's series.
//
// Locking: appendMu serializes appends (and the removal of idle series), so
// the appender validates and appends against state nobody else changes. mu
// guards the maps; readers take it shared.
type tenantHead struct {
	id       string
	appendMu sync.Mutex
	// pushes numbers the pushes, under appendMu, for memSeries.pendingPush.
	pushes uint64

	mu       sync.RWMutex
	byHash   map[uint64][]*memSeries
	byRef    map[uint64]*memSeries
	postings *index.MemPostings
	// perMetric counts the series of each metric name, for the per-metric
	// series limit: kept up to date on creation and removal, so that a
	// push never counts postings.
	perMetric map[string]int

	metadata  metadataSet
	exemplars tenantExemplars

	// maxT is the newest sample time this ingester holds of the tenant
	// (math.MinInt64: none), from which the out-of-order window is
	// measured, as Prometheus measures it from its head's newest sample.
	maxT atomic.Int64
}

func newTenantHead(id string) *tenantHead {
	h := &tenantHead{
		id:        id,
		byHash:    map[uint64][]*memSeries{},
		byRef:     map[uint64]*memSeries{},
		postings:  index.NewMemPostings(),
		perMetric: map[string]int{},
	}
	h.maxT.Store(math.MinInt64)
	return h
}

// observe raises maxT to t.
func (h *tenantHead) observe(t int64) {
	for {
		cur := h.maxT.Load()
		if t <= cur || h.maxT.CompareAndSwap(cur, t) {
			return
		}
	}
}

// oooMin is the oldest time a sample may have and be stored out of order
// with window, measured from newest (math.MaxInt64 when none may: no
// window, or newest is math.MinInt64), but never from later than now (Unix
// milliseconds): one sample from far in the future, which a tenant without
// a creation grace period can send, must not shut the window for good.
func oooMin(newest, now int64, window time.Duration) int64 {
	if window <= 0 || newest == math.MinInt64 {
		return math.MaxInt64
	}
	newest = min(newest, now)
	w := window.Milliseconds()
	if newest < math.MinInt64+w {
		return math.MinInt64
	}
	return newest - w
}

// seriesHash identifies a series by its encoded label set.
func seriesHash(enc []byte) uint64 { return xxhash.Sum64(enc) }

// lookup returns the series whose encoded labels are enc, or nil. scratch
// holds the candidates' encodings; hash collisions are resolved by bytes.
func (h *tenantHead) lookup(hash uint64, enc []byte, scratch *[]byte) *memSeries {
	for _, s := range h.byHash[hash] {
		*scratch = ingesterpb.AppendLabels((*scratch)[:0], s.lset)
		if bytes.Equal(*scratch, enc) {
			return s
		}
	}
	return nil
}

// getOrCreate returns the series whose encoded labels are enc, creating it
// with ref newRef() when absent and lim allows (created is then set);
// otherwise it returns errPerUserSeriesLimit or errPerMetricSeriesLimit.
// Only creation decodes the labels.
func (h *tenantHead) getOrCreate(enc []byte, sc *scratch, newRef func() uint64, lim seriesLimits) (s *memSeries, created bool, err error) {
	hash := seriesHash(enc)
	h.mu.RLock()
	s = h.lookup(hash, enc, &sc.buf)
	h.mu.RUnlock()
	if s != nil {
		return s, false, nil
	}
	lset, err := ingesterpb.DecodeLabels(&sc.b, enc)
	if err != nil {
		return nil, false, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.lookup(hash, enc, &sc.buf); s != nil {
		return s, false, nil
	}
	name := lset.Get(model.MetricNameLabel)
	n, ok := h.perMetric[name]
	if err := lim.check(len(h.byRef), n); err != nil {
		return nil, false, err
	}
	if !ok {
		// The key must not keep this series' labels alive after it is gone.
		name = strings.Clone(name)
	}
	h.perMetric[name] = n + 1
	s = &memSeries{ref: newRef(), lset: lset, hash: hash}
	h.byHash[hash] = append(h.byHash[hash], s)
	h.byRef[s.ref] = s
	h.postings.Add(storage.SeriesRef(s.ref), s.lset)
	return s, true, nil
}

// scratch is reusable buffer space for series lookups.
type scratch struct {
	buf []byte
	b   labels.ScratchBuilder
}

// remove forgets series. The caller holds appendMu.
func (h *tenantHead) remove(series []*memSeries) {
	if len(series) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	deleted := make(map[storage.SeriesRef]struct{}, len(series))
	affected := map[labels.Label]struct{}{}
	for _, s := range series {
		hash := s.hash
		list := slices.DeleteFunc(h.byHash[hash], func(o *memSeries) bool { return o == s })
		if len(list) == 0 {
			delete(h.byHash, hash)
		} else {
			h.byHash[hash] = list
		}
		delete(h.byRef, s.ref)
		if name := s.lset.Get(model.MetricNameLabel); h.perMetric[name] > 1 {
			h.perMetric[name]--
		} else {
			delete(h.perMetric, name)
		}
		deleted[storage.SeriesRef(s.ref)] = struct{}{}
		s.lset.Range(func(l labels.Label) { affected[l] = struct{}{} })
	}
	h.postings.Delete(deleted, affected)
}

// all returns every series; the caller must not modify the slice's series
// outside their locks.
func (h *tenantHead) all() []*memSeries {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*memSeries, 0, len(h.byRef))
	for _, s := range h.byRef {
		out = append(out, s)
	}
	return out
}

// selectSeries returns the series matching every matcher, in no order: a
// caller that needs them sorted sorts what it keeps of them.
func (h *tenantHead) selectSeries(ctx context.Context, ms []*labels.Matcher) ([]*memSeries, error) {
	var its []index.Postings
	for _, m := range ms {
		// A matcher that matches "" also matches series without the label,
		// which postings cannot express; it is applied as a filter below.
		if m.Matches("") {
			continue
		}
		if m.Type == labels.MatchEqual {
			its = append(its, h.postings.Postings(ctx, m.Name, m.Value))
		} else {
			its = append(its, h.postings.PostingsForLabelMatching(ctx, m.Name, m.Matches))
		}
	}
	var p index.Postings
	if len(its) == 0 {
		p = h.postings.All()
	} else {
		p = index.Intersect(its...)
	}
	refs, err := index.ExpandPostings(p)
	if err != nil {
		return nil, err
	}
	h.mu.RLock()
	out := make([]*memSeries, 0, len(refs))
	for _, ref := range refs {
		s, ok := h.byRef[uint64(ref)]
		if ok && matchesAll(s.lset, ms) {
			out = append(out, s)
		}
	}
	h.mu.RUnlock()
	return out, nil
}

func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// oldestInMemory returns the oldest sample time of any chunk or unencoded
// sample the tenant holds in memory.
func (h *tenantHead) oldestInMemory() (int64, bool) {
	oldest, found := int64(math.MaxInt64), false
	for _, s := range h.all() {
		if t, ok := s.oldest(); ok {
			oldest, found = min(oldest, t), true
		}
	}
	return oldest, found
}
