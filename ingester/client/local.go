package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

// QueryStreamer is the part of an ingester a local client reads without
// gRPC.
type QueryStreamer interface {
	QueryStream(*ingesterpb.QueryRequest, grpc.ServerStreamingServer[ingesterpb.QueryStreamResponse]) error
}

// localClient is the client of the ingester in this process: its
// QueryStream calls the ingester directly, every other call goes over
// gRPC as for any ingester.
//
// Why: over loopback gRPC a select's chunks are marshalled, copied through
// the transport and unmarshalled, about a fifth of a query's CPU in one
// process, and the ingester runs ahead of the querier on a second core
// while the querier decodes. Here the two take turns on one goroutine's
// worth of CPU: the ingester makes a message only when the querier asks
// for the next one (Recv), and the querier waits while it is made. So one
// query uses about one core, and the query frontend's per-tenant running
// bound (half the cores) holds a heavy tenant to the share it names.
type localClient struct {
	ingesterpb.IngesterClient
	srv QueryStreamer
}

// QueryStream starts the ingester's QueryStream on a goroutine of its own
// that runs only between the caller's Recv and its answer. The contract
// is gRPC's: the caller reads until an error or cancels ctx, or the
// goroutine waits for that.
func (c localClient) QueryStream(ctx context.Context, in *ingesterpb.QueryRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[ingesterpb.QueryStreamResponse], error) {
	// What tenant.StreamClientInterceptor and StreamServerInterceptor do
	// over gRPC: the ingester serves one valid tenant, named by the caller.
	id, err := tenant.FromContext(ctx)
	if err == nil {
		err = tenant.Validate(id)
	}
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	s := &localStream{ctx: ctx, turn: make(chan struct{}), msgs: make(chan *ingesterpb.QueryStreamResponse), done: make(chan struct{})}
	go s.serve(c.srv, in, tenant.WithID(ctx, id))
	return s, nil
}

// localStream is both ends of a local QueryStream. turn passes the right
// to run from the caller to the ingester, msgs a message back; done is
// closed, with err set, when the ingester's QueryStream returned.
type localStream struct {
	ctx  context.Context
	turn chan struct{}
	msgs chan *ingesterpb.QueryStreamResponse
	done chan struct{}
	err  error
}

func (s *localStream) serve(srv QueryStreamer, in *ingesterpb.QueryRequest, ctx context.Context) {
	defer close(s.done)
	defer func() {
		// As the gRPC server's recovery interceptor: a panic serving one
		// query fails that query, not the process.
		if p := recover(); p != nil {
			s.err = status.Errorf(codes.Internal, "ingester panic serving a local query: %v", p)
		}
	}()
	select {
	case <-s.turn:
	case <-ctx.Done():
		s.err = status.FromContextError(ctx.Err()).Err()
		return
	}
	err := srv.QueryStream(in, &localServerStream{s: s, ctx: ctx})
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			// gRPC sends an error without a status as Unknown.
			err = status.Error(codes.Unknown, err.Error())
		}
	}
	s.err = err
}

// Recv hands the turn to the ingester and waits for its next message, the
// end of its answer, or ctx.
func (s *localStream) Recv() (*ingesterpb.QueryStreamResponse, error) {
	select {
	case s.turn <- struct{}{}:
	case <-s.done:
		return nil, s.end()
	case <-s.ctx.Done():
		return nil, status.FromContextError(s.ctx.Err()).Err()
	}
	select {
	case m := <-s.msgs:
		return m, nil
	case <-s.done:
		return nil, s.end()
	case <-s.ctx.Done():
		return nil, status.FromContextError(s.ctx.Err()).Err()
	}
}

// end is Recv's error once the ingester returned: io.EOF after a whole
// answer, as a gRPC stream's.
func (s *localStream) end() error {
	if s.err == nil {
		return io.EOF
	}
	return s.err
}

func (s *localStream) Header() (metadata.MD, error) { return nil, nil }
func (s *localStream) Trailer() metadata.MD         { return nil }
func (s *localStream) CloseSend() error             { return nil }
func (s *localStream) Context() context.Context     { return s.ctx }
func (s *localStream) SendMsg(any) error {
	return errors.New("local QueryStream: the request was sent at the start")
}
func (s *localStream) RecvMsg(any) error {
	return errors.New("local QueryStream: messages are handed over by Recv, not copied")
}

// localServerStream is the ingester's end: Send gives a message to the
// waiting Recv and then waits for the caller's next turn, so the ingester
// never runs while the caller works on what it sent. A message is handed
// over, not copied: the ingester does not touch a message once sent.
type localServerStream struct {
	s   *localStream
	ctx context.Context
}

func (l *localServerStream) Send(m *ingesterpb.QueryStreamResponse) error {
	select {
	case l.s.msgs <- m:
	case <-l.ctx.Done():
		return l.ctx.Err()
	}
	select {
	case <-l.s.turn:
		return nil
	case <-l.ctx.Done():
		return l.ctx.Err()
	}
}

func (l *localServerStream) Context() context.Context     { return l.ctx }
func (l *localServerStream) SetHeader(metadata.MD) error  { return nil }
func (l *localServerStream) SendHeader(metadata.MD) error { return nil }
func (l *localServerStream) SetTrailer(metadata.MD)       {}
func (l *localServerStream) SendMsg(m any) error {
	resp, ok := m.(*ingesterpb.QueryStreamResponse)
	if !ok {
		return fmt.Errorf("local QueryStream: cannot send %T", m)
	}
	return l.Send(resp)
}
func (l *localServerStream) RecvMsg(any) error { return io.EOF }
