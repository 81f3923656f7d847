package ingester

import (
	"context"
	"fmt"
	"maps"
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
// The tombstone ends at the newer of the querier's clock and the tenant's
// newest sample here, so that a deletion without an end hides what was
// written before it, not what comes after (Prometheus clamps a deletion
// to its head's newest sample the same way).
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
	end := req.EndMs
	if h := i.head(tenantID, false); h != nil {
		end = min(end, max(req.NowMs, h.maxT.Load()))
	} else {
		end = min(end, req.NowMs)
	}
	if req.StartMs > end {
		return &ingesterpb.DeleteSeriesResponse{}, nil
	}
	// One deletion at a time, so that the limit holds and a reload after
	// retention does not drop a tombstone added meanwhile.
	i.deleteMu.Lock()
	defer i.deleteMu.Unlock()
	if n := len(i.deleted.tombstones(tenantID)); n >= maxTombstones {
		return nil, apierr.ToGRPC(apierr.New(apierr.TooManyRequests,
			"delete series: tenant %q has %d deletions, the most an ingester keeps; they end when retention passes them", tenantID, n))
	}
	t := chunks.Tombstone{Matchers: ms, MinTime: req.StartMs, MaxTime: end}
	if err := i.store.AddTombstone(tenantID, t); err != nil {
		return nil, apierr.ToGRPC(err)
	}
	i.deleted.update(tenantID, func(d *chunks.Deletions) {
		d.Tombstones = append(d.Tombstones[:len(d.Tombstones):len(d.Tombstones)], t)
	})
	select {
	case i.purge <- struct{}{}:
	default: // a purge is due already
	}
	i.logger.Info("series deleted", "tenant", tenantID, "matchers", fmt.Sprint(ms), "min_time", t.MinTime, "max_time", t.MaxTime)
	return &ingesterpb.DeleteSeriesResponse{}, nil
}

// DeletionGeneration implements ingesterpb.IngesterServer.
func (i *Ingester) DeletionGeneration(ctx context.Context, req *ingesterpb.DeletionGenerationRequest) (*ingesterpb.DeletionGenerationResponse, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, apierr.ToGRPC(apierr.New(apierr.Unauthorized, "%s", err))
	}
	i.deleteMu.Lock()
	defer i.deleteMu.Unlock()
	i.deleted.mu.RLock()
	gen := i.deleted.byTenant[tenantID].Generation
	i.deleted.mu.RUnlock()
	if req.RaiseTo <= gen {
		return &ingesterpb.DeletionGenerationResponse{Generation: gen}, nil
	}
	gen, err = i.store.RaiseGeneration(tenantID, req.RaiseTo)
	if err != nil {
		return nil, apierr.ToGRPC(err)
	}
	i.deleted.update(tenantID, func(d *chunks.Deletions) { d.Generation = gen })
	return &ingesterpb.DeletionGenerationResponse{Generation: gen}, nil
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
