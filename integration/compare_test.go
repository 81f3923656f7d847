//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// apiResponse is the Prometheus HTTP API envelope.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`
}

type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

type sample [2]any

type seriesResult struct {
	Metric map[string]string `json:"metric"`
	Value  sample            `json:"value"`
	Values []sample          `json:"values"`
}

func get(base, path string, params url.Values) (*apiResponse, error) {
	resp, err := http.PostForm(base+path, params)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out apiResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("status %d, body %q: %w", resp.StatusCode, tail(body, 300), err)
	}
	return &out, nil
}

// diffResponses returns "" when two API responses carry the same result:
// same status and error type, same series, timestamps equal, values within
// 1e-9 relative (NaN equals NaN).
func diffResponses(want, got *apiResponse) string {
	if want.Status != got.Status || want.ErrorType != got.ErrorType {
		return fmt.Sprintf("status %s/%s (%s) vs %s/%s (%s)", want.Status, want.ErrorType, want.Error, got.Status, got.ErrorType, got.Error)
	}
	if want.Status != "success" {
		return ""
	}
	if !slices.Equal(want.Warnings, got.Warnings) || !slices.Equal(want.Infos, got.Infos) {
		return fmt.Sprintf("annotations %v %v vs %v %v", want.Warnings, want.Infos, got.Warnings, got.Infos)
	}
	var w, g queryData
	if err := json.Unmarshal(want.Data, &w); err != nil {
		return err.Error()
	}
	if err := json.Unmarshal(got.Data, &g); err != nil {
		return err.Error()
	}
	if w.ResultType != g.ResultType {
		return fmt.Sprintf("result type %s vs %s", w.ResultType, g.ResultType)
	}
	if w.ResultType == "scalar" || w.ResultType == "string" {
		var ws, gs sample
		_ = json.Unmarshal(w.Result, &ws)
		_ = json.Unmarshal(g.Result, &gs)
		return diffSamples([]sample{ws}, []sample{gs})
	}
	var ws, gs []seriesResult
	if err := json.Unmarshal(w.Result, &ws); err != nil {
		return err.Error()
	}
	if err := json.Unmarshal(g.Result, &gs); err != nil {
		return err.Error()
	}
	return diffSeries(ws, gs)
}

func diffSeries(want, got []seriesResult) string {
	key := func(s seriesResult) string {
		keys := make([]string, 0, len(s.Metric))
		for k, v := range s.Metric {
			keys = append(keys, k+"="+v)
		}
		slices.Sort(keys)
		return strings.Join(keys, ",")
	}
	sortSeries := func(ss []seriesResult) {
		slices.SortFunc(ss, func(a, b seriesResult) int { return strings.Compare(key(a), key(b)) })
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
			wv, gv = []sample{want[k].Value}, []sample{got[k].Value}
		}
		if d := diffSamples(wv, gv); d != "" {
			return fmt.Sprintf("series {%s}: %s", key(want[k]), d)
		}
	}
	return ""
}

func diffSamples(want, got []sample) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d samples vs %d", len(want), len(got))
	}
	for k := range want {
		if fmt.Sprint(want[k][0]) != fmt.Sprint(got[k][0]) {
			return fmt.Sprintf("sample %d at %v vs %v", k, want[k][0], got[k][0])
		}
		if !sameValue(fmt.Sprint(want[k][1]), fmt.Sprint(got[k][1])) {
			return fmt.Sprintf("sample %d at %v: %v vs %v", k, want[k][0], want[k][1], got[k][1])
		}
	}
	return ""
}

func sameValue(a, b string) bool {
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
	return math.Abs(x-y) <= 1e-9*math.Max(math.Abs(x), math.Abs(y))
}
