package ingester

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// sizingStream is a QueryStream server stream that counts what it is sent
// and keeps nothing, as a client reading it would. Every 64th message it
// collects garbage and records the live heap's growth over base: what the
// ingester holds mid-stream.
type sizingStream struct {
	grpc.ServerStream
	ctx           context.Context
	bytes, series int
	msgs          int
	base, live    uint64
}

func (s *sizingStream) Context() context.Context { return s.ctx }

func (s *sizingStream) Send(resp *ingesterpb.QueryStreamResponse) error {
	s.bytes += proto.Size(resp)
	s.series += len(resp.Series)
	if s.msgs++; s.msgs%64 == 0 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.live = max(s.live, ms.HeapAlloc-min(ms.HeapAlloc, s.base))
	}
	return nil
}

// BenchmarkQueryStreamPeakHeap streams an answer of 100k series, each with
// two stored chunks and a head chunk in memory, and reports next to the
// answer's size the ingester's heap growth during QueryStream: live-MiB,
// what it holds mid-stream (measured after a GC every 64 messages), and
// peak-heap-MiB, the peak sampled every millisecond with the GC made eager,
// which includes the first pass's lists of series and up to 5% of the
// heap in garbage. Both follow the number of matching series (a handle or
// ID each), not their chunks, which are held one batch at a time.
func BenchmarkQueryStreamPeakHeap(b *testing.B) {
	const nSeries, nSamples = 100_000, 24
	cfg := testConfig()
	cfg.QueryBatchSeries = 128
	dir := b.TempDir()
	ing, err := New(cfg, dir, openStore(b, dir, prometheus.NewRegistry()), newTestOverrides(), fixedRing{healthy: 1, rf: 1}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	if err := ing.Start(ctxFor("bench")); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = ing.Stop(ctxFor("bench")) }()
	encoded := make([][]byte, nSeries)
	for k := range encoded {
		encoded[k] = ingesterpb.AppendLabels(nil, labels.FromStrings("__name__", "bench_metric", "series", strconv.Itoa(k), "job", "bench"))
	}
	h := ing.head("bench", true)
	for step := range nSamples {
		for from := 0; from < nSeries; from += 10_000 {
			var buf []byte
			for k := from; k < from+10_000; k++ {
				buf = ingesterpb.AppendSeriesHeader(buf, encoded[k], 1)
				buf = ingesterpb.AppendSample(buf, int64(step)*15000, float64(k+step))
			}
			if _, rej, err := ing.push(h, buf); err != nil || rej.n > 0 {
				b.Fatal(err, rej.first)
			}
		}
	}
	// Chunks of 10 samples: two per series go to the store, 4 samples stay
	// in the head.
	ing.flush(false)
	encoded, h = nil, nil

	defer debug.SetGCPercent(debug.SetGCPercent(5))
	var peak, live, answer float64
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var top atomic.Uint64
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > top.Load() {
					top.Store(ms.HeapAlloc)
				}
				select {
				case <-done:
					return
				case <-t.C:
				}
			}
		}()
		s := &sizingStream{ctx: ctxFor("bench"), base: base}
		if err := ing.QueryStream(&ingesterpb.QueryRequest{StartMs: math.MinInt64, EndMs: math.MaxInt64}, s); err != nil {
			b.Fatal(err)
		}
		close(done)
		<-sampled
		if s.series != nSeries {
			b.Fatalf("streamed %d series, want %d", s.series, nSeries)
		}
		peak = max(peak, float64(top.Load())-float64(base))
		live = max(live, float64(s.live))
		answer = float64(s.bytes)
	}
	b.ReportMetric(peak/(1<<20), "peak-heap-MiB")
	b.ReportMetric(answer/(1<<20), "answer-MiB")
	b.ReportMetric(live/(1<<20), "live-MiB")
}
