package querier

import (
	"context"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// newChunkSeriesSet merges wire series as a select merges ingesters'
// answers: the k-th copy of a series goes to the k-th stream, so each
// stream is sorted by labels with each series once, as an ingester's
// answer is, in messages of 128 series.
func newChunkSeriesSet(wire []*ingesterpb.ChunkSeries, mint int64) (*streamSeriesSet, error) {
	ctx := context.Background()
	var b labels.ScratchBuilder
	order := make([]int, len(wire))
	decoded := make([]labels.Labels, len(wire))
	for k, ws := range wire {
		order[k], decoded[k] = k, ingesterpb.ToLabels(&b, ws.Labels)
	}
	slices.SortStableFunc(order, func(x, y int) int { return labels.Compare(decoded[x], decoded[y]) })
	var perStream [][]*ingesterpb.ChunkSeries
	copyN := 0
	for n, k := range order {
		if n > 0 && labels.Equal(decoded[k], decoded[order[n-1]]) {
			copyN++
		} else {
			copyN = 0
		}
		if copyN == len(perStream) {
			perStream = append(perStream, nil)
		}
		perStream[copyN] = append(perStream[copyN], wire[k])
	}
	streams := make([]*ingesterStream, 0, len(perStream))
	for k, series := range perStream {
		var msgs []*ingesterpb.QueryStreamResponse
		for c := range slices.Chunk(series, 128) {
			msgs = append(msgs, &ingesterpb.QueryStreamResponse{Series: c})
		}
		st := &ingesterStream{id: fmt.Sprint(k), stream: &fakeStream{ctx: ctx, msgs: msgs, f: &fakeIngester{}}}
		if _, err := st.load(ctx); err != nil {
			return nil, err
		}
		streams = append(streams, st)
	}
	noSpare := func() (*ingesterStream, bool, error) { return nil, false, nil }
	return newStreamSeriesSet(ctx, streams, mint, nil, noSpare, func() {}), nil
}
