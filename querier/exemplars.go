package querier

import (
	"cmp"
	"context"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

// ExemplarQuerier implements storage.ExemplarQueryable for
// /api/v1/query_exemplars: the exemplars of the request's tenants, from
// the ingesters of the read set, the copies replicas hold merged into one.
func (q *Queryable) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	return &exemplarQuerier{q: q, ctx: ctx}, nil
}

type exemplarQuerier struct {
	q   *Queryable
	ctx context.Context
}

// Select returns the exemplars of the series matching any of the matcher
// sets within [start, end], series sorted by labels and each series'
// exemplars by time (Prometheus answers in map order; one order for
// both makes answers comparable). A cross-tenant read labels each series
// with its tenant, and matchers on that label choose the tenants.
func (eq *exemplarQuerier) Select(start, end int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	ids, err := tenant.IDsFromContext(eq.ctx)
	if err != nil {
		return nil, apierr.New(apierr.Unauthorized, "%s", err)
	}
	if len(ids) == 1 {
		return eq.selectTenant(ids[0], start, end, sets)
	}
	perTenant, err := eachTenant(ids, func(id string) ([]exemplar.QueryResult, error) {
		var own [][]*labels.Matcher
		for _, set := range sets {
			if selected, rest := forTenants([]string{id}, set); len(selected) == 1 {
				own = append(own, rest)
			}
		}
		if len(own) == 0 {
			return nil, nil
		}
		res, err := eq.selectTenant(id, start, end, own)
		for k := range res {
			res[k].SeriesLabels = withTenant(res[k].SeriesLabels, id)
		}
		return res, err
	})
	if err != nil {
		return nil, err
	}
	out := slices.Concat(perTenant...)
	slices.SortFunc(out, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return out, nil
}

func (eq *exemplarQuerier) selectTenant(tenantID string, start, end int64, sets [][]*labels.Matcher) ([]exemplar.QueryResult, error) {
	req := &ingesterpb.ExemplarQueryRequest{StartMs: start, EndMs: end}
	for _, set := range sets {
		req.MatcherSets = append(req.MatcherSets, &ingesterpb.MatcherSet{Matchers: ingesterpb.FromMatchers(set)})
	}
	answers, _, err := fanout(eq.ctx, eq.q, tenantID, func(ctx context.Context, c ingesterpb.IngesterClient) (*ingesterpb.ExemplarQueryResponse, error) {
		return c.QueryExemplars(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	return mergeExemplars(answers), nil
}

// mergeExemplars merges the ingesters' answers: one result per series, each
// exemplar once (replicas hold the same ones), by time.
func mergeExemplars(answers []*ingesterpb.ExemplarQueryResponse) []exemplar.QueryResult {
	bySeries := map[string]*exemplar.QueryResult{}
	var b labels.ScratchBuilder
	for _, a := range answers {
		for _, s := range a.GetSeries() {
			ls := ingesterpb.ToLabels(&b, s.SeriesLabels)
			key := ls.String()
			r := bySeries[key]
			if r == nil {
				r = &exemplar.QueryResult{SeriesLabels: ls, Exemplars: []exemplar.Exemplar{}}
				bySeries[key] = r
			}
			for _, e := range s.Exemplars {
				r.Exemplars = append(r.Exemplars, exemplar.Exemplar{Labels: ingesterpb.ToLabels(&b, e.Labels), Value: e.Value, Ts: e.TimestampMs, HasTs: true})
			}
		}
	}
	out := make([]exemplar.QueryResult, 0, len(bySeries))
	for _, r := range bySeries {
		slices.SortFunc(r.Exemplars, compareExemplars)
		r.Exemplars = slices.CompactFunc(r.Exemplars, func(a, b exemplar.Exemplar) bool { return compareExemplars(a, b) == 0 })
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return out
}

func compareExemplars(a, b exemplar.Exemplar) int {
	return cmp.Or(cmp.Compare(a.Ts, b.Ts), cmp.Compare(math.Float64bits(a.Value), math.Float64bits(b.Value)), labels.Compare(a.Labels, b.Labels))
}
