package frontend

import (
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// benchExtent is a day of a 1m-step dashboard panel: 100 series of 1440
// points.
func benchExtent() []extent {
	m := make(promql.Matrix, 100)
	for k := range m {
		ps := make([]promql.FPoint, 1440)
		for i := range ps {
			ps[i] = promql.FPoint{T: int64(i) * 60_000, F: float64(k*i) * 1.37}
		}
		m[k] = promql.Series{Metric: labels.FromStrings("instance", "host-"+strconv.Itoa(k)+":9100", "job", "node", "mode", "user"), Floats: ps}
	}
	return []extent{{start: 0, end: 1439 * 60_000, matrix: m}}
}

// BenchmarkExtentsCodec against BenchmarkExtentsJSON: why cached values
// are not the API's JSON.
func BenchmarkExtentsCodec(b *testing.B) {
	exts := benchExtent()
	b.ReportAllocs()
	var size int
	for b.Loop() {
		enc := encodeExtents(exts)
		size = len(enc)
		if _, err := decodeExtents(enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size), "bytes/value")
}

func BenchmarkExtentsJSON(b *testing.B) {
	exts := benchExtent()
	b.ReportAllocs()
	var size int
	for b.Loop() {
		r := &result{typ: parser.ValueTypeMatrix, matrix: exts[0].matrix}
		enc, err := r.encode()
		if err != nil {
			b.Fatal(err)
		}
		size = len(enc)
		if _, err := decodeResult(enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size), "bytes/value")
}
