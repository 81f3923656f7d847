package ingester

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
)

// A series may come several times in one push (Prometheus's remote write
// sends a time series entry per sample): each occurrence is judged against
// what the earlier ones accepted, not only against memory.
func TestSameSeriesTwiceInOnePush(t *testing.T) {
	for _, c := range []struct {
		name    string
		samples [][]byte
		want    []int64
		code    codes.Code
		message string
	}{
		{"another value at the same timestamp", [][]byte{onePush("x", 5000, 5), onePush("x", 5000, 99)}, []int64{5000}, codes.InvalidArgument, "duplicate sample with a different value"},
		{"an older timestamp", [][]byte{onePush("x", 5000, 5), onePush("x", 4000, 4)}, []int64{5000}, codes.InvalidArgument, "out of order sample"},
		{"the same sample again", [][]byte{onePush("x", 5000, 5), onePush("x", 5000, 5)}, []int64{5000}, codes.OK, ""},
		{"a retry of the first occurrence", [][]byte{series("x", 1, 3), series("x", 1, 5)}, []int64{1000, 2000, 3000, 4000, 5000}, codes.OK, ""},
		{"interleaved with another series", [][]byte{onePush("x", 1000, 1), onePush("y", 1000, 1), onePush("x", 2000, 2), onePush("y", 2000, 2), onePush("x", 1000, 1)}, []int64{1000, 2000}, codes.OK, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ti := newTestIngester(t, dir, testConfig())
			err := ti.push(t, "a", c.samples...)
			require.Equal(t, c.code, status.Code(err), "%v", err)
			if c.message != "" {
				require.Contains(t, status.Convert(err).Message(), c.message)
			}
			require.Equal(t, c.want, ti.samples(t, "a")["x"])
			// What was acknowledged is what a replay finds.
			ti.crash(t)
			ti = newTestIngester(t, dir, testConfig())
			defer ti.stop(t)
			require.Equal(t, c.want, ti.samples(t, "a")["x"], "after kill -9 and replay")
		})
	}
}

// A push that lists a series twice, the second time reaching back before
// the first, must leave chunks a receiver can merge: a handover to a
// replica holding a chunk with the same end time succeeds, every time.
func TestRepeatedSeriesDoesNotPoisonHandover(t *testing.T) {
	from := newTestIngester(t, t.TempDir(), testConfig())
	defer from.stop(t)
	to := newTestIngester(t, t.TempDir(), testConfig())
	defer to.stop(t)

	err := from.push(t, "team", series("m", 3, 3), series("m", 1, 5))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "1 s and 2 s are older than 5 s and not held: %v", err)
	require.NoError(t, to.push(t, "team", series("m", 1, 5)))
	to.flush(true)

	r := testRing(1, map[string]member{
		"from": {addr: from.addr, state: ringpb.State_LEAVING, tokens: []uint32{1<<31 + 1}},
		"to":   {addr: to.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
	})
	for attempt := range 3 {
		require.NoError(t, from.Handover(ctxFor("team"), from.addr, r, from.pool), "attempt %d", attempt)
	}
	require.Equal(t, []int64{1000, 2000, 3000, 4000, 5000}, to.samples(t, "team")["m"])
}

// A transferred chunk that does not decode is dropped and counted; the rest
// of the transfer is stored, and the handover sending it is not failed.
func TestTransferDropsUndecodableChunks(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("x", 1, 5)))
	ti.flush(true)

	good := chunkenc.NewXORChunk()
	app, err := good.Appender()
	require.NoError(t, err)
	app.Append(0, 9000, 9)
	req := &ingesterpb.TransferChunksRequest{Series: []*ingesterpb.ChunkSeries{
		// Same key as the stored chunk of x (ends at 5 s), garbage bytes.
		{Labels: ingesterpb.FromLabels(labels.FromStrings("__name__", "x")),
			Chunks: []*ingesterpb.Chunk{{MinTimeMs: 1000, MaxTimeMs: 5000, Encoding: uint32(chunkenc.EncXOR), Data: []byte{0, 3, 0xff, 0xff, 0xff}}}},
		{Labels: ingesterpb.FromLabels(labels.FromStrings("__name__", "y")),
			Chunks: []*ingesterpb.Chunk{{MinTimeMs: 9000, MaxTimeMs: 9000, Encoding: uint32(chunkenc.EncXOR), Data: good.Bytes()}}},
	}}
	stream, err := ti.client.TransferChunks(ctxFor("a"))
	require.NoError(t, err)
	require.NoError(t, stream.Send(req))
	_, err = stream.CloseAndRecv()
	require.NoError(t, err)
	got := ti.samples(t, "a")
	require.Equal(t, []int64{1000, 2000, 3000, 4000, 5000}, got["x"], "the stored chunk is untouched")
	require.Equal(t, []int64{9000}, got["y"])
	require.Equal(t, 1.0, metricSum(t, ti.reg, "orrery_ingester_handover_chunks_refused_total"))
}
