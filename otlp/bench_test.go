package otlp

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/orrery/orrery/tenant"
)

// BenchmarkExportMemory exports histogram-heavy requests (the worst case
// for memory: each bucket becomes a series with its own labels) and
// reports the heap one request holds at its peak per byte of its body,
// which is what -distributor.max-otlp-request-size multiplies.
func BenchmarkExportMemory(b *testing.B) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "bench")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	for i := range 2000 {
		h := ms.AppendEmpty()
		h.SetName(fmt.Sprintf("http.server.request.duration.%d", i))
		h.SetUnit("s")
		hist := h.SetEmptyHistogram()
		hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		for r := range 4 {
			p := hist.DataPoints().AppendEmpty()
			p.SetTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000))
			p.ExplicitBounds().FromRaw([]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})
			p.BucketCounts().FromRaw([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
			p.SetCount(78)
			p.SetSum(12.5)
			p.Attributes().PutStr("http.route", fmt.Sprintf("/route/%d", r))
		}
	}
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	var before, after runtime.MemStats
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		runtime.ReadMemStats(&before)
		rec := &recorder{}
		h := tenant.Middleware(false, nil, New(Config{MaxRequestSize: len(body)}, rec, fixedLimits{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)))
		w := post(nil, h, "t", protoType, "", body)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body.String())
		}
		runtime.ReadMemStats(&after)
		// What the recorder holds is what the distributor would have
		// been handed: the translated request, live at the peak.
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(body)), "heap-bytes/body-byte")
		runtime.KeepAlive(rec)
	}
	b.ReportMetric(float64(len(body)), "body-bytes")
}
