package queryplan

import (
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"

	"github.com/orrery/orrery/querier/shard"
)

// How a query is sharded (docs/architecture.md, "Query frontend" and
// "Pushdown"):
//
// A shardable aggregation is sum, min, max, count or group over a
// series-local argument: one selector, wrapped only in per-series
// functions (rate, *_over_time, abs, …), unary minus and arithmetic or
// comparison with number literals, so that each input series makes at
// most one output series. Each of n partial queries aggregates the series
// of one shard; the frontend aggregates the partials again (count as a
// sum). It is exact because every series is in exactly one shard.
//
// Not avg, topk or bottomk, though Mimir shards them: avg as sum over
// count reads every series twice, overflows where Prometheus's
// incremental mean does not, and loses the metric name of avg by
// (__name__); a topk of the shards' topk keeps other series than
// Prometheus among equal values, since which of a tie upstream's heap
// keeps depends on the order it saw the series in.
//
// Where the argument drops the metric name (a function, arithmetic), two
// series of different names could collide into one label set, which
// Prometheus reports as an error; sharded, they might land in different
// shards and not collide. So such an argument shards only when its
// selector names one metric.
//
// Not sharded: aggregations inside a subquery or a range function's
// argument, inside absent(), or over anything else (another aggregation,
// a binary operation between vectors, label_replace, …): that part of the
// query is sent whole, unsharded.
//
// The rewritten query replaces each shardable aggregation, and each
// remaining subtree that reads data, with a placeholder selector of the
// embedded partial results; the frontend's own engine evaluates it over
// those results only.

const (
	// embeddedLabel names the partial result a placeholder selector reads.
	embeddedLabel = "__frontend_embedded__"
	// shardLabel keeps the partial results of different shards apart in
	// the outer evaluation; the outer aggregation always drops it.
	shardLabel = "__frontend_shard__"
)

// Leaf is one partial query of a sharded query.
type Leaf struct {
	// Text is the original query with everything outside the partial's
	// subtree blanked, so the downstream's annotation positions are those
	// of the whole query.
	Text string
	// Sharded leaves run once per share of the series, each share's
	// result labelled apart (WithShard).
	Sharded bool
}

// Plan is a query rewritten for sharding: Expr reads leaf k's result
// through the placeholder selector {__frontend_embedded__="k"}.
type Plan struct {
	Expr   parser.Expr
	Leaves []Leaf
}

// planner rewrites one parsed query.
type planner struct {
	query  string
	leaves []Leaf
}

// New rewrites expr (parsed from query) for sharding, or returns nil
// when it has no shardable aggregation. expr is modified: the caller
// parses a fresh one for each evaluation.
func New(query string, expr parser.Expr) *Plan {
	if !containsShardable(expr) {
		return nil
	}
	p := &planner{query: query}
	out := p.rewrite(expr)
	if readsOutsidePlaceholders(out) {
		// A subtree the rewrite kept (a scalar one, such as
		// scalar(up{job="a"}) or an aggregation's parameter) would be
		// evaluated over the embedded results only, where its selectors
		// find nothing: the query is sent whole instead.
		return nil
	}
	return &Plan{Expr: out, Leaves: p.leaves}
}

// readsOutsidePlaceholders reports whether a rewritten query still has a
// selector other than a placeholder of embedded results.
func readsOutsidePlaceholders(e parser.Expr) bool {
	found := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if len(vs.LabelMatchers) != 1 || vs.LabelMatchers[0].Name != embeddedLabel {
				found = true
			}
		}
		return nil
	})
	return found
}

func (p *planner) rewrite(e parser.Expr) parser.Expr {
	if agg, ok := e.(*parser.AggregateExpr); ok && shardable(agg) {
		return p.rewriteAggregation(agg)
	}
	if !containsShardable(e) {
		if e.Type() == parser.ValueTypeVector && readsData(e) {
			return p.embed(Leaf{Text: p.blank(e.PositionRange())}, e.PositionRange())
		}
		return e
	}
	switch n := e.(type) {
	case *parser.ParenExpr:
		n.Expr = p.rewrite(n.Expr)
	case *parser.UnaryExpr:
		n.Expr = p.rewrite(n.Expr)
	case *parser.BinaryExpr:
		n.LHS, n.RHS = p.rewrite(n.LHS), p.rewrite(n.RHS)
	case *parser.Call:
		for k, a := range n.Args {
			n.Args[k] = p.rewrite(a)
		}
	case *parser.AggregateExpr:
		n.Expr = p.rewrite(n.Expr)
		if n.Param != nil {
			n.Param = p.rewrite(n.Param)
		}
	}
	return e
}

// rewriteAggregation replaces a shardable aggregation with the
// aggregation of its shards' partial results.
func (p *planner) rewriteAggregation(agg *parser.AggregateExpr) parser.Expr {
	pr := agg.PosRange
	// Equal groups of two shards must stay apart until the outer
	// aggregation.
	grouping := agg.Grouping
	if agg.Without {
		grouping = append(append([]string(nil), grouping...), shardLabel)
	}
	op := agg.Op
	if op == parser.COUNT {
		op = parser.SUM
	}
	ph := p.embed(Leaf{Text: p.blank(pr), Sharded: true}, pr)
	return &parser.AggregateExpr{Op: op, Expr: ph, Param: agg.Param, Grouping: grouping, Without: agg.Without, PosRange: pr}
}

// embed adds a leaf and returns its placeholder, positioned where the
// subtree it replaces was, so the outer engine's annotations point there.
func (p *planner) embed(l Leaf, pr posrange.PositionRange) parser.Expr {
	id := len(p.leaves)
	p.leaves = append(p.leaves, l)
	return &parser.VectorSelector{
		LabelMatchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, embeddedLabel, strconv.Itoa(id))},
		PosRange:      pr,
	}
}

// blank returns the query with every byte outside pr a space (newlines
// kept, so line:column positions stay).
func (p *planner) blank(pr posrange.PositionRange) string {
	b := []byte(p.query)
	for k := range b {
		if (k < int(pr.Start) || k >= int(pr.End)) && b[k] != '\n' {
			b[k] = ' '
		}
	}
	return string(b)
}

// shardable reports whether agg can run as partial aggregations of shards
// with an exact result.
func shardable(agg *parser.AggregateExpr) bool {
	switch agg.Op {
	case parser.SUM, parser.MIN, parser.MAX, parser.COUNT, parser.GROUP:
	default:
		return false
	}
	sel, dropsName, ok := seriesLocal(agg.Expr)
	if !ok || sel == nil {
		return false
	}
	for _, m := range sel.LabelMatchers {
		if m.Name == shard.Label {
			// The query picks its shard itself; a second shard matcher
			// would be refused by the ingesters.
			return false
		}
	}
	return !dropsName || namesOneMetric(sel)
}

// containsShardable reports whether e has a shardable aggregation outside
// any range context (subquery, range function argument) and absent().
func containsShardable(e parser.Expr) bool {
	switch n := e.(type) {
	case *parser.AggregateExpr:
		if shardable(n) {
			return true
		}
		return containsShardable(n.Expr) || (n.Param != nil && containsShardable(n.Param))
	case *parser.ParenExpr:
		return containsShardable(n.Expr)
	case *parser.UnaryExpr:
		return containsShardable(n.Expr)
	case *parser.BinaryExpr:
		return containsShardable(n.LHS) || containsShardable(n.RHS)
	case *parser.Call:
		// absent() derives its labels from its argument's selector, which
		// a placeholder would replace; a range argument needs raw data.
		if n.Func.Name == "absent" || n.Func.Name == "absent_over_time" {
			return false
		}
		for _, a := range n.Args {
			if a.Type() == parser.ValueTypeMatrix {
				return false
			}
		}
		for _, a := range n.Args {
			if containsShardable(a) {
				return true
			}
		}
	}
	return false
}

// readsData reports whether e has a selector.
func readsData(e parser.Expr) bool {
	found := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if _, ok := n.(*parser.VectorSelector); ok {
			found = true
		}
		return nil
	})
	return found
}

// seriesLocal reports whether e maps each series of its one selector to at
// most one series of the same identity, and whether it drops the metric
// name on the way.
func seriesLocal(e parser.Expr) (sel *parser.VectorSelector, dropsName, ok bool) {
	switch n := e.(type) {
	case *parser.VectorSelector:
		return n, false, true
	case *parser.MatrixSelector:
		vs, ok := n.VectorSelector.(*parser.VectorSelector)
		return vs, false, ok
	case *parser.ParenExpr:
		return seriesLocal(n.Expr)
	case *parser.UnaryExpr:
		sel, dropped, ok := seriesLocal(n.Expr)
		return sel, dropped || n.Op == parser.SUB, ok
	case *parser.BinaryExpr:
		var series parser.Expr
		switch {
		case isConstant(n.LHS):
			series = n.RHS
		case isConstant(n.RHS):
			series = n.LHS
		default:
			return nil, false, false
		}
		sel, dropped, ok := seriesLocal(series)
		filter := n.Op.IsComparisonOperator() && !n.ReturnBool
		// A filter keeps the name its argument has, which a function
		// below it may have dropped already.
		return sel, dropped || !filter, ok
	case *parser.Call:
		if !seriesLocalFuncs[n.Func.Name] {
			return nil, false, false
		}
		for _, a := range n.Args {
			if isConstant(a) {
				continue
			}
			if sel != nil {
				return nil, false, false
			}
			if sel, _, ok = seriesLocal(a); !ok {
				return nil, false, false
			}
		}
		return sel, true, sel != nil
	}
	return nil, false, false
}

// isConstant reports whether e is a number or string literal, possibly in
// parentheses or negated: the same for every series and step.
func isConstant(e parser.Expr) bool {
	switch n := unparen(e).(type) {
	case *parser.NumberLiteral, *parser.StringLiteral:
		return true
	case *parser.UnaryExpr:
		return isConstant(n.Expr)
	}
	return false
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// namesOneMetric reports whether the selector can only match series of one
// metric name.
func namesOneMetric(vs *parser.VectorSelector) bool {
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return true
		}
	}
	return false
}

// seriesLocalFuncs map each input series to at most one output series, of
// the same labels but for the metric name. Not here: label_replace and
// label_join (they can merge series into one label set, an error
// unsharded that sharding could hide), absent*, sort*, scalar, vector,
// histogram_quantile (reads several bucket series together), and the
// experimental functions.
var seriesLocalFuncs = map[string]bool{
	"rate": true, "irate": true, "increase": true, "delta": true, "idelta": true, "deriv": true,
	"predict_linear": true, "resets": true, "changes": true,
	"avg_over_time": true, "min_over_time": true, "max_over_time": true, "sum_over_time": true,
	"count_over_time": true, "last_over_time": true, "present_over_time": true,
	"stddev_over_time": true, "stdvar_over_time": true, "quantile_over_time": true,
	"abs": true, "ceil": true, "floor": true, "round": true, "clamp": true, "clamp_min": true, "clamp_max": true,
	"exp": true, "ln": true, "log2": true, "log10": true, "sqrt": true, "sgn": true,
	"deg": true, "rad": true, "sin": true, "cos": true, "tan": true, "asin": true, "acos": true, "atan": true,
	"sinh": true, "cosh": true, "tanh": true, "asinh": true, "acosh": true, "atanh": true,
	"timestamp": true, "minute": true, "hour": true, "day_of_month": true, "day_of_week": true,
	"day_of_year": true, "days_in_month": true, "month": true, "year": true,
	"histogram_count": true, "histogram_sum": true, "histogram_avg": true,
	"histogram_fraction": true, "histogram_stddev": true, "histogram_stdvar": true,
}
