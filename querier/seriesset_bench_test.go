package querier

import (
	"fmt"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// rf3Wire is what a select over series series of 6 hours at a 15 s
// interval (12 XOR chunks of 120 samples each) brings from three replicas
// at RF=3: every series three times, with identical chunks, each replica's
// answer in label order after the previous one's.
func rf3Wire(b *testing.B, series int) []*ingesterpb.ChunkSeries {
	b.Helper()
	const chunks, perChunk, step = 12, 120, 15000
	var one []*ingesterpb.ChunkSeries
	for s := range series {
		ws := &ingesterpb.ChunkSeries{Labels: ingesterpb.FromLabels(labels.FromStrings("__name__", "node_cpu_seconds_total", "instance", fmt.Sprintf("host-%04d", s), "mode", "user"))}
		v := 0.0
		for c := range chunks {
			xc := chunkenc.NewXORChunk()
			app, err := xc.Appender()
			if err != nil {
				b.Fatal(err)
			}
			mint := int64(c*perChunk) * step
			for k := range perChunk {
				v += float64(k%7) * 0.25
				app.Append(0, mint+int64(k)*step, v)
			}
			ws.Chunks = append(ws.Chunks, &ingesterpb.Chunk{MinTimeMs: mint, MaxTimeMs: mint + (perChunk-1)*step, Encoding: uint32(chunkenc.EncXOR), Data: xc.Bytes()})
		}
		one = append(one, ws)
	}
	var out []*ingesterpb.ChunkSeries
	for range 3 {
		out = append(out, one...)
	}
	return out
}

const benchSeries = 200

// BenchmarkChunkSeriesSetRF3 builds the series set of an RF=3 select and
// reads every sample, as the engine does for a range query over it.
func BenchmarkChunkSeriesSetRF3(b *testing.B) {
	wire := rf3Wire(b, benchSeries)
	b.ReportAllocs()
	var it chunkenc.Iterator
	for b.Loop() {
		set, err := newChunkSeriesSet(wire, math.MinInt64)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for set.Next() {
			it = set.At().Iterator(it)
			for it.Next() == chunkenc.ValFloat {
				n++
			}
		}
		if n != benchSeries*12*120 {
			b.Fatalf("%d samples", n)
		}
	}
}
