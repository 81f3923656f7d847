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

// Series is one series of a vector (Value) or a matrix (Values).
type Series struct {
	Metric map[string]string `json:"metric"`
	Value  Sample            `json:"value"`
	Values []Sample          `json:"values"`
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
	return diffSeries(ws, gs, seen)
}

func diffSeries(want, got []Series, seen func(float64)) string {
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
		wv, gv := want[k].Values, got[k].Values
		if wv == nil {
			wv, gv = []Sample{want[k].Value}, []Sample{got[k].Value}
		}
		if d := diffSamples(wv, gv, seen); d != "" {
			return fmt.Sprintf("series {%s}: %s", key(want[k]), d)
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
