package frontend

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/orrery/orrery/querier/resultcodec"
)

// result is one evaluated query or part: a matrix for range queries and
// instant vectors (each series one point at the query's time), a scalar
// or a string, with the annotations the API would report.
type result struct {
	typ      parser.ValueType
	matrix   promql.Matrix
	scalar   promql.Scalar
	str      promql.String
	warnings []string
	infos    []string
}

// annotated says whether the result carries any warning or info: such a
// result is never cached, since a cached answer could not repeat them for
// exactly the steps they belong to.
func (r *result) annotated() bool { return len(r.warnings) > 0 || len(r.infos) > 0 }

// errHistograms is a downstream answer with native histograms, which the
// frontend does not merge: the query is then passed through whole.
var errHistograms = errors.New("the answer has native histograms")

// mentionsHistograms reports whether a part's answer has an annotation
// about histograms. Such a part may have dropped or changed what its
// series gave for a reason that spans the whole query (a sum over a mix
// of floats and histograms is no answer at all, while the float-only
// shards answer numbers), so merging the parts could give an answer the
// whole query never gives: the query is passed through whole instead.
func (r *result) mentionsHistograms() bool {
	for _, a := range slices.Concat(r.warnings, r.infos) {
		if strings.Contains(a, "histogram") {
			return true
		}
	}
	return false
}

// downstreamError is a part's non-success answer, given to the client as
// the querier wrote it: its status and body are Prometheus's error.
type downstreamError struct {
	code int
	body []byte
}

func (e *downstreamError) Error() string {
	return fmt.Sprintf("downstream answered %d: %s", e.code, e.body)
}

type apiEnvelope struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
	Warnings []string `json:"warnings"`
	Infos    []string `json:"infos"`
}

type apiSeries struct {
	Metric     map[string]string `json:"metric"`
	Values     []apiPoint        `json:"values"`
	Value      *apiPoint         `json:"value"`
	Histograms json.RawMessage   `json:"histograms"`
	Histogram  json.RawMessage   `json:"histogram"`
}

// apiPoint is [<seconds>, "<value>"] as the Prometheus API writes it.
type apiPoint struct {
	t int64
	f float64
}

func (p *apiPoint) UnmarshalJSON(b []byte) error {
	var raw [2]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var ts json.Number
	if err := json.Unmarshal(raw[0], &ts); err != nil {
		return fmt.Errorf("point timestamp: %w", err)
	}
	sec, err := ts.Float64()
	if err != nil {
		return fmt.Errorf("point timestamp: %w", err)
	}
	var v string
	if err := json.Unmarshal(raw[1], &v); err != nil {
		return fmt.Errorf("point value: %w", err)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return fmt.Errorf("point value: %w", err)
	}
	// The API writes milliseconds as three decimals of seconds.
	p.t, p.f = int64(math.Round(sec*1000)), f
	return nil
}

// decodeResult reads a successful API answer. The caller checked that the
// status code was 200.
func decodeResult(body []byte) (*result, error) {
	var env apiEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("decode downstream answer: %w", err)
	}
	if env.Status != "success" {
		return nil, fmt.Errorf("downstream answer has status %q", env.Status)
	}
	r := &result{warnings: env.Warnings, infos: env.Infos}
	switch env.Data.ResultType {
	case "matrix", "vector":
		r.typ = parser.ValueType(env.Data.ResultType)
		var ss []apiSeries
		if err := json.Unmarshal(env.Data.Result, &ss); err != nil {
			return nil, fmt.Errorf("decode downstream %s: %w", env.Data.ResultType, err)
		}
		r.matrix = make(promql.Matrix, 0, len(ss))
		for _, s := range ss {
			if len(s.Histograms) > 0 || len(s.Histogram) > 0 {
				return nil, errHistograms
			}
			ps := make([]promql.FPoint, 0, len(s.Values)+1)
			for _, p := range s.Values {
				ps = append(ps, promql.FPoint{T: p.t, F: p.f})
			}
			if s.Value != nil {
				ps = append(ps, promql.FPoint{T: s.Value.t, F: s.Value.f})
			}
			r.matrix = append(r.matrix, promql.Series{Metric: labels.FromMap(s.Metric), Floats: ps})
		}
	case "scalar":
		r.typ = parser.ValueTypeScalar
		var p apiPoint
		if err := json.Unmarshal(env.Data.Result, &p); err != nil {
			return nil, fmt.Errorf("decode downstream scalar: %w", err)
		}
		r.scalar = promql.Scalar{T: p.t, V: p.f}
	case "string":
		r.typ = parser.ValueTypeString
		var raw [2]json.RawMessage
		if err := json.Unmarshal(env.Data.Result, &raw); err != nil {
			return nil, fmt.Errorf("decode downstream string: %w", err)
		}
		var ts json.Number
		var v string
		if err := json.Unmarshal(raw[0], &ts); err != nil {
			return nil, fmt.Errorf("decode downstream string: %w", err)
		}
		if err := json.Unmarshal(raw[1], &v); err != nil {
			return nil, fmt.Errorf("decode downstream string: %w", err)
		}
		sec, _ := ts.Float64()
		r.str = promql.String{T: int64(math.Round(sec * 1000)), V: v}
	default:
		return nil, fmt.Errorf("downstream answer has result type %q", env.Data.ResultType)
	}
	return r, nil
}

// decodeBinary reads an answer in resultcodec's form.
func decodeBinary(body []byte) (*result, error) {
	res, err := resultcodec.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("decode downstream answer: %w", err)
	}
	return &result{typ: res.Type, matrix: res.Matrix, scalar: res.Scalar, str: res.String, warnings: res.Warnings, infos: res.Infos}, nil
}

// encode writes r as the Prometheus API writes a query's answer, with
// upstream's own JSON codec.
func (r *result) encode() ([]byte, error) {
	var value parser.Value
	switch r.typ {
	case parser.ValueTypeMatrix:
		value = r.matrix
	case parser.ValueTypeVector:
		vec := make(promql.Vector, 0, len(r.matrix))
		for _, s := range r.matrix {
			for _, p := range s.Floats {
				vec = append(vec, promql.Sample{Metric: s.Metric, T: p.T, F: p.F})
			}
		}
		value = vec
	case parser.ValueTypeScalar:
		value = r.scalar
	case parser.ValueTypeString:
		value = r.str
	default:
		return nil, fmt.Errorf("encode result of type %q", r.typ)
	}
	return v1.JSONCodec{}.Encode(&v1.Response{
		Status:   "success",
		Data:     &v1.QueryData{ResultType: r.typ, Result: value},
		Warnings: r.warnings,
		Infos:    r.infos,
	})
}

// mergeMatrices joins the series of ms by labels, each series' points in
// time order with one point per timestamp, sorted by labels as the engine
// sorts a range query's answer. The inputs are not modified.
func mergeMatrices(ms ...promql.Matrix) promql.Matrix {
	byLabels := map[string]int{}
	var out promql.Matrix
	for _, m := range ms {
		for _, s := range m {
			key := string(s.Metric.Bytes(nil))
			k, ok := byLabels[key]
			if !ok {
				k = len(out)
				byLabels[key] = k
				out = append(out, promql.Series{Metric: s.Metric})
			}
			out[k].Floats = append(out[k].Floats, s.Floats...)
		}
	}
	for k := range out {
		ps := out[k].Floats
		slices.SortStableFunc(ps, func(a, b promql.FPoint) int { return cmp.Compare(a.T, b.T) })
		out[k].Floats = slices.CompactFunc(ps, func(a, b promql.FPoint) bool { return a.T == b.T })
	}
	slices.SortFunc(out, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	return out
}

// clip returns the points of m within [start, end], dropping series left
// without points. m is not modified.
func clip(m promql.Matrix, start, end int64) promql.Matrix {
	var out promql.Matrix
	for _, s := range m {
		lo, _ := slices.BinarySearchFunc(s.Floats, start, func(p promql.FPoint, t int64) int { return cmp.Compare(p.T, t) })
		hi, _ := slices.BinarySearchFunc(s.Floats, end+1, func(p promql.FPoint, t int64) int { return cmp.Compare(p.T, t) })
		if lo < hi {
			out = append(out, promql.Series{Metric: s.Metric, Floats: s.Floats[lo:hi:hi]})
		}
	}
	return out
}

// addUnique appends the strings of add not already in dst, keeping order.
func addUnique(dst []string, add ...string) []string {
	for _, s := range add {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}
