package distributor

import (
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/loadgen"
)

// BenchmarkDecodeValidate measures the distributor's per-request work on a
// realistic remote-write request: 2000 node_exporter-like series, one sample
// each, as the load shape.
func BenchmarkDecodeValidate(b *testing.B) {
	gen := loadgen.NewWithSeries(1, 2000)
	benchDecodeValidate(b, gen, gen.AppendRequest(nil, 0, gen.Len(), 1, 1_700_000_000_000))
}

// BenchmarkDecodeValidateHistograms is BenchmarkDecodeValidate with a
// 20-bucket native histogram per series in place of the float.
func BenchmarkDecodeValidateHistograms(b *testing.B) {
	gen := loadgen.NewWithSeries(1, 2000)
	benchDecodeValidate(b, gen, gen.AppendHistogramRequest(nil, 0, gen.Len(), 1, 1_700_000_000_000))
}

func benchDecodeValidate(b *testing.B, gen *loadgen.Generator, raw []byte) {
	body := snappy.Encode(nil, raw)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	// Charged as the handler charges it.
	pool := &inflight{limit: 1 << 30}
	m := &meter{limit: 64 << 20, pool: pool}
	req := writeRequest{m: m}
	var out validated
	v := validator{scheme: model.LegacyValidation}
	v.setLimits(&limits.Limits{MaxLabelNamesPerSeries: 30, MaxLabelNameLength: 1024, MaxLabelValueLength: 2048}, time.Now())
	for i := 0; i < b.N; i++ {
		raw, err := decompress(body, 100<<20, m)
		if err != nil {
			b.Fatal(err)
		}
		if err := req.parse(raw); err != nil {
			b.Fatal(err)
		}
		var d discards
		out.reset()
		v.validate("bench", &req, &d, &out)
		if len(out.series) != gen.Len() {
			b.Fatalf("validated %d series: %s", len(out.series), d.first)
		}
		m.release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*gen.Len()), "ns/sample")
}
