package ingester

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// A push encoding of a histogram of 1M zero-length spans is 2 MB; decoded
// it would take about 150 times that (a 40-byte prompb.BucketSpan and an
// 8-byte histogram.Span per span), kept as the series' last sample. The
// distributor compacts every histogram it sends, so the ingester refuses
// one with more spans than buckets before decoding it: a push allocates
// about what gRPC takes to receive it.
func TestAuditZeroLengthSpansIngesterMemory(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	spans := make([]histogram.Span, 1_000_000)
	spans[0].Length = 1
	h := &histogram.Histogram{Count: 1, Sum: 1, PositiveSpans: spans, PositiveBuckets: []int64{1}}
	const series = 10
	var bufs [][]byte
	wire := 0
	for k := range series {
		buf := ingesterpb.AppendHistogramSeriesHeader(nil, ingesterpb.AppendLabels(nil, labels.FromStrings("__name__", "amp", "k", fmt.Sprint(k))), 1)
		bufs = append(bufs, ingesterpb.AppendHistogram(buf, 1000, h, nil))
		wire += len(bufs[k])
	}
	var before, after, kept runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, buf := range bufs {
		// The distributor compacts every histogram it sends; a push of
		// one with more spans than buckets is refused undecoded.
		require.ErrorContains(t, ti.push(t, "a", buf), "more spans than buckets")
	}
	runtime.ReadMemStats(&after)
	runtime.GC()
	runtime.ReadMemStats(&kept)
	t.Logf("pushed %d bytes: allocated %d MiB, heap kept %d MiB",
		wire, (after.TotalAlloc-before.TotalAlloc)>>20, (int64(kept.HeapAlloc)-int64(before.HeapAlloc))>>20)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(20*wire), "allocation per pushed byte")
	require.Empty(t, ti.allSamples(t, "a", "amp"))
}
