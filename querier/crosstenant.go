package querier

import (
	"context"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// Cross-tenant reads (-tenant-federation.enabled, X-Scope-OrgID: a|b) read
// each tenant's data with that tenant's own ingester calls and merge the
// results, every series labelled with its tenant, as Mimir's tenant
// federation does. A read of one tenant never comes here and never gets
// the label, so its results stay Prometheus's.
const (
	// TenantLabel names the tenant of each series of a cross-tenant read.
	// Matchers on it select tenants instead of going to the ingesters.
	TenantLabel = "__tenant_id__"
	// originalTenantLabel keeps a series' own TenantLabel, which the
	// cross-tenant read would otherwise overwrite (Mimir's rule).
	originalTenantLabel = "original_" + TenantLabel
)

// forTenants splits a cross-tenant read's matchers: those on TenantLabel
// select among ids, the rest go to each selected tenant's ingesters, with
// matchers on originalTenantLabel renamed back to the stored name.
func forTenants(ids []string, ms []*labels.Matcher) (selected []string, rest []*labels.Matcher) {
	selected = slices.Clone(ids)
	for _, m := range ms {
		switch m.Name {
		case TenantLabel:
			selected = slices.DeleteFunc(selected, func(id string) bool { return !m.Matches(id) })
		case originalTenantLabel:
			renamed := *m
			renamed.Name = TenantLabel
			rest = append(rest, &renamed)
		default:
			rest = append(rest, m)
		}
	}
	return selected, rest
}

// withTenant returns lset with TenantLabel set to id, moving a TenantLabel
// the series had to originalTenantLabel.
func withTenant(lset labels.Labels, id string) labels.Labels {
	b := labels.NewBuilder(lset)
	if own := lset.Get(TenantLabel); own != "" {
		b.Set(originalTenantLabel, own)
	}
	return b.Set(TenantLabel, id).Labels()
}

// eachTenant calls f for every tenant concurrently and returns the results
// in the order of ids, or the error of the first tenant in that order that
// failed. f makes its own ingester calls for its one tenant.
func eachTenant[T any](ids []string, f func(id string) (T, error)) ([]T, error) {
	out := make([]T, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for k, id := range ids {
		wg.Go(func() { out[k], errs[k] = f(id) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// selectTenants is Select over several tenants: each selected tenant's
// series, labelled with it, sorted as one set. The fetch limits hold for
// the query as a whole.
func (qr *querier) selectTenants(ctx context.Context, sc queryScope, start, end int64, hints *storage.SelectHints, ms []*labels.Matcher) storage.SeriesSet {
	ids, rest := forTenants(sc.ids, ms)
	type tenantResult struct {
		series []storage.Series
		warns  annotations.Annotations
	}
	results, err := eachTenant(ids, func(id string) (tenantResult, error) {
		set := qr.selectTenant(ctx, sc, id, start, end, hints, rest)
		var r tenantResult
		for set.Next() {
			s := set.At()
			r.series = append(r.series, &tenantSeries{Series: s, lset: withTenant(s.Labels(), id)})
		}
		r.warns = set.Warnings()
		return r, set.Err()
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	var all []storage.Series
	var warns annotations.Annotations
	for _, r := range results {
		all = append(all, r.series...)
		warns.Merge(r.warns)
	}
	// Each tenant's set is sorted and the tenants' series never share
	// labels, but the added label can reorder a tenant's series.
	slices.SortFunc(all, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &sliceSeriesSet{series: all, warns: warns, idx: -1}
}

// tenantSeries is a series of a cross-tenant read, its labels with its
// tenant.
type tenantSeries struct {
	storage.Series
	lset labels.Labels
}

func (s *tenantSeries) Labels() labels.Labels { return s.lset }

type sliceSeriesSet struct {
	series []storage.Series
	warns  annotations.Annotations
	idx    int
}

func (s *sliceSeriesSet) Next() bool                        { s.idx++; return s.idx < len(s.series) }
func (s *sliceSeriesSet) At() storage.Series                { return s.series[s.idx] }
func (s *sliceSeriesSet) Err() error                        { return nil }
func (s *sliceSeriesSet) Warnings() annotations.Annotations { return s.warns }

// labelNamesOfTenants is LabelNames over several tenants: the union of the
// selected tenants' names, with TenantLabel, which every series of the
// read carries. A tenant's own TenantLabel is listed as originalTenantLabel.
func (qr *querier) labelNamesOfTenants(ctx context.Context, ids []string, mint, maxt, limit int64, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
	ids, rest := forTenants(ids, ms)
	var warns syncAnnotations
	perTenant, err := eachTenant(ids, func(id string) ([]string, error) {
		names, w, err := qr.labelNames(ctx, id, mint, maxt, 0, rest)
		warns.merge(w)
		return names, err
	})
	if err != nil {
		return nil, nil, err
	}
	names := sortedUnion(perTenant, 0)
	if len(names) == 0 {
		return nil, warns.a, nil
	}
	for k, n := range names {
		if n == TenantLabel {
			names[k] = originalTenantLabel
		}
	}
	names = append(names, TenantLabel)
	return sortedUnion([][]string{names}, limit), warns.a, nil
}

// syncAnnotations gathers the warnings of tenants read concurrently.
type syncAnnotations struct {
	mu sync.Mutex
	a  annotations.Annotations
}

func (s *syncAnnotations) merge(a annotations.Annotations) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a.Merge(a)
}

// labelValuesOfTenants is LabelValues over several tenants. The values of
// TenantLabel are the selected tenants that have a series matching the
// other matchers.
func (qr *querier) labelValuesOfTenants(ctx context.Context, ids []string, name string, mint, maxt, limit int64, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
	ids, rest := forTenants(ids, ms)
	var warns syncAnnotations
	if name == TenantLabel {
		present, err := eachTenant(ids, func(id string) (bool, error) {
			names, w, err := qr.labelNames(ctx, id, mint, maxt, 1, rest)
			warns.merge(w)
			return len(names) > 0, err
		})
		if err != nil {
			return nil, nil, err
		}
		var out []string
		for k, id := range ids {
			if present[k] {
				out = append(out, id)
			}
		}
		return sortedUnion([][]string{out}, limit), warns.a, nil
	}
	if name == originalTenantLabel {
		name = TenantLabel
	}
	perTenant, err := eachTenant(ids, func(id string) ([]string, error) {
		values, w, err := qr.labelValues(ctx, id, name, mint, maxt, limit, rest)
		warns.merge(w)
		return values, err
	})
	if err != nil {
		return nil, nil, err
	}
	return sortedUnion(perTenant, limit), warns.a, nil
}
