package querier

import (
	"testing"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// Replicas' answers merge into one result per series with each exemplar
// once, series by labels and exemplars by time.
func TestMergeExemplars(t *testing.T) {
	ex := func(trace string, ts int64, v float64) *ingesterpb.Exemplar {
		return &ingesterpb.Exemplar{Labels: ingesterpb.FromLabels(labels.FromStrings("trace_id", trace)), Value: v, TimestampMs: ts}
	}
	a, b := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b")
	got := mergeExemplars([]*ingesterpb.ExemplarQueryResponse{
		{Series: []*ingesterpb.ExemplarSeries{{SeriesLabels: ingesterpb.FromLabels(b), Exemplars: []*ingesterpb.Exemplar{ex("2", 2, 2)}}, {SeriesLabels: ingesterpb.FromLabels(a), Exemplars: []*ingesterpb.Exemplar{ex("1", 1, 1), ex("3", 3, 3)}}}},
		{Series: []*ingesterpb.ExemplarSeries{{SeriesLabels: ingesterpb.FromLabels(a), Exemplars: []*ingesterpb.Exemplar{ex("1", 1, 1), ex("2", 2, 2), ex("3", 3, 3)}}}},
		nil,
	})
	e := func(trace string, ts int64, v float64) exemplar.Exemplar {
		return exemplar.Exemplar{Labels: labels.FromStrings("trace_id", trace), Value: v, Ts: ts, HasTs: true}
	}
	require.Equal(t, []exemplar.QueryResult{
		{SeriesLabels: a, Exemplars: []exemplar.Exemplar{e("1", 1, 1), e("2", 2, 2), e("3", 3, 3)}},
		{SeriesLabels: b, Exemplars: []exemplar.Exemplar{e("2", 2, 2)}},
	}, got)
}
