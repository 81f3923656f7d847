package ingester

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
)

// member is one instance of a test ring.
type member struct {
	addr   string
	state  ringpb.State
	tokens []uint32
	// stale makes its heartbeat older than the heartbeat timeout.
	stale bool
}

// testRing is a real ring over the members, at replication factor rf.
func testRing(rf int, members map[string]member) *ring.Ring {
	desc := &ringpb.Desc{Instances: map[string]*ringpb.Instance{}}
	for id, m := range members {
		hb := time.Now()
		if m.stale {
			hb = hb.Add(-2 * time.Hour)
		}
		desc.Instances[id] = &ringpb.Instance{Id: id, Addr: m.addr, State: m.state, Tokens: m.tokens, OwnsTokens: true, HeartbeatMs: hb.UnixMilli()}
	}
	return ring.NewStaticRing(ring.Config{ReplicationFactor: rf, HeartbeatTimeout: time.Hour}, desc)
}

var nameM = labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")

// TestHandoverSendsToOwnersThatJoinedSinceTheWrite: at RF=1, series
// written to "from" before "to" joined now belong to "to", which holds only
// what was written since. Had "from" still been ACTIVE, the ring would name
// "to" as well: handover must not take that to mean "to" has the series.
func TestHandoverSendsToOwnersThatJoinedSinceTheWrite(t *testing.T) {
	from := newTestIngester(t, t.TempDir(), testConfig())
	defer from.stop(t)
	to := newTestIngester(t, t.TempDir(), testConfig())
	defer to.stop(t)

	require.NoError(t, from.push(t, "team", series("m", 1, 25)))
	require.NoError(t, to.push(t, "team", series("m", 26, 5)))
	// "to" comes first clockwise from almost every key, so it is the
	// owner with "from" LEAVING and would be with "from" ACTIVE too.
	r := testRing(1, map[string]member{
		"from": {addr: from.addr, state: ringpb.State_LEAVING, tokens: []uint32{1<<31 + 1}},
		"to":   {addr: to.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
	})
	require.NoError(t, from.Handover(ctxFor("team"), from.addr, r, from.pool))
	require.Len(t, to.samples(t, "team", nameM)["m"], 30, "the new owner has the old samples and its own")

	err := from.push(t, "team", series("m", 31, 1))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}

// TestHandoverSendsToEveryReplica: at RF=2 every series goes to both
// remaining owners, also the one that was a replica alongside the leaving
// ingester: it may have missed writes (down, restarted, joined later).
// Chunks it holds already cost nothing (store.Put).
func TestHandoverSendsToEveryReplica(t *testing.T) {
	from := newTestIngester(t, t.TempDir(), testConfig())
	defer from.stop(t)
	a := newTestIngester(t, t.TempDir(), testConfig())
	defer a.stop(t)
	b := newTestIngester(t, t.TempDir(), testConfig())
	defer b.stop(t)

	require.NoError(t, from.push(t, "team", series("m", 1, 25)))
	// a was down for the last 15 writes, and is a replica again.
	require.NoError(t, a.push(t, "team", series("m", 1, 10)))
	r := testRing(2, map[string]member{
		"from": {addr: from.addr, state: ringpb.State_LEAVING, tokens: []uint32{100}},
		"a":    {addr: a.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 30}},
		"b":    {addr: b.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
	})
	require.NoError(t, from.Handover(ctxFor("team"), from.addr, r, from.pool))
	require.Len(t, a.samples(t, "team", nameM)["m"], 25)
	require.Len(t, b.samples(t, "team", nameM)["m"], 25)
}

// TestHandoverFailsWhileAnOwnerIsUnhealthy: the ring leaves an unhealthy
// ACTIVE owner out of a series' owners; handing over then would leave it
// without its copy, so handover fails (to be retried) instead.
func TestHandoverFailsWhileAnOwnerIsUnhealthy(t *testing.T) {
	from := newTestIngester(t, t.TempDir(), testConfig())
	defer from.stop(t)
	a := newTestIngester(t, t.TempDir(), testConfig())
	defer a.stop(t)
	b := newTestIngester(t, t.TempDir(), testConfig())
	defer b.stop(t)
	require.NoError(t, from.push(t, "team", series("m", 1, 25)))
	members := map[string]member{
		"from": {addr: from.addr, state: ringpb.State_LEAVING, tokens: []uint32{100}},
		"a":    {addr: a.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 30}},
		"b":    {addr: b.addr, state: ringpb.State_ACTIVE, tokens: []uint32{3 << 30}},
		"down": {addr: "127.0.0.1:1", state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}, stale: true},
	}
	require.ErrorContains(t, from.Handover(ctxFor("team"), from.addr, testRing(2, members), from.pool), "unhealthy")
	require.Empty(t, a.samples(t, "team", nameM))

	// Once the ring has forgotten it, a retry hands everything over.
	delete(members, "down")
	require.NoError(t, from.Handover(ctxFor("team"), from.addr, testRing(2, members), from.pool))
	require.Len(t, a.samples(t, "team", nameM)["m"], 25)
}

// TestLeavingReceiverRefusesTransfers: two ingesters leaving at once may
// each still see the other ACTIVE. One that has started its own handover
// refuses transfers (Unavailable), so the sender fails and retries with a
// newer ring instead of handing to an ingester that has streamed already.
func TestLeavingReceiverRefusesTransfers(t *testing.T) {
	from := newTestIngester(t, t.TempDir(), testConfig())
	defer from.stop(t)
	to := newTestIngester(t, t.TempDir(), testConfig())
	defer to.stop(t)
	require.NoError(t, from.push(t, "team", series("m", 1, 25)))
	alone := testRing(1, map[string]member{"to": {addr: to.addr, state: ringpb.State_LEAVING, tokens: []uint32{1}}})
	require.ErrorIs(t, to.Handover(ctxFor("team"), to.addr, alone, to.pool), errNoTarget)

	stale := testRing(1, map[string]member{
		"from": {addr: from.addr, state: ringpb.State_LEAVING, tokens: []uint32{100}},
		"to":   {addr: to.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
	})
	err := from.Handover(ctxFor("team"), from.addr, stale, from.pool)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}

// TestHandoverWaitsForTransfersInFlight: an ingester that starts handing
// over while it receives a transfer waits until that transfer ends, and
// then hands its chunks on too.
func TestHandoverWaitsForTransfersInFlight(t *testing.T) {
	mid := newTestIngester(t, t.TempDir(), testConfig())
	defer mid.stop(t)
	next := newTestIngester(t, t.TempDir(), testConfig())
	defer next.stop(t)

	stream, err := mid.client.TransferChunks(ctxFor("team"))
	require.NoError(t, err)
	src := newTestIngester(t, t.TempDir(), testConfig())
	require.NoError(t, src.push(t, "team", series("m", 1, 25)))
	src.flush(true)
	stored, err := src.st.Select("team", 0, 1<<62)
	require.NoError(t, err)
	src.stop(t)
	require.NoError(t, stream.Send(&ingesterpb.TransferChunksRequest{Series: []*ingesterpb.ChunkSeries{toWire(stored[0], false)}}))

	r := testRing(1, map[string]member{
		"mid":  {addr: mid.addr, state: ringpb.State_LEAVING, tokens: []uint32{100}},
		"next": {addr: next.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
	})
	done := make(chan error, 1)
	go func() { done <- mid.Handover(ctxFor("team"), mid.addr, r, mid.pool) }()
	select {
	case err := <-done:
		t.Fatalf("handover did not wait for the transfer in flight: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	_, err = stream.CloseAndRecv()
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.Len(t, next.samples(t, "team", nameM)["m"], 25)

	ctx, cancel := context.WithTimeout(ctxFor("team"), 5*time.Second)
	defer cancel()
	late, err := mid.client.TransferChunks(ctx)
	require.NoError(t, err)
	_ = late.Send(&ingesterpb.TransferChunksRequest{})
	_, err = late.CloseAndRecv()
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}
