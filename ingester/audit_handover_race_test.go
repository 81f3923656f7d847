package ingester

import (
	"errors"
	"io"
	"net"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
)

// blockingReceiver is a successor ingester that holds its TransferChunks
// call until released, and records the sample times it received.
type blockingReceiver struct {
	ingesterpb.UnimplementedIngesterServer
	entered chan struct{}
	release chan struct{}
	got     chan []int64
}

func (r *blockingReceiver) TransferChunks(stream ingesterpb.Ingester_TransferChunksServer) error {
	close(r.entered)
	<-r.release
	var ts []int64
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			r.got <- ts
			return stream.SendAndClose(&ingesterpb.TransferChunksResponse{})
		}
		if err != nil {
			return err
		}
		for _, s := range req.Series {
			for _, c := range s.Chunks {
				smps, err := chunks.Chunk{MinTime: c.MinTimeMs, MaxTime: c.MaxTimeMs, Encoding: chunkenc.Encoding(c.Encoding), Data: c.Data}.Samples()
				if err != nil {
					return err
				}
				for _, s := range smps {
					ts = append(ts, s.T)
				}
			}
		}
	}
}

// AUDIT: an ingester accepts DeleteSeries while it is handing over (it
// never checks handingOver), and its handover filters by the tombstones
// it read when the tenant's transfer began. A deletion whose ring check
// (querier ForDeletion, on the querier's possibly stale view of the ring)
// passed just before the ingester started leaving is acknowledged, yet the
// deleted samples are handed to the successor, which holds no tombstone
// for them unless it was in the querier's view: after the leaver is gone
// they are served again.
func TestAuditDeletionAcceptedDuringHandoverLeaksToSuccessor(t *testing.T) {
	from := newTestIngester(t, t.TempDir(), testConfig())
	defer from.stop(t)
	recv := &blockingReceiver{entered: make(chan struct{}), release: make(chan struct{}), got: make(chan []int64, 1)}
	srv := grpc.NewServer()
	ingesterpb.RegisterIngesterServer(srv, recv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	require.NoError(t, from.push(t, "team", series("m", 1, 25)))
	r := testRing(1, map[string]member{
		"from": {addr: from.addr, state: ringpb.State_LEAVING, tokens: []uint32{1<<31 + 1}},
		"to":   {addr: ln.Addr().String(), state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
	})
	done := make(chan error, 1)
	go func() { done <- from.Handover(ctxFor("team"), from.addr, r, from.pool) }()
	<-recv.entered // the handover is streaming "team"

	// The deletion reaches the leaving ingester now, and is acknowledged.
	err = from.deleteSeries(t, "team", 5000, 14_000, 100_000, nameM)
	close(recv.release)
	require.NoError(t, <-done)
	got := <-recv.got
	if err == nil {
		for _, ts := range got {
			require.False(t, ts >= 5000 && ts <= 14_000,
				"deletion acknowledged by the leaving ingester, yet sample %d it deletes was handed over", ts)
		}
	}
}
