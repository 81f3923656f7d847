package ingester

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

// maxTombstones bounds a tenant's tombstones: every read of the tenant
// checks each series against each of them. They end with retention.
const maxTombstones = 1000

// deletions are the tombstones and generations of every tenant, as the
// store holds them. Readers take a tenant's slice, which is never changed
// in place, so a read needs the lock only to find it.
type deletions struct {
	mu       sync.RWMutex
	byTenant map[string]chunks.Deletions
}

func (d *deletions) tombstones(tenantID string) []chunks.Tombstone {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.byTenant[tenantID].Tombstones
}

func (d *deletions) generation(tenantID string) int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.byTenant[tenantID].Generation
}

// tenants are the tenants with deletions.
func (d *deletions) tenants() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Collect(maps.Keys(d.byTenant))
}

func (d *deletions) set(all map[string]chunks.Deletions) {
	d.mu.Lock()
	d.byTenant = all
	d.mu.Unlock()
}

// update changes a tenant's deletions in a copy of the map, so that readers
// holding the old slices never see them change.
func (d *deletions) update(tenantID string, change func(*chunks.Deletions)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	all := maps.Clone(d.byTenant)
	if all == nil {
		all = map[string]chunks.Deletions{}
	}
	td := all[tenantID]
	change(&td)
	all[tenantID] = td
	d.byTenant = all
}

// loadDeletions reads the tombstones from the store: at start, and after
// retention dropped some.
func (i *Ingester) loadDeletions() error {
	all, err := i.store.Deletions()
	if err != nil {
		return fmt.Errorf("ingester: load deletions: %w", err)
	}
	i.deleted.set(all)
	return nil
}

// DeleteSeries implements ingesterpb.IngesterServer: it records a tombstone
// in the store, durably, and hides its samples from reads from then on.
// The tombstone ends at the newer of the querier's clock and the newest
// sample here of the series it selects, as Prometheus clamps a deletion to
// each series' newest sample: a deletion without an end hides everything
// those series hold, future-dated samples included, and nothing written
// later with a later time. An ingester handing over refuses deletions
// (Unavailable): its successors would not get the tombstone.
func (i *Ingester) DeleteSeries(ctx context.Context, req *ingesterpb.DeleteSeriesRequest) (*ingesterpb.DeleteSeriesResponse, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, apierr.ToGRPC(apierr.New(apierr.Unauthorized, "%s", err))
	}
	ms, err := ingesterpb.ToMatchers(req.Matchers)
	if err != nil {
		return nil, apierr.ToGRPC(apierr.New(apierr.BadData, "delete series: %s", err))
	}
	if len(ms) == 0 {
		return nil, apierr.ToGRPC(apierr.New(apierr.BadData, "delete series: no matchers"))
	}
	// One deletion at a time, so that the limit holds, a reload after
	// retention does not drop a tombstone added meanwhile, and a handover
	// reads the tombstones either with this one or after refusing it.
	i.deleteMu.Lock()
	defer i.deleteMu.Unlock()
	i.pushGate.RLock()
	leaving := i.handingOver
	i.pushGate.RUnlock()
	if leaving {
		return nil, apierr.ToGRPC(apierr.New(apierr.Unavailable, "delete series: ingester is leaving and handing its series over; retry when the ring is settled"))
	}
	newest, err := i.newestSelected(ctx, tenantID, req.NowMs, ms)
	if err != nil {
		return nil, apierr.ToGRPC(fmt.Errorf("delete series: %w", err))
	}
	t := chunks.Tombstone{Matchers: ms, MinTime: req.StartMs, MaxTime: min(req.EndMs, newest)}
	if t.MinTime > t.MaxTime {
		return &ingesterpb.DeleteSeriesResponse{}, nil
	}
	if err := i.addTombstones(tenantID, []chunks.Tombstone{t}, false); err != nil {
		return nil, err
	}
	i.logger.Info("series deleted", "tenant", tenantID, "matchers", fmt.Sprint(ms), "min_time", t.MinTime, "max_time", t.MaxTime)
	return &ingesterpb.DeleteSeriesResponse{}, nil
}

// newestSelected returns the newest sample or exemplar time of the
// tenant's series ms selects, in memory or in the store, or now if that is
// later.
func (i *Ingester) newestSelected(ctx context.Context, tenantID string, now int64, ms []*labels.Matcher) (int64, error) {
	newest := now
	if h := i.head(tenantID, false); h != nil {
		all, err := h.selectSeries(ctx, ms)
		if err != nil {
			return 0, err
		}
		for _, s := range all {
			if last, ok := s.lastSample(); ok {
				newest = max(newest, last.T)
			}
		}
		// An exemplar may be later than its series' samples.
		if st := h.exemplars.storage(i.exemplarLimit(tenantID)); st != nil && now < math.MaxInt64 {
			res, err := st.Select(now+1, math.MaxInt64, ms)
			if err != nil {
				return 0, err
			}
			for _, r := range res {
				for _, e := range r.Exemplars {
					newest = max(newest, e.Ts)
				}
			}
		}
	}
	if now == math.MaxInt64 {
		return newest, nil
	}
	err := i.store.SelectBatches(tenantID, now+1, math.MaxInt64, 1024, nil, func(batch []chunks.SeriesChunks) error {
		for _, sc := range batch {
			for _, c := range sc.Chunks {
				newest = max(newest, c.MaxTime)
			}
		}
		return nil
	}, ms...)
	return newest, err
}

// addTombstones stores the tombstones the tenant lacks, makes reads hide
// them and wakes the pass that deletes the chunks they cover. The caller
// holds deleteMu. Unless transferred (a leaving ingester's, which were
// acknowledged already), they are refused beyond maxTombstones.
func (i *Ingester) addTombstones(tenantID string, ts []chunks.Tombstone, transferred bool) error {
	have := i.deleted.tombstones(tenantID)
	var add []chunks.Tombstone
	for _, t := range ts {
		if !slices.ContainsFunc(have, t.Equal) && !slices.ContainsFunc(add, t.Equal) {
			add = append(add, t)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if n := len(have); !transferred && n >= maxTombstones {
		return apierr.ToGRPC(apierr.New(apierr.TooManyRequests,
			"delete series: tenant %q has %d deletions, the most an ingester keeps; they end when retention passes them", tenantID, n))
	}
	for _, t := range add {
		if err := i.store.AddTombstone(tenantID, t); err != nil {
			return apierr.ToGRPC(err)
		}
		i.deleted.update(tenantID, func(d *chunks.Deletions) {
			d.Tombstones = append(d.Tombstones[:len(d.Tombstones):len(d.Tombstones)], t)
		})
	}
	select {
	case i.purge <- struct{}{}:
	default: // a purge is due already
	}
	return nil
}

// DeletionGeneration implements ingesterpb.IngesterServer. A raise moves
// the generation past the current one even when RaiseTo is not (the
// raising querier's clock is behind the last one's), so that every
// completed deletion changes what caches key by. An unknown (damaged)
// generation is not answered: caches bypass it until a raise replaces it.
func (i *Ingester) DeletionGeneration(ctx context.Context, req *ingesterpb.DeletionGenerationRequest) (*ingesterpb.DeletionGenerationResponse, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, apierr.ToGRPC(apierr.New(apierr.Unauthorized, "%s", err))
	}
	i.deleteMu.Lock()
	defer i.deleteMu.Unlock()
	gen := i.deleted.generation(tenantID)
	if req.RaiseTo <= 0 {
		if gen < 0 {
			return nil, apierr.ToGRPC(apierr.New(apierr.Unavailable, "deletion generation of tenant %q is damaged in the store; the next deletion replaces it", tenantID))
		}
		return &ingesterpb.DeletionGenerationResponse{Generation: gen}, nil
	}
	if req.RaiseTo >= chunks.MaxGeneration-1 {
		return nil, apierr.ToGRPC(apierr.New(apierr.BadData, "deletion generation %d is out of range", req.RaiseTo))
	}
	// gen+1 cannot overflow: generations stay below MaxGeneration, and
	// one that reached MaxGeneration-1 stays there.
	if gen, err = i.raiseGeneration(tenantID, min(max(req.RaiseTo, gen+1), chunks.MaxGeneration-1)); err != nil {
		return nil, err
	}
	return &ingesterpb.DeletionGenerationResponse{Generation: gen}, nil
}

// raiseGeneration raises the tenant's generation to at least gen. The
// caller holds deleteMu.
func (i *Ingester) raiseGeneration(tenantID string, gen int64) (int64, error) {
	if gen <= i.deleted.generation(tenantID) {
		return i.deleted.generation(tenantID), nil
	}
	gen, err := i.store.RaiseGeneration(tenantID, gen)
	if err != nil {
		return 0, apierr.ToGRPC(err)
	}
	i.deleted.update(tenantID, func(d *chunks.Deletions) { d.Generation = gen })
	return gen, nil
}

// receiveDeletions takes a leaving ingester's deletions of a tenant: its
// tombstones, and its generation, which the cluster's must not fall below
// once the ingesters that made the deletion have all left.
func (i *Ingester) receiveDeletions(tenantID string, d *ingesterpb.TenantDeletions) error {
	ts := make([]chunks.Tombstone, 0, len(d.Tombstones))
	for _, w := range d.Tombstones {
		ms, err := ingesterpb.ToMatchers(w.Matchers)
		if err != nil || len(ms) == 0 || w.StartMs > w.EndMs {
			return apierr.ToGRPC(apierr.New(apierr.BadData, "transferred tombstone of tenant %q: bad matchers or range", tenantID))
		}
		ts = append(ts, chunks.Tombstone{Matchers: ms, MinTime: w.StartMs, MaxTime: w.EndMs})
	}
	i.deleteMu.Lock()
	defer i.deleteMu.Unlock()
	if err := i.addTombstones(tenantID, ts, true); err != nil {
		return err
	}
	if d.Generation >= chunks.MaxGeneration {
		i.logger.Warn("transferred deletion generation out of range: ignored", "tenant", tenantID, "generation", d.Generation)
	} else if d.Generation > 0 {
		if _, err := i.raiseGeneration(tenantID, d.Generation); err != nil {
			return err
		}
	}
	return nil
}

// wireDeletions are the tenant's deletions as handover sends them; nil
// when it has none. The caller holds deleteMu.
func (i *Ingester) wireDeletions(tenantID string) *ingesterpb.TenantDeletions {
	i.deleted.mu.RLock()
	d, ok := i.deleted.byTenant[tenantID]
	i.deleted.mu.RUnlock()
	if !ok || (len(d.Tombstones) == 0 && d.Generation <= 0) {
		return nil
	}
	out := &ingesterpb.TenantDeletions{Generation: max(d.Generation, 0)}
	for _, t := range d.Tombstones {
		out.Tombstones = append(out.Tombstones, &ingesterpb.Tombstone{Matchers: ingesterpb.FromMatchers(t.Matchers), StartMs: t.MinTime, EndMs: t.MaxTime})
	}
	return out
}

// interval is a closed range of milliseconds.
type interval struct{ mint, maxt int64 }

// deletedIntervals returns the ranges the tombstones hide of the series
// with labels ls; nil when none applies.
func deletedIntervals(stones []chunks.Tombstone, ls labels.Labels) []interval {
	var out []interval
	for _, t := range stones {
		if t.Matches(ls) {
			out = append(out, interval{t.MinTime, t.MaxTime})
		}
	}
	return out
}

// covered reports whether one of ivs holds all of [mint, maxt].
func covered(ivs []interval, mint, maxt int64) bool {
	for _, iv := range ivs {
		if iv.mint <= mint && maxt <= iv.maxt {
			return true
		}
	}
	return false
}

func deleted(ivs []interval, t int64) bool {
	for _, iv := range ivs {
		if t >= iv.mint && t <= iv.maxt {
			return true
		}
	}
	return false
}

// withoutDeleted returns cs without the samples in ivs: chunks untouched
// by them as they are, chunks wholly inside one dropped, the others
// decoded, filtered and encoded again (as Prometheus re-encodes a chunk a
// tombstone cuts into). A chunk that does not decode whole keeps only the
// samples before the damage, as the store reads it.
func withoutDeleted(cs []chunks.Chunk, ivs []interval) ([]chunks.Chunk, error) {
	if len(ivs) == 0 {
		return cs, nil
	}
	out := make([]chunks.Chunk, 0, len(cs))
	for _, c := range cs {
		touched := false
		for _, iv := range ivs {
			if c.MinTime <= iv.maxt && c.MaxTime >= iv.mint {
				touched = true
			}
		}
		switch {
		case covered(ivs, c.MinTime, c.MaxTime):
			continue
		case !touched:
			out = append(out, c)
			continue
		}
		smps, _ := c.Samples()
		kept := smps[:0]
		for _, s := range smps {
			if !deleted(ivs, s.T) {
				kept = append(kept, s)
			}
		}
		re, err := chunks.Encode(kept, 0)
		if err != nil {
			return nil, fmt.Errorf("re-encode chunk [%d, %d] without deleted samples: %w", c.MinTime, c.MaxTime, err)
		}
		out = append(out, re...)
	}
	return out, nil
}
