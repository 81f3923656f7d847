package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/frontendpb"
)

// Process implements frontendpb.FrontendServer: it serves one querier
// worker, sending it one queued request at a time. The stream ends when the
// worker goes away, the scheduler stops, or a request's caller goes away
// while the worker runs it: ending the stream is how the worker learns to
// cancel it.
func (s *Scheduler) Process(stream frontendpb.Frontend_ProcessServer) error {
	hello, err := stream.Recv()
	if err != nil {
		return err
	}
	worker := hello.GetQuerierId()
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	// One reader for the stream's life sees the worker's answers and its
	// disconnection, whether a request is running or not.
	answers := make(chan *frontendpb.QuerierToFrontend)
	var recvErr error
	var recvMu sync.Mutex
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvMu.Lock()
				recvErr = err
				recvMu.Unlock()
				cancel()
				return
			}
			select {
			case answers <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	lostErr := func() error {
		recvMu.Lock()
		defer recvMu.Unlock()
		if recvErr != nil {
			return fmt.Errorf("stream ended: %w", recvErr)
		}
		return fmt.Errorf("stream ended: %w", ctx.Err())
	}

	err = s.work(ctx, worker, int(hello.GetQuerierCores()), func(req *request) (*frontendpb.HTTPResponse, error) {
		if err := stream.Send(&frontendpb.FrontendToQuerier{Id: req.id, Request: req.http}); err != nil {
			return nil, fmt.Errorf("send request: %w", err)
		}
		select {
		case m := <-answers:
			if m.GetId() != req.id || m.GetResponse() == nil {
				return nil, fmt.Errorf("protocol: answer for request %d while %d runs", m.GetId(), req.id)
			}
			return m.GetResponse(), nil
		case <-req.ctx.Done():
			return nil, errCanceled
		case <-ctx.Done():
			return nil, lostErr()
		}
	})
	switch {
	case errors.Is(err, errCanceled):
		return status.Error(codes.Canceled, "the request's caller went away: cancel it")
	case errors.Is(err, errStopped):
		return apierr.ToGRPC(err)
	case ctx.Err() != nil:
		// The worker went away; nobody reads this status.
		return nil
	}
	return apierr.ToGRPC(err)
}
