package apicompare

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Response is the API's envelope.
type Response struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`
}

// QueryData is a query answer's data.
type QueryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// Sample is [<seconds>, "<value>"].
type Sample [2]any

// Series is one series of a vector (Value, or Histogram for a native
// histogram sample) or a matrix (Values and Histograms: a series may carry
// both, each in time order).
type Series struct {
	Metric     map[string]string `json:"metric"`
	Value      Sample            `json:"value"`
	Histogram  *HistogramSample  `json:"histogram"`
	Values     []Sample          `json:"values"`
	Histograms []HistogramSample `json:"histograms"`
}

// HistogramSample is [<seconds>, <histogram>].
type HistogramSample struct {
	T any
	H Histogram
}

// UnmarshalJSON reads [<seconds>, {"count": ..., "sum": ..., "buckets": ...}].
func (s *HistogramSample) UnmarshalJSON(b []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	if len(pair) != 2 {
		return fmt.Errorf("histogram sample of %d elements, not 2", len(pair))
	}
	if err := json.Unmarshal(pair[0], &s.T); err != nil {
		return err
	}
	return json.Unmarshal(pair[1], &s.H)
}

// Histogram is a native histogram as the API writes it: count and sum, and
// its buckets that are not empty, each [<boundary rule>, "<lower>",
// "<upper>", "<count>"] where the rule (0 to 3) tells which ends are
// inclusive.
type Histogram struct {
	Count   string   `json:"count"`
	Sum     string   `json:"sum"`
	Buckets [][4]any `json:"buckets"`
}

// Tolerance is the largest relative difference of two values judged equal.
const Tolerance = 1e-9

// DiffData returns "" when two answers' data carry the same result, else
// what differs. Each relative difference between unequal values is given
// to seen, when set.
func DiffData(want, got json.RawMessage, seen func(rel float64)) string {
	var w, g QueryData
	if err := json.Unmarshal(want, &w); err != nil {
		return err.Error()
	}
	if err := json.Unmarshal(got, &g); err != nil {
		return err.Error()
	}
	if w.ResultType != g.ResultType {
		return fmt.Sprintf("result type %s vs %s", w.ResultType, g.ResultType)
	}
	if w.ResultType == "scalar" || w.ResultType == "string" {
		var ws, gs Sample
		_ = json.Unmarshal(w.Result, &ws)
		_ = json.Unmarshal(g.Result, &gs)
		return diffSamples([]Sample{ws}, []Sample{gs}, seen)
	}
	var ws, gs []Series
	if err := json.Unmarshal(w.Result, &ws); err != nil {
		return err.Error()
	}
	if err := json.Unmarshal(g.Result, &gs); err != nil {
		return err.Error()
	}
	return diffSeries(ws, gs, w.ResultType == "matrix", seen)
}

func diffSeries(want, got []Series, matrix bool, seen func(float64)) string {
	key := func(s Series) string {
		keys := make([]string, 0, len(s.Metric))
		for k, v := range s.Metric {
			keys = append(keys, k+"="+v)
		}
		slices.Sort(keys)
		return strings.Join(keys, ",")
	}
	sortSeries := func(ss []Series) {
		slices.SortFunc(ss, func(a, b Series) int { return strings.Compare(key(a), key(b)) })
	}
	sortSeries(want)
	sortSeries(got)
	if len(want) != len(got) {
		return fmt.Sprintf("%d series vs %d", len(want), len(got))
	}
	for k := range want {
		if key(want[k]) != key(got[k]) {
			return fmt.Sprintf("series {%s} vs {%s}", key(want[k]), key(got[k]))
		}
		if d := diffPoints(want[k], got[k], matrix, seen); d != "" {
			return fmt.Sprintf("series {%s}: %s", key(want[k]), d)
		}
	}
	return ""
}

// diffPoints compares one series' floats and histograms.
func diffPoints(want, got Series, matrix bool, seen func(float64)) string {
	if matrix {
		if d := diffSamples(want.Values, got.Values, seen); d != "" {
			return d
		}
		return diffHistogramSamples(want.Histograms, got.Histograms, seen)
	}
	switch {
	case want.Histogram == nil && got.Histogram == nil:
		return diffSamples([]Sample{want.Value}, []Sample{got.Value}, seen)
	case want.Histogram == nil:
		return fmt.Sprintf("float %v vs histogram at %v", want.Value[1], got.Histogram.T)
	case got.Histogram == nil:
		return fmt.Sprintf("histogram at %v vs float %v", want.Histogram.T, got.Value[1])
	}
	return diffHistogramSamples([]HistogramSample{*want.Histogram}, []HistogramSample{*got.Histogram}, seen)
}

func diffHistogramSamples(want, got []HistogramSample, seen func(float64)) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d histograms vs %d", len(want), len(got))
	}
	for k := range want {
		if fmt.Sprint(want[k].T) != fmt.Sprint(got[k].T) {
			return fmt.Sprintf("histogram %d at %v vs %v", k, want[k].T, got[k].T)
		}
		if d := DiffHistogram(want[k].H, got[k].H, seen); d != "" {
			return fmt.Sprintf("histogram %d at %v: %s", k, want[k].T, d)
		}
	}
	return ""
}

// DiffHistogram returns "" when two histograms have the same count, sum
// and buckets (same boundary rules, boundaries and counts), values within
// Tolerance; else what differs.
func DiffHistogram(want, got Histogram, seen func(float64)) string {
	if !SameValue(want.Count, got.Count, seen) {
		return fmt.Sprintf("count %s vs %s", want.Count, got.Count)
	}
	if !SameValue(want.Sum, got.Sum, seen) {
		return fmt.Sprintf("sum %s vs %s", want.Sum, got.Sum)
	}
	if len(want.Buckets) != len(got.Buckets) {
		return fmt.Sprintf("%d buckets %v vs %d %v", len(want.Buckets), want.Buckets, len(got.Buckets), got.Buckets)
	}
	for k, w := range want.Buckets {
		g := got.Buckets[k]
		if fmt.Sprint(w[0]) != fmt.Sprint(g[0]) {
			return fmt.Sprintf("bucket %d: boundary rule %v vs %v", k, w[0], g[0])
		}
		for j, what := range []string{"lower", "upper", "count"} {
			if !SameValue(fmt.Sprint(w[j+1]), fmt.Sprint(g[j+1]), seen) {
				return fmt.Sprintf("bucket %d: %s %v vs %v (%v vs %v)", k, what, w[j+1], g[j+1], w, g)
			}
		}
	}
	return ""
}

func diffSamples(want, got []Sample, seen func(float64)) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d samples vs %d", len(want), len(got))
	}
	for k := range want {
		if fmt.Sprint(want[k][0]) != fmt.Sprint(got[k][0]) {
			return fmt.Sprintf("sample %d at %v vs %v", k, want[k][0], got[k][0])
		}
		if !SameValue(fmt.Sprint(want[k][1]), fmt.Sprint(got[k][1]), seen) {
			return fmt.Sprintf("sample %d at %v: %v vs %v", k, want[k][0], want[k][1], got[k][1])
		}
	}
	return ""
}

// SameValue reports whether two values as the API writes them are equal
// within Tolerance; NaN equals NaN.
func SameValue(a, b string, seen func(rel float64)) bool {
	if a == b {
		return true
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	if math.IsNaN(x) && math.IsNaN(y) {
		return true
	}
	rel := math.Abs(x-y) / math.Max(math.Abs(x), math.Abs(y))
	if seen != nil {
		seen(rel)
	}
	return rel <= Tolerance
}
