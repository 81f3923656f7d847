//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// The native histogram data set: nhSteps samples nhInterval apart for
// every series, ending a minute before the test starts, inside
// Prometheus's head.
const (
	nhSteps    = 480 // two hours
	nhInterval = 15 * time.Second
	// Some counters restart here (their counts fall back to a few).
	nhResetStep = 200
	// An NHCB series changes its custom buckets here (its process
	// restarted with another bucket layout), and nh_switch goes from
	// histograms back to floats.
	nhLayoutStep = 240
	// An exponential series drops from schema 3 to 2 here, as a client
	// does when it reaches its bucket limit.
	nhSchemaStep = 300
	// nh_switch changes between float and histogram samples every
	// nhSwitchSteps; a multiple of both batch sizes, so that no request
	// holds floats and histograms of that series.
	nhSwitchSteps = 120
	// Steps per request: remote write 1.0 senders batch several samples of
	// a series, 2.0 ones too.
	nhV1Batch = 4
	nhV2Batch = 2
)

// nhReceiverFlags make the reference Prometheus take both remote write
// messages (its default in this version; said so that the test does not
// depend on it).
var nhReceiverFlags = []string{
	"--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest",
	"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request",
}

// nhPoint is one sample: an integer histogram, a float histogram or,
// when both are nil, the float f.
type nhPoint struct {
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

// nhSeries is one generated series with a sample at every step. Series
// of instances 0 and 1 are sent with remote write 1.0, those of 2 and 3
// with 2.0; job "api" has instances 0 and 2, "db" 1 and 3, so that every
// aggregation by job mixes the two protocols.
type nhSeries struct {
	lset   labels.Labels
	v2     bool
	typ    writev2.Metadata_MetricType
	points []nhPoint
}

// nhObs accumulates observations into the buckets of a schema: an
// exponential one (schema, zeroThreshold) or, when bounds is set, custom
// buckets (NHCB, schema -53), bucket i covering (bounds[i-1], bounds[i]]
// and the last one (bounds[len-1], +Inf).
type nhObs struct {
	schema        int32
	zeroThreshold float64
	bounds        []float64
	pos, neg      map[int32]uint64
	zero, count   uint64
	sum           float64
}

func newNHObs(schema int32, zeroThreshold float64, bounds []float64) *nhObs {
	o := &nhObs{schema: schema, zeroThreshold: zeroThreshold, bounds: bounds}
	o.reset()
	return o
}

func (o *nhObs) reset() {
	o.pos, o.neg = map[int32]uint64{}, map[int32]uint64{}
	o.zero, o.count, o.sum = 0, 0, 0
}

func (o *nhObs) observe(v float64) {
	o.count++
	o.sum += v
	switch {
	case o.bounds != nil:
		o.pos[int32(sort.SearchFloat64s(o.bounds, v))]++
	case math.Abs(v) <= o.zeroThreshold:
		o.zero++
	case v > 0:
		o.pos[nhIndex(v, o.schema)]++
	default:
		o.neg[nhIndex(-v, o.schema)]++
	}
}

// nhIndex is the exponential bucket holding v > 0: bucket i covers
// (2^((i-1)/2^schema), 2^(i/2^schema)].
func nhIndex(v float64, schema int32) int32 {
	return int32(math.Ceil(math.Log2(v) * math.Exp2(float64(schema))))
}

// histogram is what has been observed, as an integer histogram; every
// bucket that has had an observation is there, so buckets only appear
// (until a reset).
func (o *nhObs) histogram() *histogram.Histogram {
	h := &histogram.Histogram{Schema: o.schema, ZeroThreshold: o.zeroThreshold, ZeroCount: o.zero, Count: o.count, Sum: o.sum}
	if o.bounds != nil {
		h.Schema, h.ZeroThreshold, h.CustomValues = histogram.CustomBucketsSchema, 0, o.bounds
	}
	h.PositiveSpans, h.PositiveBuckets = nhSpans(o.pos)
	h.NegativeSpans, h.NegativeBuckets = nhSpans(o.neg)
	return h
}

// nhSpans encodes bucket counts by index as spans and deltas.
func nhSpans(counts map[int32]uint64) ([]histogram.Span, []int64) {
	idx := make([]int32, 0, len(counts))
	for i := range counts {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var spans []histogram.Span
	var deltas []int64
	var prev int64
	for k, i := range idx {
		switch {
		case k == 0:
			spans = append(spans, histogram.Span{Offset: i, Length: 1})
		case i == idx[k-1]+1:
			spans[len(spans)-1].Length++
		default:
			spans = append(spans, histogram.Span{Offset: i - idx[k-1] - 1, Length: 1})
		}
		c := int64(counts[i])
		deltas = append(deltas, c-prev)
		prev = c
	}
	return spans, deltas
}

// nhValue is an observation: log-normal, drifting up over the two hours
// so that buckets keep appearing above the ones seen so far.
func nhValue(r *rand.Rand, step int) float64 {
	return math.Exp(r.NormFloat64()*0.8 - 2.5 + float64(step)/120)
}

var nhcbBounds = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5}

// nhGenerate makes the data set, the same on every call.
func nhGenerate(t *testing.T) []*nhSeries {
	t.Helper()
	var all []*nhSeries
	newSeries := func(name string, inst int, typ writev2.Metadata_MetricType, extra ...string) *nhSeries {
		s := &nhSeries{
			lset: labels.FromStrings(append([]string{"__name__", name, "instance", strconv.Itoa(inst), "job", []string{"api", "db"}[inst%2]}, extra...)...),
			v2:   inst >= 2, typ: typ, points: make([]nhPoint, nhSteps),
		}
		all = append(all, s)
		return s
	}
	seed := uint64(0)
	rng := func() *rand.Rand {
		seed++
		return rand.New(rand.NewPCG(seed, 42))
	}
	observe := func(r *rand.Rand, o *nhObs, step int, negatives bool) {
		for range 3 + r.IntN(20) {
			v := nhValue(r, step)
			switch p := r.Float64(); {
			case p < 0.05:
				v = 0
			case negatives && p < 0.2:
				v = -v
			}
			o.observe(v)
		}
	}
	hist := func(s *nhSeries, step int, h *histogram.Histogram) {
		require.NoError(t, h.Validate(), "%s at step %d", s.lset, step)
		s.points[step] = nhPoint{h: h}
	}
	floatHist := func(s *nhSeries, step int, fh *histogram.FloatHistogram) {
		require.NoError(t, fh.Validate(), "%s at step %d", s.lset, step)
		s.points[step] = nhPoint{fh: fh}
	}
	restarts := func(inst int) bool { return inst%2 == 1 }
	const clientZero = 2.938735877055719e-39 // client_golang's default zero threshold

	for inst := range 4 {
		// Integer counters, exponential buckets of schema 0 to 3, two of
		// which restart; instance 2 has negative observations and reduces
		// its resolution halfway.
		r, s := rng(), newSeries("nh_request_duration_seconds", inst, writev2.Metadata_METRIC_TYPE_HISTOGRAM)
		o := newNHObs([]int32{0, 1, 3, 2}[inst], []float64{clientZero, clientZero, 1e-3, 1e-3}[inst], nil)
		for step := range nhSteps {
			if restarts(inst) && step == nhResetStep {
				o.reset()
			}
			observe(r, o, step, inst == 2)
			h := o.histogram()
			if inst == 2 && step >= nhSchemaStep {
				require.NoError(t, h.ReduceResolution(2))
			}
			hist(s, step, h)
		}

		// Float counters.
		r, s = rng(), newSeries("nh_float_bytes", inst, writev2.Metadata_METRIC_TYPE_HISTOGRAM)
		o = newNHObs([]int32{1, 1, 0, 2}[inst], 1e-3, nil)
		for step := range nhSteps {
			if restarts(inst) && step == nhResetStep {
				o.reset()
			}
			observe(r, o, step, false)
			floatHist(s, step, o.histogram().ToFloat(nil).Mul(0.37))
		}

		// Gauge histograms, integer (instances 0, 2) and float (1, 3):
		// each step is a new population whose size and spread go up and
		// down, so buckets appear and disappear.
		r, s = rng(), newSeries("nh_queue_depth", inst, writev2.Metadata_METRIC_TYPE_GAUGEHISTOGRAM)
		o = newNHObs(0, 1e-3, nil)
		for step := range nhSteps {
			o.reset()
			n := 10 + int(8*math.Sin(float64(step+10*inst)/20)) + r.IntN(6)
			mu := math.Sin(float64(step)/37) - 1
			for range n {
				o.observe(math.Exp(r.NormFloat64() + mu))
			}
			h := o.histogram()
			h.CounterResetHint = histogram.GaugeType
			if inst%2 == 0 {
				hist(s, step, h)
				continue
			}
			fh := h.ToFloat(nil).Mul(1.5)
			fh.CounterResetHint = histogram.GaugeType
			floatHist(s, step, fh)
		}

		// NHCB counters (float for instance 2); instance 1 restarts,
		// instance 3 restarts with more buckets.
		r, s = rng(), newSeries("nhcb_request_duration_seconds", inst, writev2.Metadata_METRIC_TYPE_HISTOGRAM)
		o = newNHObs(0, 0, nhcbBounds)
		for step := range nhSteps {
			switch {
			case inst == 1 && step == nhResetStep:
				o.reset()
			case inst == 3 && step == nhLayoutStep:
				o = newNHObs(0, 0, append(slices.Clone(nhcbBounds), 5, 10))
			}
			observe(r, o, step, false)
			if inst == 2 {
				floatHist(s, step, o.histogram().ToFloat(nil))
			} else {
				hist(s, step, o.histogram())
			}
		}

		// Classic histograms: _bucket{le}, _sum and _count float counters
		// of the same kind of observations; instance 1 restarts.
		r = rng()
		o = newNHObs(0, 0, nhcbBounds)
		les := append(slices.Clone(nhcbBounds), math.Inf(1))
		buckets := make([]*nhSeries, len(les))
		for k, le := range les {
			buckets[k] = newSeries("classic_request_duration_seconds_bucket", inst, writev2.Metadata_METRIC_TYPE_HISTOGRAM,
				"le", strconv.FormatFloat(le, 'g', -1, 64))
		}
		sum := newSeries("classic_request_duration_seconds_sum", inst, writev2.Metadata_METRIC_TYPE_HISTOGRAM)
		count := newSeries("classic_request_duration_seconds_count", inst, writev2.Metadata_METRIC_TYPE_HISTOGRAM)
		for step := range nhSteps {
			if restarts(inst) && step == nhResetStep {
				o.reset()
			}
			observe(r, o, step, false)
			var cumulative uint64
			for k := range les {
				cumulative += o.pos[int32(k)]
				buckets[k].points[step].f = float64(cumulative)
			}
			sum.points[step].f, count.points[step].f = o.sum, float64(o.count)
		}
	}

	// A series of each protocol that changes between float samples and
	// histogram samples every nhSwitchSteps, as a counter re-instrumented
	// as a histogram and back.
	for _, inst := range []int{0, 2} {
		r, s := rng(), newSeries("nh_switch", inst, writev2.Metadata_METRIC_TYPE_UNSPECIFIED)
		o := newNHObs(1, 1e-3, nil)
		f := 0.0
		for step := range nhSteps {
			if (step/nhSwitchSteps)%2 == 0 {
				f += float64(r.IntN(10))
				s.points[step].f = f
				continue
			}
			observe(r, o, step, false)
			hist(s, step, o.histogram())
		}
	}
	return all
}

// nhWindow is the time of the first and the last step.
func nhWindow() (start, end time.Time) {
	end = time.Now().Add(-time.Minute).Truncate(time.Second)
	return end.Add(-time.Duration(nhSteps-1) * nhInterval), end
}

func nhTime(start time.Time, step int) time.Time {
	return start.Add(time.Duration(step) * nhInterval)
}

// nhWrite sends the data set, in time order, to every remote write URL:
// series of instances 0 and 1 as remote write 1.0 requests of nhV1Batch
// steps, the others as 2.0 requests of nhV2Batch steps. Every request must
// be accepted whole; a 2.0 answer must count what was written.
func nhWrite(t *testing.T, series []*nhSeries, start time.Time, urls ...string) {
	t.Helper()
	for from := 0; from < nhSteps; from += nhV1Batch {
		body := nhRequestV1(series, start, stepRange(from, from+nhV1Batch))
		for _, u := range urls {
			nhPost(t, u, body, false, 0, 0)
		}
		for at := from; at < from+nhV1Batch; at += nhV2Batch {
			body, floats, hists := nhRequestV2(series, start, stepRange(at, at+nhV2Batch))
			for _, u := range urls {
				nhPost(t, u, body, true, floats, hists)
			}
		}
	}
}

// stepRange is the steps from up to to, in order.
func stepRange(from, to int) []int {
	out := make([]int, 0, to-from)
	for step := from; step < to; step++ {
		out = append(out, step)
	}
	return out
}

// nhRequestV1 is a remote write 1.0 request of the 1.0 series' samples at
// steps, in the order given.
func nhRequestV1(series []*nhSeries, start time.Time, steps []int) []byte {
	req := &prompb.WriteRequest{}
	for _, s := range series {
		if s.v2 {
			continue
		}
		ts := prompb.TimeSeries{Labels: prompb.FromLabels(s.lset, nil)}
		for _, step := range steps {
			p, ms := s.points[step], nhTime(start, step).UnixMilli()
			switch {
			case p.h != nil:
				ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(ms, p.h))
			case p.fh != nil:
				ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(ms, p.fh))
			default:
				ts.Samples = append(ts.Samples, prompb.Sample{Value: p.f, Timestamp: ms})
			}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	raw, err := req.Marshal()
	if err != nil {
		panic(err)
	}
	return snappy.Encode(nil, raw)
}

// nhRequestV2 is nhRequestV1 for the 2.0 series, with 2.0; it returns how
// many floats and histograms it holds.
func nhRequestV2(series []*nhSeries, start time.Time, steps []int) (body []byte, floats, hists int) {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	help := st.Symbolize("Generated by the native histogram integration test.")
	for _, s := range series {
		if !s.v2 {
			continue
		}
		ts := writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(s.lset, nil), Metadata: writev2.Metadata{Type: s.typ, HelpRef: help}}
		for _, step := range steps {
			p, ms := s.points[step], nhTime(start, step).UnixMilli()
			switch {
			case p.h != nil:
				ts.Histograms = append(ts.Histograms, writev2.FromIntHistogram(0, ms, p.h))
			case p.fh != nil:
				ts.Histograms = append(ts.Histograms, writev2.FromFloatHistogram(0, ms, p.fh))
			default:
				ts.Samples = append(ts.Samples, writev2.Sample{Value: p.f, Timestamp: ms})
			}
		}
		floats += len(ts.Samples)
		hists += len(ts.Histograms)
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	if err != nil {
		panic(err)
	}
	return snappy.Encode(nil, raw), floats, hists
}

// nhPost sends one remote write request; for 2.0 the answer must say
// that floats samples and hists histograms were written.
func nhPost(t *testing.T, u string, body []byte, v2 bool, floats, hists int) {
	t.Helper()
	code, msg, header := postRemoteWrite(t, u, body, v2)
	require.Equal(t, http.StatusNoContent, code, "%s (2.0: %v): %s", u, v2, msg)
	if v2 {
		require.Equal(t, strconv.Itoa(hists), header.Get("X-Prometheus-Remote-Write-Histograms-Written"), u)
		require.Equal(t, strconv.Itoa(floats), header.Get("X-Prometheus-Remote-Write-Samples-Written"), u)
	}
}

// postRemoteWrite sends one snappy remote write request, 1.0 or 2.0, and
// returns the answer's code, body and header.
func postRemoteWrite(t *testing.T, u string, body []byte, v2 bool) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if v2 {
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(msg), resp.Header
}

// nhQuery is one query of the corpus. A range-vector expression is
// evaluated as an instant query only; a query that may answer nothing on
// this data set says so (every other one must answer something at one of
// its evaluations at least, or it tests nothing).
type nhQuery struct {
	q          string
	instant    bool
	mayBeEmpty bool
}

// nhCorpus is the queries over the data set whose first step is at start.
func nhCorpus(start time.Time) []nhQuery {
	mid := strconv.FormatInt(nhTime(start, nhSteps/2).Unix(), 10)
	q := func(s string) nhQuery { return nhQuery{q: s} }
	instant := func(s string) nhQuery { return nhQuery{q: s, instant: true} }
	empty := func(s string) nhQuery { return nhQuery{q: s, mayBeEmpty: true} }
	return []nhQuery{
		// Raw samples, histograms and floats.
		q(`nh_request_duration_seconds`),
		q(`nh_request_duration_seconds{instance="2"}`),
		q(`nh_float_bytes`),
		q(`nh_queue_depth`),
		q(`nhcb_request_duration_seconds`),
		q(`nh_switch`),
		q(`classic_request_duration_seconds_bucket{instance="1"}`),
		q(`{__name__=~"nh_.+", instance="2"}`),
		instant(`nh_request_duration_seconds[5m]`),
		instant(`nh_queue_depth[2m]`),
		instant(`nhcb_request_duration_seconds[5m]`),
		instant(`nh_switch[10m]`),
		instant(`nh_float_bytes[1m] offset 10m`),

		// Quantiles and fractions, native and classic.
		q(`histogram_quantile(0.9, rate(nh_request_duration_seconds[5m]))`),
		q(`histogram_quantile(0.5, sum by (job) (rate(nh_request_duration_seconds[5m])))`),
		q(`histogram_quantile(0.99, sum(rate(nhcb_request_duration_seconds[5m])))`),
		q(`histogram_quantile(0.9, nh_queue_depth)`),
		q(`histogram_quantile(0.75, rate(nh_float_bytes[5m]))`),
		q(`histogram_quantile(0.9, rate(nh_switch[5m]))`),
		q(`histogram_quantile(0.9, sum by (le) (rate(classic_request_duration_seconds_bucket[5m])))`),
		q(`histogram_quantile(0.5, rate(classic_request_duration_seconds_bucket[5m]))`),
		q(`histogram_quantile(0.9, sum by (job, le) (rate(classic_request_duration_seconds_bucket[5m])))`),
		q(`histogram_fraction(0, 1, rate(nh_request_duration_seconds[5m]))`),
		q(`histogram_fraction(-Inf, 0, rate(nh_request_duration_seconds[5m]))`),
		q(`histogram_fraction(0, 0.25, sum by (job) (rate(nhcb_request_duration_seconds[5m])))`),
		q(`histogram_fraction(0.5, +Inf, nh_queue_depth)`),
		q(`histogram_fraction(0, 0.25, sum by (le) (rate(classic_request_duration_seconds_bucket[5m])))`),

		// Count, sum and moments.
		q(`histogram_count(rate(nh_request_duration_seconds[5m]))`),
		q(`histogram_sum(rate(nh_request_duration_seconds[5m]))`),
		q(`histogram_avg(rate(nh_request_duration_seconds[5m]))`),
		q(`histogram_stddev(rate(nh_request_duration_seconds[5m]))`),
		q(`histogram_stdvar(rate(nhcb_request_duration_seconds[5m]))`),
		q(`histogram_count(nh_queue_depth)`),
		q(`histogram_sum(nh_float_bytes)`),
		q(`histogram_avg(nhcb_request_duration_seconds)`),
		q(`histogram_stddev(nh_queue_depth)`),
		q(`histogram_stdvar(nh_float_bytes)`),
		q(`histogram_count(nh_switch)`),

		// Rates and deltas, with the annotations of the wrong kind of
		// histogram and of floats mixed with histograms.
		q(`rate(nh_request_duration_seconds[5m])`),
		q(`rate(nh_float_bytes[5m])`),
		q(`increase(nh_float_bytes[10m])`),
		q(`irate(nh_request_duration_seconds[1m])`),
		q(`delta(nh_queue_depth[5m])`),
		q(`idelta(nh_queue_depth[1m])`),
		q(`rate(nhcb_request_duration_seconds[5m])`),
		q(`increase(nhcb_request_duration_seconds[15m])`),
		q(`rate(nh_queue_depth[5m])`),
		q(`delta(nh_request_duration_seconds[5m])`),
		q(`rate(nh_switch[10m])`),

		// Aggregations, with the info annotations of those that ignore
		// histograms.
		q(`sum(nh_request_duration_seconds)`),
		q(`sum by (job) (rate(nh_request_duration_seconds[5m]))`),
		q(`avg(nh_queue_depth)`),
		q(`count by (job) (nh_queue_depth)`),
		empty(`min(nh_queue_depth)`),
		empty(`max by (job) (nh_request_duration_seconds)`),
		empty(`topk(1, nh_queue_depth)`),
		empty(`quantile(0.5, nh_queue_depth)`),
		empty(`stddev(nh_queue_depth)`),
		q(`sum(nhcb_request_duration_seconds)`),
		q(`sum by (job) (rate(nhcb_request_duration_seconds[5m]))`),
		q(`sum(nh_switch)`),
		q(`avg by (job) (rate(nh_float_bytes[5m]))`),

		// Arithmetic.
		q(`rate(nh_request_duration_seconds[5m]) * 60`),
		q(`nh_queue_depth / 2`),
		q(`-nh_queue_depth`),
		q(`sum(rate(nh_request_duration_seconds[5m])) + sum(rate(nh_float_bytes[5m]))`),
		q(`histogram_count(nh_request_duration_seconds) - histogram_count(nh_request_duration_seconds offset 1m)`),
		q(`label_replace(nh_queue_depth, "kind", "q$1", "instance", "(.*)")`),

		// Functions over time.
		q(`resets(nh_request_duration_seconds[30m])`),
		q(`resets(nhcb_request_duration_seconds[1h])`),
		q(`changes(nh_queue_depth[10m])`),
		q(`count_over_time(nh_switch[10m])`),
		q(`last_over_time(nh_queue_depth[5m])`),
		q(`sum_over_time(nh_queue_depth[5m])`),
		q(`avg_over_time(nh_queue_depth[5m])`),
		empty(`max_over_time(nh_queue_depth[5m])`),
		empty(`deriv(nh_queue_depth[5m])`),
		q(`present_over_time(nh_switch[10m])`),
		empty(`absent_over_time(nh_queue_depth[5m])`),
		q(`timestamp(nh_request_duration_seconds)`),
		q(`rate(classic_request_duration_seconds_sum[5m]) / rate(classic_request_duration_seconds_count[5m])`),
		q(`resets(classic_request_duration_seconds_count[30m])`),

		// Modifiers and subqueries.
		q(`rate(nh_request_duration_seconds[5m] offset 30m)`),
		q(`nh_float_bytes offset 1h`),
		q(`histogram_sum(nh_request_duration_seconds offset -5m)`),
		q(`histogram_quantile(0.9, rate(nh_request_duration_seconds[5m] @ ` + mid + `))`),
		q(`nh_queue_depth @ ` + mid),
		q(`histogram_count(rate(nhcb_request_duration_seconds[5m] @ end()))`),
		q(`sum by (job) (histogram_count(increase(nh_request_duration_seconds[1h])))`),
		instant(`histogram_quantile(0.9, rate(nh_request_duration_seconds[5m]))[10m:1m]`),
		instant(`sum(rate(nh_request_duration_seconds[5m]))[10m:2m]`),
		q(`max_over_time(histogram_count(rate(nh_request_duration_seconds[1m]))[10m:30s])`),
	}
}

// compareNativeHistograms evaluates the corpus on the reference
// Prometheus and on Orrery: instant at the first minutes, after the
// counter resets, at the layout change and at the end; range over the whole
// window at 60 s and around the changes at 15 s. Every answer (data,
// warnings, infos) must be equal.
func compareNativeHistograms(t *testing.T, prom, orreryBase string, start, end time.Time, phase string) {
	t.Helper()
	sec := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }
	instants := []time.Time{
		nhTime(start, 12), nhTime(start, nhResetStep).Add(2*time.Minute + 7*time.Second),
		nhTime(start, nhLayoutStep).Add(time.Minute), end,
	}
	ranges := []url.Values{
		{"start": {sec(start)}, "end": {sec(end.Add(2 * time.Minute))}, "step": {"60"}},
		{"start": {sec(nhTime(start, nhResetStep-10))}, "end": {sec(nhTime(start, nhLayoutStep+10))}, "step": {"15"}},
	}
	corpus := nhCorpus(start)
	evaluations, failures := 0, 0
	for _, c := range corpus {
		var cases []struct {
			path   string
			params url.Values
		}
		for _, at := range instants {
			cases = append(cases, struct {
				path   string
				params url.Values
			}{"/api/v1/query", url.Values{"query": {c.q}, "time": {sec(at)}}})
		}
		if !c.instant {
			for _, r := range ranges {
				p := url.Values{"query": {c.q}}
				for k, v := range r {
					p[k] = v
				}
				cases = append(cases, struct {
					path   string
					params url.Values
				}{"/api/v1/query_range", p})
			}
		}
		answered := false
		for _, e := range cases {
			evaluations++
			want, err := get(prom, e.path, e.params)
			require.NoError(t, err, "prometheus: %s", c.q)
			require.Equal(t, "success", want.Status, "the corpus has only valid queries: %s %v: %s", e.path, e.params, want.Error)
			answered = answered || !nhEmpty(want)
			got, err := get(orreryBase, e.path, e.params)
			require.NoError(t, err, "orrery: %s", c.q)
			if d := diffResponses(want, got); d != "" {
				failures++
				if failures <= 40 {
					t.Errorf("%s: %s %v: %s", phase, e.path, e.params, d)
				}
			}
		}
		if !answered && !c.mayBeEmpty {
			t.Errorf("Prometheus answers %q with nothing at every evaluation: the query tests nothing", c.q)
		}
	}
	t.Logf("%s: %d queries, %d evaluations compared, %d differences", phase, len(corpus), evaluations, failures)
	require.Zero(t, failures, "%s: answers differ from Prometheus 3's", phase)
}

// nhEmpty tells whether an answer holds no series.
func nhEmpty(r *apiResponse) bool {
	return strings.Contains(string(r.Data), `"result":[]`)
}

// TestNativeHistogramsMatchPrometheus3 writes the native histogram data
// set (exponential integer and float counters with resets, schema and
// bucket layout changes, gauge histograms, NHCB, a series switching
// between floats and histograms, and classic histograms), half with
// remote write 1.0 and half with 2.0, into one Orrery and into Prometheus
// 3, and requires every query of the corpus to answer identically: from
// memory, after kill -9 (WAL replay, and the chunks flushed meanwhile), and
// after a clean stop that flushed every chunk, so that all of it is read
// back from the store.
func TestNativeHistogramsMatchPrometheus3(t *testing.T) {
	prom := startPrometheus3WithConfig(t, func(int) string { return "global:\n  scrape_interval: 15s\n" }, nhReceiverFlags...)
	// Small chunks flushed often, so that the store holds histogram chunks
	// before the crash; no handover at the clean stop (there is nobody to
	// hand to), so the stop flushes everything to the store.
	flags := []string{"-ingester.max-chunk-samples=40", "-ingester.flush-period=500ms", "-ingester.handover-on-shutdown=false"}
	o := startOrrery(t, t.TempDir(), flags...)
	start, end := nhWindow()
	series := nhGenerate(t)
	nhWrite(t, series, start, prom+"/api/v1/write", o.url("/api/v1/push"))
	require.Zero(t, labelledMetric(t, o, "orrery_distributor_discarded_samples_total", ""), "nothing was refused")
	compareNativeHistograms(t, prom, o.url("/prometheus"), start, end, "in memory")

	require.Eventually(t, func() bool { return metricValue(t, o, "orrery_ingester_chunks_flushed_total") > 0 },
		10*time.Second, 100*time.Millisecond, "completed chunks reach the store")
	o.kill9(t)
	o.start(t, flags...)
	compareNativeHistograms(t, prom, o.url("/prometheus"), start, end, "after kill -9")

	o.stop(t)
	o.start(t, flags...)
	compareNativeHistograms(t, prom, o.url("/prometheus"), start, end, "from the store after a clean stop")
}

// TestNativeHistogramsClusterRF3: the same data set through a distributor
// to three ingesters at RF=3, read through a querier: every replica holds
// every series, and the corpus answers as Prometheus 3 does, also after one
// ingester is killed with -9.
func TestNativeHistogramsClusterRF3(t *testing.T) {
	prom := startPrometheus3WithConfig(t, func(int) string { return "global:\n  scrape_interval: 15s\n" }, nhReceiverFlags...)
	c := newCluster(t, 3)
	for _, id := range []string{"ing1", "ing2", "ing3", "dist", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")

	start, end := nhWindow()
	series := nhGenerate(t)
	nhWrite(t, series, start, prom+"/api/v1/write", c.members["dist"].url("/api/v1/push"))
	for _, id := range []string{"ing1", "ing2", "ing3"} {
		require.Equal(t, float64(len(series)), metricValue(t, c.members[id], "orrery_ingester_memory_series"), id)
	}
	compareNativeHistograms(t, prom, c.members["quer"].url("/prometheus"), start, end, "three ingesters")

	c.members["ing2"].kill9(t)
	compareNativeHistograms(t, prom, c.members["quer"].url("/prometheus"), start, end, "ing2 killed")
}

// TestPrometheus3ScrapesNativeHistograms: a real Prometheus 3 scrapes
// native histograms (protobuf exposition of client_golang histograms, with
// their classic buckets too) from a target the test drives, stores them,
// and remote-writes them to Orrery with remote write 2.0; histogram
// queries over the time both hold answer the same from Prometheus's own
// storage and from Orrery.
func TestPrometheus3ScrapesNativeHistograms(t *testing.T) {
	t.Parallel()
	o := startOrrery(t, t.TempDir())
	scrapeNativeHistograms(t, o.url("/api/v1/push"), o.url("/prometheus"))
	require.Zero(t, labelledMetric(t, o, "orrery_distributor_discarded_samples_total", ""), "nothing Prometheus sent was refused")
}

// scrapeNativeHistograms runs the target and the scraping Prometheus 3,
// which remote-writes to writeURL, and compares the answers of
// Prometheus with those of readBase.
func scrapeNativeHistograms(t *testing.T, writeURL, readBase string) {
	t.Helper()
	reg := promclient.NewRegistry()
	latency := promclient.NewHistogramVec(promclient.HistogramOpts{
		Name: "scrape_nh_seconds", Help: "Latency observed by the test.",
		Buckets: promclient.ExponentialBuckets(0.01, 2, 10), NativeHistogramBucketFactor: 1.1,
	}, []string{"path"})
	drift := promclient.NewHistogram(promclient.HistogramOpts{
		Name: "scrape_nh_drift", Help: "Signed values observed by the test.",
		NativeHistogramBucketFactor: 2, NativeHistogramZeroThreshold: 0.01,
	})
	reg.MustRegister(latency, drift)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(target.Close)

	prom := startPrometheus3WithConfig(t, func(int) string {
		return fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: nh
    scrape_native_histograms: true
    always_scrape_classic_histograms: true
    static_configs:
      - targets: ['%s']
remote_write:
  - url: %s
    protobuf_message: io.prometheus.write.v2.Request
    send_native_histograms: true
    queue_config: {batch_send_deadline: 1s}
`, strings.TrimPrefix(target.URL, "http://"), writeURL)
	})

	// A minute of observations, every 100 ms, spreading out over time so
	// that new buckets appear; a path appears halfway, and the drift
	// histogram gets negative and zero observations.
	r := rand.New(rand.NewPCG(7, 7))
	began := time.Now()
	const ticks = 600
	for k := range ticks {
		f := float64(k) / ticks
		for range 1 + r.IntN(4) {
			latency.WithLabelValues("/a").Observe(math.Exp(r.NormFloat64()*(0.5+f) - 3 + 3*f))
			latency.WithLabelValues("/b").Observe(math.Exp(r.NormFloat64()*0.5 - 2))
			if f > 0.5 {
				latency.WithLabelValues("/c").Observe(math.Exp(r.NormFloat64() - 1))
			}
			v := r.NormFloat64() * (1 + 10*f)
			if r.IntN(10) == 0 {
				v = 0
			}
			drift.Observe(v)
		}
		time.Sleep(time.Until(began.Add(time.Duration(k+1) * 100 * time.Millisecond)))
	}
	from := began.Add(5 * time.Second).Truncate(time.Second)
	to := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	sec := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }

	// The receiver has what Prometheus stored up to `to` once the last
	// batches of every remote write shard arrived.
	caughtUp := url.Values{"query": {`{job="nh"}[2m]`}, "time": {sec(to)}}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		want, err := get(prom, "/api/v1/query", caughtUp)
		require.NoError(t, err)
		require.Equal(t, "success", want.Status, want.Error)
		got, err := get(readBase, "/api/v1/query", caughtUp)
		require.NoError(t, err)
		d := diffResponses(want, got)
		if !nhEmpty(want) && d == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s %s still lacks scraped histograms Prometheus stored (empty at Prometheus: %v): %s", readBase, nhEmpty(want), d)
		}
	}

	queries := []string{
		`scrape_nh_seconds`,
		`scrape_nh_drift`,
		`rate(scrape_nh_seconds[30s])`,
		`histogram_quantile(0.9, rate(scrape_nh_seconds[30s]))`,
		`histogram_quantile(0.9, sum by (le) (rate(scrape_nh_seconds_bucket[30s])))`,
		`histogram_quantile(0.5, sum(rate(scrape_nh_seconds[30s])))`,
		`histogram_count(rate(scrape_nh_seconds[30s]))`,
		`histogram_sum(increase(scrape_nh_seconds[1m]))`,
		`histogram_fraction(0, 0.05, rate(scrape_nh_seconds[30s]))`,
		`sum by (path) (rate(scrape_nh_seconds[30s]))`,
		`histogram_fraction(-Inf, 0, scrape_nh_drift)`,
		`histogram_avg(rate(scrape_nh_drift[30s]))`,
		`histogram_stddev(scrape_nh_drift)`,
		`resets(scrape_nh_seconds[1m])`,
		`up{job="nh"}`,
	}
	for _, q := range queries {
		cases := []url.Values{
			{"query": {q}, "time": {sec(to)}},
			{"query": {q}, "time": {sec(to.Add(-20 * time.Second))}},
			{"query": {q}, "time": {sec(from.Add(30 * time.Second))}},
			{"query": {q}, "start": {sec(from)}, "end": {sec(to)}, "step": {"2"}},
		}
		answered := false
		for _, params := range cases {
			path := "/api/v1/query"
			if params.Has("start") {
				path = "/api/v1/query_range"
			}
			want, err := get(prom, path, params)
			require.NoError(t, err)
			require.Equal(t, "success", want.Status, "%s: %s", q, want.Error)
			answered = answered || !nhEmpty(want)
			got, err := get(readBase, path, params)
			require.NoError(t, err)
			if d := diffResponses(want, got); d != "" {
				t.Errorf("%s %v: %s", path, params, d)
			}
		}
		require.True(t, answered, "Prometheus answers %q", q)
	}
	// Prometheus scraped native histograms, not only the classic buckets.
	raw, err := get(prom, "/api/v1/query", url.Values{"query": {`scrape_nh_seconds`}, "time": {sec(to)}})
	require.NoError(t, err)
	require.Contains(t, string(raw.Data), `"histogram":[`)
}
