package ingester

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// afterPutStore runs hook once, right after a Put committed.
type afterPutStore struct {
	chunks.Store
	hook func()
}

func (s *afterPutStore) Put(tenant string, batch []chunks.SeriesChunks) error {
	err := s.Store.Put(tenant, batch)
	if h := s.hook; h != nil && err == nil {
		s.hook = nil
		h()
	}
	return err
}

// Audit: TransferChunks stored the handed-over chunks and only then told
// the series in memory how far the store reaches (noteStored). A push
// judged in between saw a series that "knew" the store held nothing at
// that time and stored, out of order, another value at a time the store
// then held: two values at one time, the push acknowledged. The series is
// told first now.
func TestAuditOOOTransferRacesPush(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig(), withWindow(time.Hour))
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("x", 100, 10))) // x in memory, 100s..109s

	lset := labels.FromStrings("__name__", "x", "job", "test")
	cs, err := chunks.Encode([]chunks.Sample{{T: 50000, V: 50}}, 0)
	require.NoError(t, err)
	// The store holds x at 50s with 50 from the hook on. The push waits
	// while the transfer holds the tenant's pushes off (transferLock), so
	// it runs beside the transfer, not inside it.
	pushed := make(chan error, 1)
	ti.store = &afterPutStore{Store: ti.store, hook: func() {
		go func() { pushed <- ti.push(t, "a", onePush("x", 50000, -1)) }()
	}}
	stream, err := ti.client.TransferChunks(ctxFor("a"))
	require.NoError(t, err)
	require.NoError(t, stream.Send(&ingesterpb.TransferChunksRequest{Series: []*ingesterpb.ChunkSeries{toWire(chunks.SeriesChunks{Labels: lset, Chunks: cs}, false)}}))
	_, err = stream.CloseAndRecv()
	require.NoError(t, err)
	require.ErrorContains(t, <-pushed, "duplicate sample with a different value",
		"the store already held x at 50s with another value when the push was judged")
}
