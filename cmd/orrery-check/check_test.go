package main

import (
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// testWorkload is 4 series in 2 batches, steps of 1 s from t=1000 s.
func testWorkload() *workload { return newWorkload("r1", 4, 2, 1_000_000, 1000) }

// settledOf builds finished rounds; outcomes[k][b].
func settledOf(outcomes ...[]outcome) *settled { return &settled{rounds: outcomes} }

func allAcked(steps, batches int) *settled {
	s := &settled{}
	for range steps {
		r := make([]outcome, batches)
		for b := range r {
			r[b] = acked
		}
		s.rounds = append(s.rounds, r)
	}
	return s
}

func metricOf(w *workload, i int) model.Metric {
	m := model.Metric{}
	for _, l := range w.labels(i) {
		m[model.LabelName(l.Name)] = model.LabelValue(l.Value)
	}
	return m
}

// rawAnswer is what a correct store answers for steps [lo, hi] when the
// samples keep says which are stored.
func rawAnswer(w *workload, lo, hi int, keep func(i, k int) bool) model.Matrix {
	var m model.Matrix
	for i := range w.series {
		ss := &model.SampleStream{Metric: metricOf(w, i)}
		for k := lo; k <= hi; k++ {
			if keep(i, k) {
				ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.Time(w.ts(k)), Value: model.SampleValue(w.value(i, k))})
			}
		}
		if len(ss.Values) > 0 {
			m = append(m, ss)
		}
	}
	return m
}

func every(int, int) bool { return true }

func TestCheckRawExactAnswerPasses(t *testing.T) {
	w := testWorkload()
	v := checkRaw(w, allAcked(5, 2), rawAnswer(w, 1, 4, every), 1, 4)
	require.Equal(t, verdict{}, v)
}

func TestCheckRawFindsEachDifference(t *testing.T) {
	w := testWorkload()
	s := allAcked(5, 2)
	f := func(name string, edit func(m model.Matrix) model.Matrix, missing, extra, wrong int) {
		t.Helper()
		v := checkRaw(w, s, edit(rawAnswer(w, 0, 4, every)), 0, 4)
		require.Equal(t, [3]int{missing, extra, wrong}, [3]int{v.Missing, v.Extra, v.Wrong}, "%s: %s", name, v.Example)
		require.NotEmpty(t, v.Example, name)
		require.True(t, v.mismatched(false), name)
	}
	f("a sample dropped", func(m model.Matrix) model.Matrix {
		m[2].Values = append(m[2].Values[:1], m[2].Values[2:]...)
		return m
	}, 1, 0, 0)
	f("a whole series dropped", func(m model.Matrix) model.Matrix { return m[1:] }, 5, 0, 0)
	f("a value changed", func(m model.Matrix) model.Matrix { m[1].Values[3].Value++; return m }, 0, 0, 1)
	f("a timestamp moved off the grid", func(m model.Matrix) model.Matrix { m[0].Values[4].Timestamp++; return m }, 1, 1, 0)
	f("a sample repeated", func(m model.Matrix) model.Matrix {
		m[3].Values = append(m[3].Values, m[3].Values[0])
		return m
	}, 0, 1, 0)
	f("a sample after the last finished step", func(m model.Matrix) model.Matrix {
		m[0].Values = append(m[0].Values, model.SamplePair{Timestamp: model.Time(w.ts(5)), Value: model.SampleValue(w.value(0, 5))})
		return m
	}, 0, 1, 0)
	f("a series of another run", func(m model.Matrix) model.Matrix {
		other := metricOf(w, 0)
		other["run"] = "r2"
		return append(m, &model.SampleStream{Metric: other, Values: m[0].Values})
	}, 0, 5, 0)
	f("a series with an extra label", func(m model.Matrix) model.Matrix {
		m[0].Metric["tenant"] = "x"
		return m
	}, 5, 5, 0)
	f("a series answered twice", func(m model.Matrix) model.Matrix { return append(m, m[0]) }, 0, 1, 0)
	f("a counter under the sine's name", func(m model.Matrix) model.Matrix {
		m[0].Metric[model.MetricNameLabel] = sineName
		return m
	}, 5, 5, 0)
}

func TestCheckRawUnacknowledgedMayBeEitherWay(t *testing.T) {
	w := testWorkload()
	// Step 2 of batch 0 (series 0 and 1) was given up, step 3 of batch 1
	// (series 2 and 3) refused.
	s := settledOf(
		[]outcome{acked, acked}, []outcome{acked, acked}, []outcome{uncertain, acked},
		[]outcome{acked, rejected}, []outcome{acked, acked},
	)
	for _, stored := range []bool{true, false} {
		keep := func(i, k int) bool { return stored || !((k == 2 && i < 2) || (k == 3 && i >= 2)) }
		v := checkRaw(w, s, rawAnswer(w, 0, 4, keep), 0, 4)
		require.Equal(t, verdict{}, v, "stored=%v", stored)
	}
	// Stored, but with another value than was sent: wrong.
	m := rawAnswer(w, 0, 4, every)
	m[0].Values[2].Value = 42
	require.Equal(t, 1, checkRaw(w, s, m, 0, 4).Wrong)
}

func TestWarningsExcuseOnlyMissingSamples(t *testing.T) {
	require.False(t, verdict{Missing: 3}.mismatched(true))
	require.True(t, verdict{Missing: 3}.mismatched(false))
	require.True(t, verdict{Wrong: 1}.mismatched(true))
	require.True(t, verdict{Extra: 1}.mismatched(true))
	require.False(t, verdict{}.mismatched(false))
}

// rangeAnswer is what a store holding the samples keep says answers a
// query_range over steps [lo, hi]: at each step the latest stored sample
// within lookback.
func rangeAnswer(w *workload, lo, hi int, lookback time.Duration, keep func(i, k int) bool) model.Matrix {
	var m model.Matrix
	for i := range w.series {
		ss := &model.SampleStream{Metric: metricOf(w, i)}
		for k := lo; k <= hi; k++ {
			for j := k; j >= 0 && time.Duration(w.ts(k)-w.ts(j))*time.Millisecond < lookback; j-- {
				if keep(i, j) {
					ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.Time(w.ts(k)), Value: model.SampleValue(w.value(i, j))})
					break
				}
			}
		}
		if len(ss.Values) > 0 {
			m = append(m, ss)
		}
	}
	return m
}

func TestCheckRange(t *testing.T) {
	w := testWorkload()
	const lookback = 3 * time.Second
	s := allAcked(10, 2)
	require.Equal(t, verdict{}, checkRange(w, s, rangeAnswer(w, 2, 9, lookback, every), 2, 9, lookback))

	// A lost acknowledged sample shows as a repeated older value: wrong.
	lost := func(i, k int) bool { return !(i == 1 && k == 5) }
	v := checkRange(w, s, rangeAnswer(w, 2, 9, lookback, lost), 2, 9, lookback)
	require.Equal(t, 1, v.Wrong, v.Example)

	// Given-up samples: stored or not, both answers pass.
	s.rounds[5][0], s.rounds[6][0] = uncertain, uncertain
	for _, keep := range []func(i, k int) bool{every, func(i, k int) bool { return i >= 2 || (k != 5 && k != 6) }, func(i, k int) bool { return i >= 2 || k != 6 }} {
		require.Equal(t, verdict{}, checkRange(w, s, rangeAnswer(w, 2, 9, lookback, keep), 2, 9, lookback))
	}

	// Nothing acknowledged within the lookback: no point is fine, and a
	// point from a sample that was never written is extra.
	gap := allAcked(10, 2)
	for k := 3; k <= 8; k++ {
		gap.rounds[k][1] = uncertain
	}
	notStored := func(i, k int) bool { return i < 2 || k < 3 || k > 8 }
	require.Equal(t, verdict{}, checkRange(w, gap, rangeAnswer(w, 0, 9, lookback, notStored), 0, 9, lookback))
	m := rangeAnswer(w, 0, 9, lookback, notStored)
	require.Equal(t, 0, checkRange(w, gap, m, 0, 9, lookback).Missing)

	// An acknowledged sample in the lookback but no point: missing.
	m = rangeAnswer(w, 0, 9, lookback, every)
	m[3].Values = m[3].Values[:len(m[3].Values)-1]
	require.Equal(t, 1, checkRange(w, s, m, 0, 9, lookback).Missing)

	// A point at a time the query did not ask for: extra.
	m = rangeAnswer(w, 0, 9, lookback, every)
	m[0].Values[0].Timestamp += 500
	v = checkRange(w, allAcked(10, 2), m, 0, 9, lookback)
	require.Equal(t, [2]int{1, 1}, [2]int{v.Extra, v.Missing}, v.Example)
}

func TestWindowsCoverEveryStepOnce(t *testing.T) {
	c := &checker{window: 300}
	require.Equal(t, [][2]int{{0, 299}, {300, 599}, {600, 601}}, c.windows(602))
	require.Empty(t, c.windows(0))
}

func TestLedgerOutages(t *testing.T) {
	l := newLedger(2)
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	l.attempt(0, "2xx", at(0))
	l.attempt(0, "5xx", at(1))
	l.attempt(1, "error", at(2))
	l.attempt(0, "429", at(3)) // still the same outage of batch 0
	l.attempt(1, "2xx", at(4)) // batch 1 was down 2 s
	l.attempt(0, "2xx", at(6)) // batch 0 was down 5 s
	require.Equal(t, outage{at(1), at(6)}, l.longestOutage(at(6)))
	l.attempt(1, "5xx", at(7))
	require.Equal(t, outage{at(1), at(6)}, l.longestOutage(at(10)), "a 3 s outage still running is shorter")
	require.Equal(t, outage{at(7), at(13)}, l.longestOutage(at(13)), "a running outage counts up to now")
	c := l.writeCounts()
	require.Equal(t, 7, c.Attempts)
	require.Equal(t, map[string]int{"2xx": 3, "5xx": 2, "429": 1, "error": 1}, c.AttemptsByStatus)
}

func TestLedgerSnapshotHoldsOnlyFinishedRounds(t *testing.T) {
	l := newLedger(2)
	l.startRound(0)
	l.settle(0, 0, acked)
	l.settle(0, 1, uncertain)
	l.finishRound(0)
	l.startRound(1)
	l.settle(1, 0, acked)
	s := l.snapshot()
	require.Equal(t, 1, s.steps())
	require.Equal(t, uncertain, s.outcome(0, 1))
	require.Equal(t, pending, s.outcome(1, 0), "an unfinished round is not checked")
	require.Equal(t, writeCounts{RequestsAcked: 2, RequestsGivenUp: 1, AttemptsByStatus: map[string]int{}}, l.writeCounts())
	require.Panics(t, func() { l.startRound(3) })
}

func TestWorkloadValuesAndRequests(t *testing.T) {
	w := newWorkload("r1", 5, 2, 1_000_000, 500)
	require.Equal(t, 3, w.batches())
	require.Equal(t, int64(1_001_500), w.ts(3))
	k, ok := w.stepAt(1_001_500)
	require.True(t, ok)
	require.Equal(t, 3, k)
	_, ok = w.stepAt(1_001_499)
	require.False(t, ok)
	_, ok = w.stepAt(999_500)
	require.False(t, ok)
	// Counters rise by a fixed step per series.
	require.Equal(t, []float64{1, 2, 3}, []float64{w.value(0, 0), w.value(0, 1), w.value(0, 2)})
	require.Equal(t, []float64{2, 4, 6}, []float64{w.value(2, 0), w.value(2, 1), w.value(2, 2)})

	body, err := w.request(2, 7)
	require.NoError(t, err)
	raw, err := snappy.Decode(nil, body)
	require.NoError(t, err)
	var req prompb.WriteRequest
	require.NoError(t, req.Unmarshal(raw))
	require.Len(t, req.Timeseries, 1, "the last batch holds what is left")
	ts := req.Timeseries[0]
	require.Equal(t, []prompb.Label{{Name: "__name__", Value: counterName}, {Name: "run", Value: "r1"}, {Name: "series", Value: "00004"}}, ts.Labels)
	require.Equal(t, []prompb.Sample{{Value: w.value(4, 7), Timestamp: w.ts(7)}}, ts.Samples)
	i, ok := w.seriesIndex(metricOf(w, 4))
	require.True(t, ok)
	require.Equal(t, 4, i)
}

func TestReportVerdict(t *testing.T) {
	ok := report{SamplesAcknowledged: 10, FinalReadComplete: true}
	require.Empty(t, ok.verdict())
	for name, r := range map[string]report{
		"missing":    {SamplesAcknowledged: 10, FinalReadComplete: true, SamplesMissing: 1},
		"mismatch":   {SamplesAcknowledged: 10, FinalReadComplete: true, readStats: readStats{MismatchedAnswers: 1}},
		"rejected":   {SamplesAcknowledged: 10, FinalReadComplete: true, SamplesRejected: 2},
		"incomplete": {SamplesAcknowledged: 10},
		"nothing":    {FinalReadComplete: true},
	} {
		require.NotEmpty(t, r.verdict(), name)
	}
}
