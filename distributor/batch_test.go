package distributor

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/apierr"
)

// PushBatched cuts series into requests of MaxBatchSeries, sends metadata
// with the first, sends nothing for nothing, and answers with the
// retryable refusal over one that is not.
func TestPushBatched(t *testing.T) {
	var sizes []int
	var metadata []int
	var errs []error
	push := func(_ context.Context, tenantID string, req *prompb.WriteRequest) (int, error) {
		require.Equal(t, "t", tenantID)
		sizes = append(sizes, len(req.Timeseries))
		metadata = append(metadata, len(req.Metadata))
		if len(errs) == 0 {
			return len(req.Timeseries), nil
		}
		err := errs[0]
		errs = errs[1:]
		return 0, err
	}
	series := make([]prompb.TimeSeries, 2*MaxBatchSeries+10)
	md := []prompb.MetricMetadata{{MetricFamilyName: "m"}}
	require.NoError(t, PushBatched(context.Background(), push, "t", series, md))
	require.Equal(t, []int{MaxBatchSeries, MaxBatchSeries, 10}, sizes)
	require.Equal(t, []int{1, 0, 0}, metadata)

	sizes = nil
	require.NoError(t, PushBatched(context.Background(), push, "t", nil, nil))
	require.Empty(t, sizes, "nothing to write, no request")
	require.NoError(t, PushBatched(context.Background(), push, "t", nil, md))
	require.Equal(t, []int{0}, sizes, "metadata alone is a request")

	errs = []error{apierr.New(apierr.BadData, "too old"), apierr.New(apierr.Unavailable, "too few ingesters"), apierr.New(apierr.BadData, "bad")}
	err := PushBatched(context.Background(), push, "t", series, nil)
	require.Equal(t, apierr.Unavailable, apierr.KindOf(err))

	errs = []error{errors.New("plain")}
	err = PushBatched(context.Background(), push, "t", series[:1], nil)
	require.Equal(t, apierr.Internal, apierr.KindOf(err))
}
