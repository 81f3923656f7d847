package ingester

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

// pushState is the per-push scratch space, pooled so that a push of
// thousands of samples allocates little.
type pushState struct {
	sc        scratch
	samples   []refSample
	series    []*memSeries
	newSeries []*memSeries
	buf       []byte
	// histRaw are the push's accepted histograms as encoded (aliasing the
	// push), in the order of samples: a push with none keeps the WAL's
	// float-only record, one with some logs these bytes.
	histRaw [][]byte
	// ooo, oooSeries and oooHistRaw are samples, series and histRaw for
	// the samples accepted out of order.
	ooo        []refSample
	oooSeries  []*memSeries
	oooHistRaw [][]byte
	// window is the tenant's out-of-order window, and oooMin the oldest
	// time it lets in, measured once per push (at its first old sample)
	// from what the ingester held before it, as Prometheus measures it
	// once per appender.
	window    time.Duration
	oooMin    int64
	oooMinSet bool
	// exemplars are the push's accepted exemplars, of exemplarSeries, for
	// exStore, which is looked up at the push's first exemplar.
	exemplars      []refExemplar
	exemplarSeries []*memSeries
	exStore        *tsdb.CircularExemplarStorage
	exLooked       bool
	// exRefused counts the push's exemplars not stored (and not
	// duplicates), for its answer; exScratch sorts an entry's exemplars.
	exRefused int
	exScratch []exemplar.Exemplar
	// accepted indexes samples and ooo by series and timestamp, built only
	// when a push has an older sample to judge, and kept up to date from
	// then on (indexed and indexedOOO count the samples in it).
	accepted   map[refTime]sample
	indexed    int
	indexedOOO int
}

type refTime struct {
	ref uint64
	t   int64
}

// acceptedAt returns the sample this push already accepted for series ref
// at t.
func (ps *pushState) acceptedAt(ref uint64, t int64) (sample, bool) {
	if ps.accepted == nil {
		ps.accepted = map[refTime]sample{}
	}
	for ; ps.indexed < len(ps.samples); ps.indexed++ {
		smp := ps.samples[ps.indexed]
		ps.accepted[refTime{smp.ref, smp.T}] = smp.sample
	}
	for ; ps.indexedOOO < len(ps.ooo); ps.indexedOOO++ {
		smp := ps.ooo[ps.indexedOOO]
		ps.accepted[refTime{smp.ref, smp.T}] = smp.sample
	}
	smp, ok := ps.accepted[refTime{ref, t}]
	return smp, ok
}

// minOOO is the oldest time a sample of the push may have and be stored
// out of order (math.MaxInt64: none may). A tenant that held nothing
// before the push has its window measured from the newest sample the push
// accepted so far, as Prometheus's head, empty, takes its time from the
// first sample appended.
func (ps *pushState) minOOO(h *tenantHead) int64 {
	if !ps.oooMinSet {
		newest := h.maxT.Load()
		if newest == math.MinInt64 {
			for _, smp := range ps.samples {
				newest = max(newest, smp.T)
			}
		}
		ps.oooMin, ps.oooMinSet = oooMin(newest, time.Now().UnixMilli(), ps.window), true
	}
	return ps.oooMin
}

var pushStates = sync.Pool{New: func() any { return &pushState{} }}

// reason is why samples were rejected: the reason label of
// orrery_ingester_samples_rejected_total.
type reason uint8

const (
	reasonOutOfOrder reason = iota
	reasonDuplicateTimestamp
	reasonPerUserSeriesLimit
	reasonPerMetricSeriesLimit
	reasonInvalidHistogram
	numReasons
)

var reasonLabels = [numReasons]string{"out_of_order", "duplicate_timestamp", "per_user_series_limit", "per_metric_series_limit", "invalid_histogram"}

// rejections counts rejected samples by reason and keeps the first message,
// rather than building an error per sample on the hot path.
type rejections struct {
	n        int
	byReason [numReasons]int
	first    string
	// exemplars counts the exemplars not stored, which are no rejection
	// of the push.
	exemplars int
}

// count adds samples rejected for why and reports whether they are the
// first rejection, whose message the caller then sets.
func (r *rejections) count(why reason, samples int) (first bool) {
	r.n += samples
	r.byReason[why] += samples
	return r.first == ""
}

func (r *rejections) sample(v verdict, lset labels.Labels, t, lastT int64, ps *pushState) {
	if v == outOfOrder {
		if r.count(reasonOutOfOrder, 1) {
			r.first = fmt.Sprintf("out of order sample: series %s has a sample at %s, older than its latest at %s", lset, timestamp.Time(t).Format(time.RFC3339Nano), timestamp.Time(lastT).Format(time.RFC3339Nano))
			if ps.window > 0 && ps.oooMin != math.MaxInt64 {
				r.first += fmt.Sprintf(" and outside the tenant's out-of-order window of %s (older than %s)", model.Duration(ps.window), timestamp.Time(ps.oooMin).Format(time.RFC3339Nano))
			}
		}
		return
	}
	if r.count(reasonDuplicateTimestamp, 1) {
		r.first = fmt.Sprintf("duplicate sample with a different value: series %s already has another value at %s", lset, timestamp.Time(t).Format(time.RFC3339Nano))
	}
}

// histogram counts a histogram that does not validate. The distributor
// validates every histogram; this guards the chunk appenders, which
// assume valid ones, from any other caller.
func (r *rejections) histogram(err error, lset labels.Labels, t int64) {
	if r.count(reasonInvalidHistogram, 1) {
		r.first = fmt.Sprintf("invalid histogram: series %s at %s: %s", lset, timestamp.Time(t).Format(time.RFC3339Nano), err)
	}
}

// series counts the samples of a series that a limit refused to create.
// Only the first refusal decodes the labels, for its message.
func (r *rejections) series(err error, samples int, l *limits.Limits, enc []byte, b *labels.ScratchBuilder) {
	why := reasonPerUserSeriesLimit
	if errors.Is(err, errPerMetricSeriesLimit) {
		why = reasonPerMetricSeriesLimit
	}
	if r.count(why, samples) {
		// Decoded again, once per push at most: getOrCreate decoded them
		// but keeps no labels of a series it refused.
		lset, _ := ingesterpb.DecodeLabels(b, enc)
		r.first = seriesLimitMessage(err, l, lset.Get(model.MetricNameLabel))
	}
}

// Push implements ingesterpb.IngesterServer. Valid samples are stored even
// when others are rejected; rejections are reported as InvalidArgument.
func (i *Ingester) Push(ctx context.Context, req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, apierr.ToGRPC(apierr.New(apierr.Unauthorized, "%s", err))
	}
	i.pushGate.RLock()
	defer i.pushGate.RUnlock()
	if i.handingOver {
		// A distributor that has not yet heard this ingester is LEAVING:
		// Unavailable makes it count a failed replica (or the client
		// retry), and the retry goes to the new owner.
		return nil, apierr.ToGRPC(apierr.New(apierr.Unavailable, "ingester is leaving and handing its series over: write to the series' new owner"))
	}
	h := i.head(tenantID, true)
	if len(req.Metadata) > 0 {
		h.metadata.add(req.Metadata, time.Now())
	}
	n, rej, err := i.push(h, req.Series)
	if err != nil {
		return nil, apierr.ToGRPC(err)
	}
	if rej.n > 0 {
		return nil, apierr.ToGRPC(apierr.New(apierr.BadData, "%s (%d of %d samples rejected, the rest stored)", rej.first, rej.n, rej.n+n))
	}
	return &ingesterpb.PushResponse{SamplesAppended: int64(n), ExemplarsRefused: int64(rej.exemplars)}, nil
}

// push appends a push's samples. Samples of existing series are judged
// only against those series; a new series is created only within the
// tenant's series limits, else its samples are rejected and the rest of
// the push goes on.
func (i *Ingester) push(h *tenantHead, encoded []byte) (int, rejections, error) {
	ps := pushStates.Get().(*pushState)
	defer pushStates.Put(ps)
	clear(ps.histRaw)
	clear(ps.oooHistRaw)
	clear(ps.oooSeries)
	ps.samples, ps.series, ps.newSeries, ps.histRaw = ps.samples[:0], ps.series[:0], ps.newSeries[:0], ps.histRaw[:0]
	ps.ooo, ps.oooSeries, ps.oooHistRaw = ps.ooo[:0], ps.oooSeries[:0], ps.oooHistRaw[:0]
	clear(ps.exemplars)
	clear(ps.exemplarSeries)
	ps.exemplars, ps.exemplarSeries, ps.exStore, ps.exLooked, ps.exRefused = ps.exemplars[:0], ps.exemplarSeries[:0], nil, false, 0
	// A push of many old samples leaves a large index: let it go rather
	// than keep it pooled.
	if len(ps.accepted) > 1<<16 {
		ps.accepted = nil
	}
	clear(ps.accepted)
	ps.indexed, ps.indexedOOO = 0, 0
	l, lim := i.seriesLimitsFor(h.id)
	ps.window, ps.oooMinSet = l.OutOfOrderTimeWindow, false

	h.appendMu.Lock()
	defer h.appendMu.Unlock()
	// Once per push, not per series read from the store: a handover
	// storing batches into this tenant then costs a push at most one
	// batch's Put.
	tl := i.transferLock(h.id)
	tl.RLock()
	defer tl.RUnlock()
	h.pushes++
	push := h.pushes
	var rej rejections
	// storeErr is the first failure to read the store for an old sample,
	// logged once per push rather than once per sample.
	var storeErr error
	r := ingesterpb.NewSeriesReader(encoded)
	for r.Next() {
		if r.Kind() == ingesterpb.Exemplars {
			if !ps.exLooked {
				ps.exStore, ps.exLooked = h.exemplars.storage(i.exemplarLimit(h.id)), true
			}
			i.judgeExemplars(h, ps.exStore, r, ps)
			continue
		}
		s, created, err := h.getOrCreate(r.Labels(), &ps.sc, i.newRef, lim)
		if err != nil {
			if !errors.Is(err, errPerUserSeriesLimit) && !errors.Is(err, errPerMetricSeriesLimit) {
				return 0, rej, apierr.New(apierr.BadData, "ingester: push: %s", err)
			}
			rej.series(err, r.Len(), l, r.Labels(), &ps.sc.b)
			continue
		}
		if created {
			// New in memory, not necessarily new: it may have been
			// forgotten after its chunks were flushed.
			i.restoreLastFromStore(h, []*memSeries{s})
		}
		// A series twice in one push gets two series records; replay maps
		// both to the same series, so that costs nothing but bytes.
		if !s.logged {
			ps.newSeries = append(ps.newSeries, s)
		}
		hasLast, last := s.hasLast, s.last
		if s.pendingPush == push {
			// Seen earlier in this push: its accepted samples are newer.
			hasLast, last = true, s.pending
		}
		judge := func(smp sample) {
			verdict := check(hasLast, last, smp)
			if verdict == outOfOrder {
				var err error
				if verdict, err = i.judgeOld(h, s, smp, ps); err != nil && storeErr == nil {
					storeErr = err
				}
			}
			switch verdict {
			case accept:
				ps.samples = append(ps.samples, refSample{ref: s.ref, sample: smp})
				ps.series = append(ps.series, s)
				hasLast, last = true, smp
				s.pendingPush, s.pending = push, smp
			case acceptOutOfOrder:
				ps.ooo = append(ps.ooo, refSample{ref: s.ref, sample: smp})
				ps.oooSeries = append(ps.oooSeries, s)
			case duplicate:
			default:
				rej.sample(verdict, s.lset, smp.T, last.T, ps)
			}
		}
		if !r.Histograms() {
			for t, v, ok := r.NextSample(); ok; t, v, ok = r.NextSample() {
				if hasLast && t <= last.T {
					judge(sample{T: t, V: v})
					continue
				}
				// The common case, a newer sample, without judge's call.
				ps.samples = append(ps.samples, refSample{ref: s.ref, sample: sample{T: t, V: v}})
				ps.series = append(ps.series, s)
				hasLast, last = true, sample{T: t, V: v}
				s.pendingPush, s.pending = push, last
			}
			continue
		}
		for {
			t, h, fh, ok, err := r.NextHistogram()
			if err != nil {
				return 0, rej, apierr.New(apierr.BadData, "ingester: push: series %s: %s", s.lset, err)
			}
			if !ok {
				break
			}
			smp := sample{T: t, H: h, FH: fh}
			if err := validHistogram(smp); err != nil {
				rej.histogram(err, s.lset, t)
				continue
			}
			n, nOOO := len(ps.samples), len(ps.ooo)
			judge(smp)
			// The WAL logs the bytes as they came.
			switch {
			case len(ps.samples) > n:
				ps.histRaw = append(ps.histRaw, r.HistogramBytes())
			case len(ps.ooo) > nOOO:
				ps.oooHistRaw = append(ps.oooHistRaw, r.HistogramBytes())
			}
		}
	}
	if storeErr != nil {
		i.logger.Error("cannot read stored samples to tell retries from new old samples; judged as if the store did not hold them", "tenant", h.id, "err", storeErr)
	}
	if rej.n > 0 {
		for why, n := range rej.byReason {
			if n > 0 {
				i.m.samplesRejected.WithLabelValues(h.id, reasonLabels[why]).Add(float64(n))
			}
		}
	}
	if err := r.Err(); err != nil {
		return 0, rej, apierr.New(apierr.BadData, "ingester: push: %s", err)
	}
	if len(ps.samples) == 0 && len(ps.ooo) == 0 && len(ps.newSeries) == 0 && len(ps.exemplars) == 0 {
		rej.exemplars = ps.exRefused
		return 0, rej, nil
	}
	if err := i.logAndAppend(h, ps); err != nil {
		return 0, rej, err
	}
	rej.exemplars = ps.exRefused
	return len(ps.samples) + len(ps.ooo), rej, nil
}

// judgeOld decides a sample older than its series' last one: an exact
// repeat of a sample the series holds is a duplicate (a client's retry,
// perhaps of a request some replicas took and others did not), another
// value at a held timestamp conflicts, and anything else is stored out of
// order if the tenant's window lets it in, else refused as out of order.
// It looks in the push's accepted samples, then memory, then the store: off
// the hot path, since only old samples get here. A sample the store cannot
// be read for is judged as if the store did not hold it, with the error for
// the caller to log: retrying a 5xx would not repair the store.
func (i *Ingester) judgeOld(h *tenantHead, s *memSeries, smp sample, ps *pushState) (verdict, error) {
	// Samples accepted earlier in this push are not in memory yet.
	held, found := ps.acceptedAt(s.ref, smp.T)
	var err error
	if !found {
		var inStore bool
		if held, found, inStore = s.sampleAt(smp.T); !found && inStore {
			held, found, err = i.storedSampleAt(h, s, smp.T)
		}
	}
	switch {
	case found && chunks.Same(held, smp):
		return duplicate, nil
	case found:
		return conflicting, nil
	case smp.T >= ps.minOOO(h):
		return acceptOutOfOrder, err
	default:
		return outOfOrder, err
	}
}

// storedSampleAt reads the store for a sample of s at t that memory does
// not hold. A series that does not know how far its stored samples reach
// learns it first, so that its next old samples after that need no read.
// The caller holds the tenant's transferLock for reading.
func (i *Ingester) storedSampleAt(h *tenantHead, s *memSeries, t int64) (sample, bool, error) {
	s.mu.Lock()
	known, storeMaxT := s.storeKnown, s.storeMaxT
	s.mu.Unlock()
	if !known {
		// Only how far the store reaches: the series' last sample is not
		// touched in the middle of a push that judged against it.
		newest := int64(math.MinInt64)
		err := i.store.LastSamples(h.id, []labels.Labels{s.lset}, func(_ int, smp sample) { newest = smp.T })
		if err != nil {
			return sample{}, false, err
		}
		s.learnStoreMaxT(newest)
		s.mu.Lock()
		known, storeMaxT = s.storeKnown, s.storeMaxT
		s.mu.Unlock()
	}
	if known && t > storeMaxT {
		return sample{}, false, nil
	}
	return i.store.SampleAt(h.id, s.lset, t)
}

// restoreLastFromStore gives series created in memory the newest sample the
// store holds of them, so that a series forgotten after its flush keeps its
// order and duplicate checks, and tells them how far the store reaches. A
// store that cannot be read is logged and leaves them without: a write is
// not refused for it.
// The caller holds the tenant's transferLock for reading.
func (i *Ingester) restoreLastFromStore(h *tenantHead, series []*memSeries) {
	lsets := make([]labels.Labels, len(series))
	newest := make([]int64, len(series))
	for k, s := range series {
		lsets[k], newest[k] = s.lset, math.MinInt64
	}
	err := i.store.LastSamples(h.id, lsets, func(k int, smp sample) {
		series[k].restoreLast(smp)
		h.observe(smp.T)
		newest[k] = smp.T
	})
	if err != nil {
		i.logger.Error("cannot read the last stored samples of series; their older samples are not checked against the store", "tenant", h.id, "series", len(series), "err", err)
		return
	}
	for k, s := range series {
		s.learnStoreMaxT(newest[k])
	}
}

// logAndAppend writes the push's records to the WAL and then appends the
// samples to memory; the WAL write comes first so that nothing visible to a
// query can be lost by a crash.
func (i *Ingester) logAndAppend(h *tenantHead, ps *pushState) error {
	ps.buf = ps.buf[:0]
	// Records are cut out of ps.buf once it stops growing: series, then
	// samples, out-of-order samples and exemplars, so that replay meets a
	// ref's series first.
	var endsArr [4]int
	ends := endsArr[:0]
	if len(ps.newSeries) > 0 {
		ps.buf = encodeSeries(ps.buf, h.id, ps.newSeries)
		ends = append(ends, len(ps.buf))
	}
	if len(ps.samples) > 0 {
		ps.buf = encodeSamples(ps.buf, recSamples, ps.samples, ps.histRaw, len(ps.histRaw) > 0)
		ends = append(ends, len(ps.buf))
	}
	if len(ps.ooo) > 0 {
		ps.buf = encodeSamples(ps.buf, recOOOSamples, ps.ooo, ps.oooHistRaw, true)
		ends = append(ends, len(ps.buf))
	}
	if len(ps.exemplars) > 0 {
		ps.buf = encodeExemplars(ps.buf, ps.exemplars)
		ends = append(ends, len(ps.buf))
	}
	var recsArr [4][]byte
	recs := recsArr[:0]
	from := 0
	for _, end := range ends {
		recs = append(recs, ps.buf[from:end])
		from = end
	}
	i.walMu.RLock()
	defer i.walMu.RUnlock()
	start := time.Now()
	if err := i.wal.Log(recs...); err != nil {
		return fmt.Errorf("ingester: write wal: %w", err)
	}
	i.m.walWrite.Observe(time.Since(start).Seconds())
	for _, s := range ps.newSeries {
		s.logged = true
		i.m.seriesCreated.Inc()
	}
	now := time.Now().UnixNano()
	maxT := int64(math.MinInt64)
	for k, smp := range ps.samples {
		s := ps.series[k]
		s.mu.Lock()
		s.append(smp.sample, &i.cfg, now)
		s.mu.Unlock()
		maxT = max(maxT, smp.T)
	}
	h.observe(maxT)
	for k, smp := range ps.ooo {
		s := ps.oooSeries[k]
		s.mu.Lock()
		s.insertOOO(smp.sample, &i.cfg)
		s.lastAppend = now
		s.mu.Unlock()
	}
	i.m.samplesAppended.Add(float64(len(ps.samples) + len(ps.ooo)))
	i.m.oooAppended.Add(float64(len(ps.ooo)))
	if len(ps.exemplars) > 0 {
		i.addExemplars(h, ps.exStore, ps)
	}
	i.lastPush.Store(now)
	return nil
}

// validHistogram checks what the chunk appenders assume of a histogram.
func validHistogram(smp sample) error {
	if smp.H != nil {
		return smp.H.Validate()
	}
	return smp.FH.Validate()
}
