package ingester

import (
	"log/slog"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/loadgen"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// BenchmarkPush measures an ingester push of 2000 series with one sample
// each (WAL write included, on a real file), the steady state of a scrape.
func BenchmarkPush(b *testing.B) {
	benchPush(b, newTestOverrides(), fixedRing{healthy: 1, rf: 1}, false)
}

// BenchmarkPushHistograms is BenchmarkPush with a 20-bucket native
// histogram per series (loadgen's) in place of the float.
func BenchmarkPushHistograms(b *testing.B) {
	benchPush(b, newTestOverrides(), fixedRing{healthy: 1, rf: 1}, true)
}

// BenchmarkPushSeriesLimits is BenchmarkPush with series limits set but not
// reached, against a ring of 30 ingesters: what enforcing them costs a push.
func BenchmarkPushSeriesLimits(b *testing.B) {
	o := newTestOverrides()
	o.set("bench", limits.Limits{MaxGlobalSeriesPerUser: 1_000_000, MaxGlobalSeriesPerMetric: 100_000})
	benchPush(b, o, staticRing(30, 3), false)
}

// benchPush pushes 2000 series a sample each, native histograms when
// histograms is set.
func benchPush(b *testing.B, lim Limits, rc RingCount, histograms bool) {
	cfg := testConfig()
	cfg.MaxChunkSamples = 120
	dir := b.TempDir()
	ing, err := New(cfg, dir, openStore(b, dir, prometheus.NewRegistry()), lim, rc, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	if err := ing.Start(ctxFor("bench")); err != nil {
		b.Fatal(err)
	}
	defer func() {
		b.StopTimer()
		_ = ing.Stop(ctxFor("bench"))
	}()
	gen := loadgen.NewWithSeries(1, 2000)
	sets := gen.Series()
	encoded := make([][]byte, len(sets))
	for k, ls := range sets {
		encoded[k] = ingesterpb.AppendLabels(nil, ls)
	}
	reqs := func(step int) []byte {
		var buf []byte
		for k := range sets {
			if histograms {
				buf = ingesterpb.AppendHistogramSeriesHeader(buf, encoded[k], 1)
				buf = ingesterpb.AppendHistogram(buf, int64(step)*15000, gen.Histogram(k, step), nil)
				continue
			}
			buf = ingesterpb.AppendSeriesHeader(buf, encoded[k], 1)
			buf = ingesterpb.AppendSample(buf, int64(step)*15000, gen.Value(k, step))
		}
		return buf
	}
	h := ing.head("bench", true)
	// The series exist before the timer starts: this is the steady state,
	// BenchmarkPushNewSeries the cost of creating them.
	if _, rej, err := ing.push(h, reqs(0)); err != nil || rej.n > 0 {
		b.Fatal(err, rej.first)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		series := reqs(i + 1)
		b.StartTimer()
		if _, rej, err := ing.push(h, series); err != nil || rej.n > 0 {
			b.Fatal(err, rej.first)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(sets)), "ns/sample")
}

// BenchmarkPushNewSeries measures pushes of 2000 series new to memory, one
// sample each: series creation, including the store lookup of each new
// series' last sample (none here, as for a series never seen).
func BenchmarkPushNewSeries(b *testing.B) {
	cfg := testConfig()
	dir := b.TempDir()
	ing, err := New(cfg, dir, openStore(b, dir, prometheus.NewRegistry()), newTestOverrides(), fixedRing{healthy: 1, rf: 1}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	if err := ing.Start(ctxFor("bench")); err != nil {
		b.Fatal(err)
	}
	defer func() {
		b.StopTimer()
		_ = ing.Stop(ctxFor("bench"))
	}()
	h := ing.head("bench", true)
	sets := loadgen.NewWithSeries(1, 2000).Series()
	bodies := make([][]byte, b.N)
	for i := range bodies {
		for _, ls := range sets {
			ls = labels.NewBuilder(ls).Set("bench_round", strconv.Itoa(i)).Labels()
			bodies[i] = ingesterpb.AppendSeriesHeader(bodies[i], ingesterpb.AppendLabels(nil, ls), 1)
			bodies[i] = ingesterpb.AppendSample(bodies[i], 0, 1)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, rej, err := ing.push(h, bodies[i]); err != nil || rej.n > 0 {
			b.Fatal(err, rej.first)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/series")
}
