package ingester

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/loadgen"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// BenchmarkPush measures an ingester push of 2000 series with one sample
// each (WAL write included, on a real file), the steady state of a scrape.
func BenchmarkPush(b *testing.B) {
	benchPush(b, newTestOverrides(), fixedRing{healthy: 1, rf: 1})
}

// BenchmarkPushSeriesLimits is BenchmarkPush with series limits set but not
// reached, against a ring of 30 ingesters: what enforcing them costs a push.
func BenchmarkPushSeriesLimits(b *testing.B) {
	o := newTestOverrides()
	o.set("bench", limits.Limits{MaxGlobalSeriesPerUser: 1_000_000, MaxGlobalSeriesPerMetric: 100_000})
	benchPush(b, o, staticRing(30, 3))
}

func benchPush(b *testing.B, lim Limits, rc RingCount) {
	cfg := testConfig()
	cfg.MaxChunkSamples = 120
	ing, err := New(cfg, b.TempDir(), lim, rc, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	if err := ing.Start(ctxFor("bench")); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = ing.Stop(ctxFor("bench")) }()
	gen := loadgen.NewWithSeries(1, 2000)
	sets := gen.Series()
	encoded := make([][]byte, len(sets))
	for k, ls := range sets {
		encoded[k] = ingesterpb.AppendLabels(nil, ls)
	}
	reqs := func(step int) []byte {
		var buf []byte
		for k := range sets {
			buf = ingesterpb.AppendSeriesHeader(buf, encoded[k], 1)
			buf = ingesterpb.AppendSample(buf, int64(step)*15000, gen.Value(k, step))
		}
		return buf
	}
	h := ing.head("bench", true)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		series := reqs(i)
		b.StartTimer()
		if _, rej, err := ing.push(h, series); err != nil || rej.n > 0 {
			b.Fatal(err, rej.first)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(sets)), "ns/sample")
}
