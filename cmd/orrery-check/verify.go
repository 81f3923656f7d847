package main

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
)

// verdict is how one answer differs from what was acknowledged.
type verdict struct {
	// Missing counts acknowledged samples (raw) or step values (range)
	// absent from the answer.
	Missing int
	// Extra counts samples or step values that no write could have put
	// there: an unknown series, a time no step has, a duplicate.
	Extra int
	// Wrong counts samples or step values whose value no write sent.
	Wrong int
	// Example describes the first difference found.
	Example string
}

// mismatched reports whether the answer breaks the rules; warned says it
// carried a warning that it may be partial, which excuses missing samples
// but not extra or wrong ones.
func (v verdict) mismatched(warned bool) bool {
	return v.Extra+v.Wrong > 0 || (!warned && v.Missing > 0)
}

func (v *verdict) note(kind *int, format string, args ...any) {
	*kind++
	if v.Example == "" {
		v.Example = fmt.Sprintf(format, args...)
	}
}

// seriesIndex returns the workload series m names, or false when m is not
// exactly one of the workload's series.
func (w *workload) seriesIndex(m model.Metric) (int, bool) {
	if len(m) != 3 || string(m["run"]) != w.run {
		return 0, false
	}
	s := string(m["series"])
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i >= w.series || seriesLabel(i) != s {
		return 0, false
	}
	want := counterName
	if i%2 == 1 {
		want = sineName
	}
	return i, string(m[model.MetricNameLabel]) == want
}

func sameValue(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

// checkRaw compares the raw samples of steps [lo, hi] (an instant query of
// a range selector) with the ledger: every acknowledged sample present
// with its value, other settled samples present with their value or not at
// all, nothing else.
func checkRaw(w *workload, s *settled, m model.Matrix, lo, hi int) verdict {
	var v verdict
	seen := make([][]bool, w.series)
	for _, stream := range m {
		i, ok := w.seriesIndex(stream.Metric)
		if !ok {
			v.note(&v.Extra, "unexpected series %s (%d samples)", stream.Metric, len(stream.Values))
			v.Extra += len(stream.Values) - 1
			continue
		}
		if seen[i] != nil {
			v.note(&v.Extra, "series %s answered twice", stream.Metric)
			continue
		}
		seen[i] = make([]bool, hi-lo+1)
		for _, p := range stream.Values {
			ms := int64(p.Timestamp)
			k, ok := w.stepAt(ms)
			switch {
			case !ok || k < lo || k > hi || s.outcome(k, w.batchOf(i)) == pending:
				v.note(&v.Extra, "%s: sample at %s that no write sent", stream.Metric, fmtMs(ms))
			case seen[i][k-lo]:
				v.note(&v.Extra, "%s: two samples at %s", stream.Metric, fmtMs(ms))
			case !sameValue(float64(p.Value), w.value(i, k)):
				seen[i][k-lo] = true
				v.note(&v.Wrong, "%s at %s: got %v, wrote %v", stream.Metric, fmtMs(ms), p.Value, w.value(i, k))
			default:
				seen[i][k-lo] = true
			}
		}
	}
	for i := range w.series {
		b := w.batchOf(i)
		for k := lo; k <= hi; k++ {
			if s.outcome(k, b) == acked && (seen[i] == nil || !seen[i][k-lo]) {
				v.note(&v.Missing, "series %s: acknowledged sample at %s missing", seriesLabel(i), fmtMs(w.ts(k)))
			}
		}
	}
	return v
}

// checkRange compares a query_range of the workload's selector over steps
// [lo, hi], one point per step, with the ledger. At step k the answer is
// the latest stored sample within the lookback window (lookback before
// k's time, exclusive). Stored samples include every acknowledged one and
// any of the others, so the value must be that of the latest acknowledged
// sample in the window or of a later unacknowledged one, and a point must
// be there when an acknowledged sample is in the window.
func checkRange(w *workload, s *settled, m model.Matrix, lo, hi int, lookback time.Duration) verdict {
	var v verdict
	answered := make([]bool, w.series)
	for _, stream := range m {
		i, ok := w.seriesIndex(stream.Metric)
		if !ok {
			v.note(&v.Extra, "unexpected series %s (%d points)", stream.Metric, len(stream.Values))
			v.Extra += len(stream.Values) - 1
			continue
		}
		if answered[i] {
			v.note(&v.Extra, "series %s answered twice", stream.Metric)
			continue
		}
		answered[i] = true
		points := make(map[int]float64, len(stream.Values))
		for _, p := range stream.Values {
			k, ok := w.stepAt(int64(p.Timestamp))
			if !ok || k < lo || k > hi {
				v.note(&v.Extra, "%s: point at %s, not a step of the query", stream.Metric, fmtMs(int64(p.Timestamp)))
				continue
			}
			points[k] = float64(p.Value)
		}
		checkSeriesSteps(&v, w, s, i, points, lo, hi, lookback)
	}
	for i := range w.series {
		if !answered[i] {
			checkSeriesSteps(&v, w, s, i, nil, lo, hi, lookback)
		}
	}
	return v
}

func checkSeriesSteps(v *verdict, w *workload, s *settled, i int, points map[int]float64, lo, hi int, lookback time.Duration) {
	b := w.batchOf(i)
	for k := lo; k <= hi; k++ {
		got, present := points[k]
		mustHave, allowed := false, false
		for j := k; j >= 0 && time.Duration(w.ts(k)-w.ts(j))*time.Millisecond < lookback; j-- {
			o := s.outcome(j, b)
			if o == pending {
				continue
			}
			if present && sameValue(got, w.value(i, j)) {
				allowed = true
			}
			if o == acked {
				mustHave = true
				break
			}
		}
		switch {
		case present && !allowed && !mustHave && !anyStored(w, s, b, k, lookback):
			v.note(&v.Extra, "series %s: value %v at step %s where no sample was written", seriesLabel(i), got, fmtMs(w.ts(k)))
		case present && !allowed:
			v.note(&v.Wrong, "series %s: value %v at step %s is no sample that may be stored there", seriesLabel(i), got, fmtMs(w.ts(k)))
		case !present && mustHave:
			v.note(&v.Missing, "series %s: no value at step %s though a sample in its lookback was acknowledged", seriesLabel(i), fmtMs(w.ts(k)))
		}
	}
}

// anyStored reports whether any write of batch b settled within the
// lookback window of step k.
func anyStored(w *workload, s *settled, b, k int, lookback time.Duration) bool {
	for j := k; j >= 0 && time.Duration(w.ts(k)-w.ts(j))*time.Millisecond < lookback; j-- {
		if s.outcome(j, b) != pending {
			return true
		}
	}
	return false
}

func fmtMs(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("15:04:05.000")
}
