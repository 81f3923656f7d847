package main

import (
	"fmt"
	"math"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Metric names of the checker's series; series i is a counter when i is
// even and a sine wave when it is odd.
const (
	counterName = "orrery_check_counter"
	sineName    = "orrery_check_sine"
)

// workload is the checker's fixed set of series and the value of each at
// every step. It is immutable and safe for concurrent use.
type workload struct {
	run      string
	series   int
	batch    int   // series per write request
	startMs  int64 // timestamp of step 0
	stepMs   int64
	selector string
}

func newWorkload(run string, series, batch int, startMs, stepMs int64) *workload {
	return &workload{
		run: run, series: series, batch: batch, startMs: startMs, stepMs: stepMs,
		selector: fmt.Sprintf(`{__name__=~"%s|%s",run=%q}`, counterName, sineName, run),
	}
}

// batches is the number of write requests per round.
func (w *workload) batches() int { return (w.series + w.batch - 1) / w.batch }

// batchOf is the request of each round that carries series i.
func (w *workload) batchOf(i int) int { return i / w.batch }

// ts is the timestamp of step k, in milliseconds.
func (w *workload) ts(k int) int64 { return w.startMs + int64(k)*w.stepMs }

// stepAt returns the step whose timestamp is ms, and false when ms is no
// step's timestamp.
func (w *workload) stepAt(ms int64) (int, bool) {
	d := ms - w.startMs
	if d < 0 || d%w.stepMs != 0 {
		return 0, false
	}
	return int(d / w.stepMs), true
}

// value is series i's sample at step k: counters rise by i/2+1 a step, so a
// missing or repeated sample changes every later answer; sine waves have a
// period of 60 steps and a phase per series. Both are exact functions of
// (i, k), computed the same way when writing and when checking.
func (w *workload) value(i, k int) float64 {
	if i%2 == 0 {
		return float64(k+1) * float64(i/2+1)
	}
	return 1000 * math.Sin(2*math.Pi*float64(k)/60+float64(i))
}

// labels returns series i's labels, sorted by name.
func (w *workload) labels(i int) []prompb.Label {
	name := counterName
	if i%2 == 1 {
		name = sineName
	}
	return []prompb.Label{
		{Name: "__name__", Value: name},
		{Name: "run", Value: w.run},
		{Name: "series", Value: seriesLabel(i)},
	}
}

func seriesLabel(i int) string { return fmt.Sprintf("%05d", i) }

// request returns the snappy-compressed remote-write request of batch b at
// step k: one sample of each of its series.
func (w *workload) request(b, k int) ([]byte, error) {
	var req prompb.WriteRequest
	for i := b * w.batch; i < min((b+1)*w.batch, w.series); i++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  w.labels(i),
			Samples: []prompb.Sample{{Value: w.value(i, k), Timestamp: w.ts(k)}},
		})
	}
	raw, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal write request of step %d: %w", k, err)
	}
	return snappy.Encode(nil, raw), nil
}
