package frontend

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/orrery/orrery/queryplan"
)

// evalOuter evaluates a plan's expr (which must not be used again: the
// engine modifies it) over the embedded results, as an instant query when
// step is 0. Annotations are formatted against query, the client's text.
func evalOuter(ctx context.Context, o *queryplan.Outer, query string, expr parser.Expr, parts []promql.Matrix, start, end, step int64) (*result, error) {
	v, annos, err := o.Eval(ctx, expr, parts, start, end, step)
	if err != nil {
		return nil, executionError(err)
	}
	r := &result{}
	r.warnings, r.infos = annos.AsStrings(query, 10, 10)
	switch v := v.(type) {
	case promql.Matrix:
		r.typ, r.matrix = parser.ValueTypeMatrix, v
		for _, s := range v {
			if len(s.Histograms) > 0 {
				return nil, errHistograms
			}
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
		return nil, fmt.Errorf("frontend: outer query answered %s", v.Type())
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
