package distributor

import (
	"fmt"
	"net/http"
	"runtime"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// A histogram of zero-length spans: each span is two bytes on the wire
// (an empty BucketSpan message) that Validate accepts, but decoding makes
// a 40-byte prompb.BucketSpan of it (in a slice grown by append), an
// 8-byte histogram.Span, and the push encoding a prompb copy again. The
// request is charged 10 bytes per body byte (histogramExpansion), so a
// body that fits max-request-decoded-bytes allocates an order of
// magnitude more than the limit: the limit is meant to bound what a
// request's decoding takes.
func TestAuditZeroLengthSpansAllocateFarBeyondDecodedLimit(t *testing.T) {
	for _, n := range []int{3_000_000, 200_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { zeroLengthSpans(t, n) })
	}
}

// zeroLengthSpans sends a histogram of n spans, all but the first empty:
// refused with 413 when its decoding would pass the limit, else written
// compacted into one span, within the limit.
func zeroLengthSpans(t *testing.T, n int) {
	const limit = 64 << 20 // the default
	spans := make([]histogram.Span, n)
	spans[0].Length = 1
	h := prompb.FromIntHistogram(1000, &histogram.Histogram{Count: 1, Sum: 1, PositiveSpans: spans, PositiveBuckets: []int64{1}})
	body := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{histSeries("amplified", h)}})
	d, clients := newConfiguredDistributor(t, 1, &fixedLimits{}, func(c *Config) { c.MaxRequestDecodedBytes, c.MaxRecvMsgSize = limit, 100<<20 })

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp := post(d, body, nil)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	// The fake ingester keeps what it is sent: subtract nothing, it is a
	// small part (one decode of the push encoding).
	t.Logf("body %d bytes (snappy), status %d, allocated %d MiB for a limit of %d MiB", len(body), resp.Code, allocated>>20, limit>>20)
	if resp.Code == http.StatusRequestEntityTooLarge {
		return
	}
	require.Equal(t, http.StatusNoContent, resp.Code, resp.Body.String())
	require.Len(t, clients["ing-0"].histograms, 1)
	require.Equal(t, []histogram.Span{{Offset: 0, Length: 1}}, clients["ing-0"].histograms[0].h.PositiveSpans, "sent on compacted")
	require.Less(t, allocated, uint64(limit), "a request under the decoded-bytes limit allocated %d MiB", allocated>>20)
}
