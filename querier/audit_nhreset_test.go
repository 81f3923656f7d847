package querier

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
)

type auditOneSeries struct{ s storage.Series }

func (q auditOneSeries) Querier(int64, int64) (storage.Querier, error) { return q, nil }
func (q auditOneSeries) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	return &auditSet{s: []storage.Series{q.s}, k: -1}
}
func (auditOneSeries) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (auditOneSeries) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (auditOneSeries) Close() error { return nil }

type auditSet struct {
	s []storage.Series
	k int
}

func (s *auditSet) Next() bool                        { s.k++; return s.k < len(s.s) }
func (s *auditSet) At() storage.Series                { return s.s[s.k] }
func (s *auditSet) Err() error                        { return nil }
func (s *auditSet) Warnings() annotations.Annotations { return nil }

// HELD: a client's explicit counter reset that the counts do not show
// starts a chunk; the querier's chain merge of a series' chunks answers
// resets, increase and rate as Prometheus 3's TSDB does on the same data.
func TestAuditExplicitCounterResetSurvivesChunkBoundary(t *testing.T) {
	mk := func(c uint64, hint histogram.CounterResetHint) *histogram.Histogram {
		return &histogram.Histogram{CounterResetHint: hint, Count: c, Sum: float64(c), PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{int64(c)}}
	}
	smps := []chunks.Sample{
		{T: 10_000, H: mk(5, histogram.UnknownCounterReset)},
		{T: 20_000, H: mk(6, histogram.UnknownCounterReset)},
		{T: 30_000, H: mk(8, histogram.CounterReset)},
		{T: 40_000, H: mk(9, histogram.UnknownCounterReset)},
	}
	ls := labels.FromStrings("__name__", "h")

	// Prometheus 3's TSDB.
	prom := teststorage.New(t)
	app := prom.Appender(context.Background())
	for _, s := range smps {
		_, err := app.AppendHistogram(0, ls, s.T, s.H.Copy(), nil)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())

	// Orrery: the chunks the ingester holds (its appender cuts at the
	// hint, as Encode does), read as the querier reads them.
	cs, err := chunks.Encode(smps, 0)
	require.NoError(t, err)
	require.Len(t, cs, 2, "the explicit reset starts a chunk")
	var wire []*ingesterpb.Chunk
	for _, c := range cs {
		wire = append(wire, &ingesterpb.Chunk{MinTimeMs: c.MinTime, MaxTimeMs: c.MaxTime, Encoding: uint32(c.Encoding), Data: c.Data})
	}
	ms, err := newMergedSeries(ls, wire, -1<<63)
	require.NoError(t, err)

	engine := NewEngine(Config{LookbackDelta: 5 * time.Minute, MaxSamples: 1e6}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	at := time.UnixMilli(45_000)
	for _, q := range []string{`resets(h[1m])`, `histogram_count(increase(h[1m]))`, `histogram_count(rate(h[1m]))`} {
		require.Equal(t, instantAnswer(t, engine, prom, q, at), instantAnswer(t, engine, auditOneSeries{ms}, q, at), q)
	}
}

// instantAnswer is the engine's answer to q at at over st, as text.
func instantAnswer(t *testing.T, engine *promql.Engine, st storage.Queryable, q string, at time.Time) string {
	t.Helper()
	qry, err := engine.NewInstantQuery(context.Background(), st, nil, q, at)
	require.NoError(t, err)
	defer qry.Close()
	res := qry.Exec(context.Background())
	require.NoError(t, res.Err)
	return res.Value.String()
}
