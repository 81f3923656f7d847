package client

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

// fakeStreamer sends n messages, then returns err; it records whether it
// ever ran while the reader was working on a message (busy).
type fakeStreamer struct {
	n       int
	err     error
	panic   bool
	busy    *atomic.Bool
	overlap atomic.Bool
	tenant  atomic.Value
	started chan struct{}
}

func (f *fakeStreamer) QueryStream(_ *ingesterpb.QueryRequest, s grpc.ServerStreamingServer[ingesterpb.QueryStreamResponse]) error {
	id, _ := tenant.FromContext(s.Context())
	f.tenant.Store(id)
	if f.started != nil {
		close(f.started)
	}
	if f.panic {
		panic("boom")
	}
	for k := range f.n {
		if f.busy != nil && f.busy.Load() {
			f.overlap.Store(true)
		}
		if err := s.Send(&ingesterpb.QueryStreamResponse{Series: []*ingesterpb.ChunkSeries{{Labels: []*ingesterpb.LabelPair{{Name: "k", Value: string(rune('a' + k))}}}}}); err != nil {
			return err
		}
		if f.busy != nil && f.busy.Load() {
			f.overlap.Store(true)
		}
	}
	return f.err
}

func localFor(t *testing.T, srv QueryStreamer) ingesterpb.IngesterClient {
	t.Helper()
	p := NewPool()
	t.Cleanup(func() { _ = p.Close() })
	p.ServeLocally("127.0.0.1:1", srv)
	c, err := p.Client("127.0.0.1:1")
	require.NoError(t, err)
	other, err := p.Client("127.0.0.1:2")
	require.NoError(t, err)
	_, isLocal := other.(localClient)
	require.False(t, isLocal, "another address is read over gRPC")
	return c
}

// The reader gets every message, then io.EOF, and the ingester never runs
// while the reader works on a message: they take turns.
func TestLocalQueryStreamTakesTurns(t *testing.T) {
	var busy atomic.Bool
	srv := &fakeStreamer{n: 50, busy: &busy}
	c := localFor(t, srv)
	s, err := c.QueryStream(tenant.WithID(context.Background(), "team-a"), &ingesterpb.QueryRequest{})
	require.NoError(t, err)
	var got []string
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		busy.Store(true)
		got = append(got, m.Series[0].Labels[0].Value)
		time.Sleep(100 * time.Microsecond)
		busy.Store(false)
	}
	require.Len(t, got, 50)
	require.False(t, srv.overlap.Load(), "the ingester ran while the reader held a message")
	require.Equal(t, "team-a", srv.tenant.Load())
	_, err = s.Recv()
	require.ErrorIs(t, err, io.EOF, "the end repeats")
}

// The ingester's error reaches the reader as a gRPC status, one without a
// status as Unknown, as over gRPC.
func TestLocalQueryStreamErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{status.Error(codes.ResourceExhausted, "too many chunks"), codes.ResourceExhausted},
		{errors.New("disk on fire"), codes.Unknown},
	} {
		c := localFor(t, &fakeStreamer{n: 2, err: tc.err})
		s, err := c.QueryStream(tenant.WithID(context.Background(), "a"), &ingesterpb.QueryRequest{})
		require.NoError(t, err)
		for range 2 {
			_, err := s.Recv()
			require.NoError(t, err)
		}
		_, err = s.Recv()
		require.Equal(t, tc.code, status.Code(err), "%v", err)
	}
}

// A panic in the ingester fails the query as Internal, not the process.
func TestLocalQueryStreamPanic(t *testing.T) {
	c := localFor(t, &fakeStreamer{panic: true})
	s, err := c.QueryStream(tenant.WithID(context.Background(), "a"), &ingesterpb.QueryRequest{})
	require.NoError(t, err)
	_, err = s.Recv()
	require.Equal(t, codes.Internal, status.Code(err), "%v", err)
}

// Without a valid tenant the call is refused before the ingester runs, as
// the gRPC interceptors refuse it.
func TestLocalQueryStreamNeedsTenant(t *testing.T) {
	srv := &fakeStreamer{n: 1, started: make(chan struct{})}
	c := localFor(t, srv)
	for _, ctx := range []context.Context{context.Background(), tenant.WithID(context.Background(), "a|b"), tenant.WithID(context.Background(), "../x")} {
		_, err := c.QueryStream(ctx, &ingesterpb.QueryRequest{})
		require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	}
	select {
	case <-srv.started:
		t.Fatal("the ingester ran without a tenant")
	default:
	}
}

// A reader that stops reading and cancels leaves no goroutine behind: the
// ingester's Send returns the context's error.
func TestLocalQueryStreamCancel(t *testing.T) {
	srv := &fakeStreamer{n: 1000}
	c := localFor(t, srv)
	ctx, cancel := context.WithCancel(tenant.WithID(context.Background(), "a"))
	s, err := c.QueryStream(ctx, &ingesterpb.QueryRequest{})
	require.NoError(t, err)
	_, err = s.Recv()
	require.NoError(t, err)
	cancel()
	_, err = s.Recv()
	require.Equal(t, codes.Canceled, status.Code(err), "%v", err)
	ls := s.(*localStream)
	select {
	case <-ls.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the ingester's goroutine did not end after the cancel")
	}
}
