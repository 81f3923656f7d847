package distributor

import (
	"context"
	"errors"

	"github.com/prometheus/prometheus/prompb"

	"github.com/orrery/orrery/apierr"
)

// PushFunc has Push's shape, so each writer inside Orrery keeps its own
// small interface (and its tests their fakes).
type PushFunc func(ctx context.Context, tenantID string, req *prompb.WriteRequest) (int, error)

// MaxBatchSeries is how many series one request of PushBatched carries:
// a writer with a large output (a recording rule, an OTLP export) stays
// well within the request limits.
const MaxBatchSeries = 5000

// PushBatched writes series, then metadata with the first batch, for
// tenantID through push, at most MaxBatchSeries series a request. A
// refused batch does not stop the others. The error returned is the one
// a caller should act on: a retryable one over one that is not, since a
// client that is told not to retry loses the batch that was worth it.
// Errors without a kind are Internal.
func PushBatched(ctx context.Context, push PushFunc, tenantID string, series []prompb.TimeSeries, metadata []prompb.MetricMetadata) error {
	var worst error
	for first := true; first || len(series) > 0; first = false {
		batch := series[:min(len(series), MaxBatchSeries)]
		series = series[len(batch):]
		req := &prompb.WriteRequest{Timeseries: batch}
		if first {
			req.Metadata = metadata
			if len(batch) == 0 && len(metadata) == 0 {
				return nil
			}
		}
		if _, err := push(ctx, tenantID, req); err != nil && (worst == nil || apierr.Retryable(err) && !apierr.Retryable(worst)) {
			worst = err
		}
	}
	var e *apierr.Error
	if worst != nil && !errors.As(worst, &e) {
		worst = apierr.New(apierr.Internal, "%s", worst)
	}
	return worst
}
