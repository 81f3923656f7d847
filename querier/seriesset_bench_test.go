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
	one := replicaWire(b, series, -1)
	var out []*ingesterpb.ChunkSeries
	for range 3 {
		out = append(out, one...)
	}
	return out
}

// rf3WireDiverged is rf3Wire where the first replica missed one sample of
// the first chunk and so cut every later chunk one sample off the others',
// which is what a replica that refused one push as out of order holds.
func rf3WireDiverged(b *testing.B, series int) []*ingesterpb.ChunkSeries {
	b.Helper()
	out := replicaWire(b, series, 60)
	same := replicaWire(b, series, -1)
	return append(append(out, same...), same...)
}

// replicaWire is one replica's answer; it misses the sample at index skip
// (-1: none) and cuts chunks of 120 samples.
func replicaWire(b *testing.B, series, skip int) []*ingesterpb.ChunkSeries {
	b.Helper()
	const chunks, perChunk, step = 12, 120, 15000
	var one []*ingesterpb.ChunkSeries
	for s := range series {
		ws := &ingesterpb.ChunkSeries{Labels: ingesterpb.FromLabels(labels.FromStrings("__name__", "node_cpu_seconds_total", "instance", fmt.Sprintf("host-%04d", s), "mode", "user"))}
		v := 0.0
		var xc *chunkenc.XORChunk
		var app chunkenc.Appender
		var mint, maxt int64
		for k := range chunks * perChunk {
			v += float64(k%7) * 0.25
			if k == skip {
				continue
			}
			if xc == nil || xc.NumSamples() == perChunk {
				if xc != nil {
					ws.Chunks = append(ws.Chunks, &ingesterpb.Chunk{MinTimeMs: mint, MaxTimeMs: maxt, Encoding: uint32(chunkenc.EncXOR), Data: xc.Bytes()})
				}
				xc = chunkenc.NewXORChunk()
				var err error
				if app, err = xc.Appender(); err != nil {
					b.Fatal(err)
				}
				mint = int64(k) * step
			}
			maxt = int64(k) * step
			app.Append(0, maxt, v)
		}
		ws.Chunks = append(ws.Chunks, &ingesterpb.Chunk{MinTimeMs: mint, MaxTimeMs: maxt, Encoding: uint32(chunkenc.EncXOR), Data: xc.Bytes()})
		one = append(one, ws)
	}
	return one
}

const benchSeries = 200

// BenchmarkChunkSeriesSetRF3 builds the series set of an RF=3 select and
// reads every sample, as the engine does for a range query over it: with
// identical replicas, and with one replica's chunks cut one sample off.
func BenchmarkChunkSeriesSetRF3(b *testing.B) {
	b.Run("identical", func(b *testing.B) { benchSeriesSet(b, rf3Wire(b, benchSeries), benchSeries*12*120) })
	b.Run("diverged", func(b *testing.B) { benchSeriesSet(b, rf3WireDiverged(b, benchSeries), benchSeries*12*120) })
}

func benchSeriesSet(b *testing.B, wire []*ingesterpb.ChunkSeries, want int) {
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
		if n != want {
			b.Fatalf("%d samples", n)
		}
	}
}
