package querier

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// genStream is one replica's answer made as it is received, messages of
// 128 series with two chunks of 120 samples each, so that nothing but the
// merge holds it. bytes counts what it sent.
type genStream struct {
	grpc.ClientStream
	next, series int
	chunks       [][]byte
	bytes        int
}

func (g *genStream) Recv() (*ingesterpb.QueryStreamResponse, error) {
	if g.next >= g.series {
		return nil, io.EOF
	}
	resp := &ingesterpb.QueryStreamResponse{}
	for ; g.next < g.series && len(resp.Series) < 128; g.next++ {
		ws := &ingesterpb.ChunkSeries{Labels: ingesterpb.FromLabels(labels.FromStrings("__name__", "node_cpu_seconds_total", "instance", fmt.Sprintf("host-%06d", g.next), "mode", "user"))}
		for k, data := range g.chunks {
			// Copies, as a message off the wire is.
			ws.Chunks = append(ws.Chunks, &ingesterpb.Chunk{MinTimeMs: int64(k) * 1_800_000, MaxTimeMs: int64(k)*1_800_000 + 1_785_000, Encoding: uint32(chunkenc.EncXOR), Data: append([]byte(nil), data...)})
		}
		resp.Series = append(resp.Series, ws)
	}
	g.bytes += proto.Size(resp)
	return resp, nil
}

// BenchmarkStreamMergeHeap merges three replicas' answers of 100k series
// each, as an RF=3 read that asks all does, iterating without keeping the
// series (as /federate does), and reports the live heap's growth during
// the merge (after a GC every 10k series) next to what the streams sent:
// the merge holds a message per stream, not the streams.
func BenchmarkStreamMergeHeap(b *testing.B) {
	const series, replicas = 100_000, 3
	var chunks [][]byte
	for k := range 2 {
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		if err != nil {
			b.Fatal(err)
		}
		for j := range 120 {
			app.Append(0, int64(k)*1_800_000+int64(j)*15000, float64(j%7))
		}
		chunks = append(chunks, c.Bytes())
	}
	ctx := context.Background()
	var live, sent float64
	for range b.N {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var gens []*genStream
		var streams []*ingesterStream
		for k := range replicas {
			g := &genStream{series: series, chunks: chunks}
			st := &ingesterStream{id: fmt.Sprint(k), stream: g}
			if _, err := st.load(ctx); err != nil {
				b.Fatal(err)
			}
			gens, streams = append(gens, g), append(streams, st)
		}
		noSpare := func() (*ingesterStream, bool, error) { return nil, false, nil }
		set := newStreamSeriesSet(ctx, streams, 0, nil, noSpare, func() {})
		n := 0
		var it chunkenc.Iterator
		for set.Next() {
			it = set.At().Iterator(it)
			if n++; n%10_000 == 0 {
				runtime.GC()
				runtime.ReadMemStats(&ms)
				live = max(live, float64(ms.HeapAlloc)-float64(base))
			}
		}
		if set.Err() != nil || n != series {
			b.Fatalf("merged %d series: %v", n, set.Err())
		}
		sent = 0
		for _, g := range gens {
			sent += float64(g.bytes)
		}
	}
	b.ReportMetric(live/(1<<20), "live-MiB")
	b.ReportMetric(sent/(1<<20), "streams-MiB")
}
