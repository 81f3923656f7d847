package ruler

import (
	"context"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery/orrery/distributor"
)

// Pusher is the distributor's entry for writers inside Orrery: a
// remote-write request for one tenant, validated, limited and replicated
// as a client's.
type Pusher interface {
	Push(ctx context.Context, tenantID string, req *prompb.WriteRequest) (int, error)
}

// appendable writes a tenant's rule results through the distributor:
// one remote-write request per group evaluation (one Commit).
type appendable struct {
	pusher Pusher
	tenant string
}

func (a appendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &appender{a: a, ctx: ctx}
}

type appender struct {
	a   appendable
	ctx context.Context
	req prompb.WriteRequest
}

// Append adds a float or histogram sample; the labels are copied, since
// the rule manager reuses its buffers after the call. A histogram's
// buckets are not: each evaluation's result is new, and Prometheus's own
// appenders keep it too.
func (ap *appender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	series := prompb.TimeSeries{Labels: make([]prompb.Label, 0, ls.Len())}
	switch {
	case h != nil:
		series.Histograms = []prompb.Histogram{prompb.FromIntHistogram(t, h)}
	case fh != nil:
		series.Histograms = []prompb.Histogram{prompb.FromFloatHistogram(t, fh)}
	default:
		series.Samples = []prompb.Sample{{Timestamp: t, Value: v}}
	}
	ls.Range(func(l labels.Label) {
		series.Labels = append(series.Labels, prompb.Label{Name: l.Name, Value: l.Value})
	})
	ap.req.Timeseries = append(ap.req.Timeseries, series)
	// A non-zero ref: the rule manager takes 0 as a failed append.
	return 1, nil
}

// Commit pushes the evaluation's samples in batches (a rule with a large
// output is written in several requests); a refused batch does not stop
// the others. The rule manager reports the error as the group's (and the
// rule's) last error.
func (ap *appender) Commit() error {
	err := distributor.PushBatched(ap.ctx, ap.a.pusher.Push, ap.a.tenant, ap.req.Timeseries, nil)
	ap.req.Timeseries = nil
	return err
}

func (ap *appender) Rollback() error {
	ap.req.Timeseries = nil
	return nil
}
