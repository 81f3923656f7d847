package frontend

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// outerEngine evaluates rewritten queries over embedded partial results.
// Its lookback of 1ms makes a placeholder selector at a step read exactly
// the partial's point at that step, never an earlier one.
type outerEngine struct {
	engine *promql.Engine
	parser *planParser
	next   atomic.Uint64
}

func newOuterEngine(maxSamples int) *outerEngine {
	p := &planParser{Parser: parser.NewParser(parser.Options{})}
	return &outerEngine{parser: p, engine: promql.NewEngine(promql.EngineOpts{
		// No registerer: the querier's engine in the same process owns the
		// engine metrics' names.
		Reg:                      nil,
		MaxSamples:               maxSamples,
		Timeout:                  time.Duration(math.MaxInt64),
		LookbackDelta:            time.Millisecond,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   p,
	})}
}

// planParser hands the engine an already rewritten AST by a token query
// string: the engine takes queries as text, and printing the AST and
// parsing it again would move every node's position, which annotations
// report.
type planParser struct {
	parser.Parser
	plans sync.Map
}

func (p *planParser) ParseExpr(qs string) (parser.Expr, error) {
	if e, ok := p.plans.Load(qs); ok {
		return e.(parser.Expr), nil
	}
	return nil, fmt.Errorf("frontend: no plan for %q", qs)
}

// eval evaluates expr (which must not be used again: the engine modifies
// it) over the embedded results, as an instant query when step is 0.
// Annotations are formatted against query, the client's text.
func (o *outerEngine) eval(ctx context.Context, query string, expr parser.Expr, parts []promql.Matrix, start, end, step int64) (*result, error) {
	token := "frontend-plan-" + strconv.FormatUint(o.next.Add(1), 10)
	o.parser.plans.Store(token, expr)
	defer o.parser.plans.Delete(token)
	q := embedded(parts)
	var qry promql.Query
	var err error
	if step == 0 {
		qry, err = o.engine.NewInstantQuery(ctx, q, nil, token, time.UnixMilli(start))
	} else {
		qry, err = o.engine.NewRangeQuery(ctx, q, nil, token, time.UnixMilli(start), time.UnixMilli(end), time.Duration(step)*time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("frontend: outer query: %w", err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, executionError(res.Err)
	}
	r := &result{}
	r.warnings, r.infos = res.Warnings.AsStrings(query, 10, 10)
	switch v := res.Value.(type) {
	case promql.Matrix:
		// Close returns the points to the engine's pool: copy them.
		r.typ = parser.ValueTypeMatrix
		r.matrix = make(promql.Matrix, len(v))
		for k, s := range v {
			if len(s.Histograms) > 0 {
				return nil, errHistograms
			}
			r.matrix[k] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats)}
		}
	case promql.Vector:
		r.typ = parser.ValueTypeVector
		r.matrix = make(promql.Matrix, 0, len(v))
		for _, s := range v {
			if s.H != nil {
				return nil, errHistograms
			}
			r.matrix = append(r.matrix, promql.Series{Metric: s.Metric, Floats: []promql.FPoint{{T: s.T, F: s.F}}})
		}
	case promql.Scalar:
		r.typ, r.scalar = parser.ValueTypeScalar, v
	default:
		return nil, fmt.Errorf("frontend: outer query answered %s", res.Value.Type())
	}
	return r, nil
}

// executionError answers an error of the outer evaluation as the API
// answers the same error of a query: a cancelled or timed-out query is
// 503, anything else an execution error, 422.
func executionError(err error) error {
	code, typ := http.StatusUnprocessableEntity, "execution"
	var (
		canceled promql.ErrQueryCanceled
		timeout  promql.ErrQueryTimeout
	)
	switch {
	case errors.As(err, &canceled), errors.Is(err, context.Canceled):
		code, typ = http.StatusServiceUnavailable, "canceled"
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		code, typ = http.StatusServiceUnavailable, "timeout"
	}
	return &downstreamError{code: code, body: errorBody(typ, err.Error())}
}

// embedded serves the partial results, leaf k's to the placeholder
// selector {__frontend_embedded__="k"}; each matrix sorted by labels.
type embedded []promql.Matrix

func (e embedded) Querier(int64, int64) (storage.Querier, error) { return e, nil }

func (e embedded) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	for _, m := range ms {
		if m.Name != embeddedLabel {
			continue
		}
		id, err := strconv.Atoi(m.Value)
		if err != nil || id < 0 || id >= len(e) {
			return storage.ErrSeriesSet(fmt.Errorf("frontend: no embedded result %q", m.Value))
		}
		return &matrixSet{m: e[id], k: -1}
	}
	return storage.EmptySeriesSet()
}

func (embedded) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (embedded) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (embedded) Close() error { return nil }

type matrixSet struct {
	m promql.Matrix
	k int
}

func (s *matrixSet) Next() bool                      { s.k++; return s.k < len(s.m) }
func (s *matrixSet) At() storage.Series              { return promql.NewStorageSeries(s.m[s.k]) }
func (*matrixSet) Err() error                        { return nil }
func (*matrixSet) Warnings() annotations.Annotations { return nil }

// withShard returns m's series labelled with shard i, so that equal
// groups of different shards stay distinct series.
func withShard(m promql.Matrix, i int) promql.Matrix {
	v := strconv.Itoa(i)
	out := make(promql.Matrix, len(m))
	for k, s := range m {
		b := labels.NewBuilder(s.Metric)
		out[k] = promql.Series{Metric: b.Set(shardLabel, v).Labels(), Floats: s.Floats}
	}
	return out
}

// sortByLabels sorts m by labels, as a storage select answers.
func sortByLabels(m promql.Matrix) {
	slices.SortFunc(m, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
}
