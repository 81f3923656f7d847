package queryplan

import (
	"context"
	"fmt"
	"math"
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

// Outer evaluates rewritten queries over embedded partial results. Its
// lookback of 1ms makes a placeholder selector at a step read exactly the
// partial's point at that step, never an earlier one.
type Outer struct {
	engine *promql.Engine
	parser *planParser
	next   atomic.Uint64
}

// NewOuter returns an outer engine that holds at most maxSamples samples
// at once.
func NewOuter(maxSamples int) *Outer {
	p := &planParser{Parser: parser.NewParser(parser.Options{})}
	return &Outer{parser: p, engine: promql.NewEngine(promql.EngineOpts{
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
	return nil, fmt.Errorf("queryplan: no plan for %q", qs)
}

// Eval evaluates expr (a Plan's Expr, which must not be used again: the
// engine modifies it) over parts, leaf k's partial results in parts[k],
// as an instant query at start when step is 0. The value it returns is
// the caller's: a Matrix, Vector or Scalar no longer shared with the
// engine. The error is the engine's, unwrapped.
func (o *Outer) Eval(ctx context.Context, expr parser.Expr, parts []promql.Matrix, start, end, step int64) (parser.Value, annotations.Annotations, error) {
	token := "queryplan-" + strconv.FormatUint(o.next.Add(1), 10)
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
		return nil, nil, fmt.Errorf("queryplan: outer query: %w", err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, res.Warnings, res.Err
	}
	// Close returns the points to the engine's pool: copy them.
	switch v := res.Value.(type) {
	case promql.Matrix:
		out := make(promql.Matrix, len(v))
		for k, s := range v {
			out[k] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats), Histograms: slices.Clone(s.Histograms), DropName: s.DropName}
		}
		return out, res.Warnings, nil
	case promql.Vector:
		return slices.Clone(v), res.Warnings, nil
	case promql.Scalar:
		return v, res.Warnings, nil
	default:
		return nil, res.Warnings, fmt.Errorf("queryplan: outer query answered %s", res.Value.Type())
	}
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
			return storage.ErrSeriesSet(fmt.Errorf("queryplan: no embedded result %q", m.Value))
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

// WithShard returns m's series labelled as share i, so that equal groups
// of different shares stay distinct series until the outer aggregation.
func WithShard(m promql.Matrix, i int) promql.Matrix {
	v := strconv.Itoa(i)
	out := make(promql.Matrix, len(m))
	for k, s := range m {
		b := labels.NewBuilder(s.Metric)
		out[k] = promql.Series{Metric: b.Set(shardLabel, v).Labels(), Floats: s.Floats, Histograms: s.Histograms}
	}
	return out
}

// SortByLabels sorts m by labels, as a storage select answers; the outer
// evaluation needs each part sorted.
func SortByLabels(m promql.Matrix) {
	slices.SortFunc(m, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
}
