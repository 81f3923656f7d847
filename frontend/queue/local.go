package queue

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"

	"github.com/orrery/orrery/proto/frontendpb"
)

// localQuerier names the process's own querier among the workers.
const localQuerier = "local"

// LocalWorkers serve the scheduler's requests with a handler in the same
// process, as many at once as there are workers: the querier of a
// -target=all process, without gRPC. A request runs in its caller's
// context, so a caller that goes away cancels it directly.
type LocalWorkers struct {
	s       *Scheduler
	n       int
	h       http.Handler
	logger  *slog.Logger
	cancel  context.CancelFunc
	stopped sync.WaitGroup
}

// NewLocalWorkers returns n workers that serve s's requests with h, which
// finds the tenant in the request context as tenant.Middleware puts it.
func NewLocalWorkers(s *Scheduler, n int, h http.Handler, logger *slog.Logger) *LocalWorkers {
	return &LocalWorkers{s: s, n: n, h: h, logger: logger}
}

// Start starts the workers; they run until Stop.
func (w *LocalWorkers) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	for range w.n {
		w.stopped.Add(1)
		go func() {
			defer w.stopped.Done()
			_ = w.s.work(ctx, localQuerier, runtime.GOMAXPROCS(0), func(req *request) (*frontendpb.HTTPResponse, error) {
				return serveHTTP(req.ctx, w.h, req.http, w.logger), nil
			})
		}()
	}
	return nil
}

// Stop lets the requests running finish, then returns; queued ones stay
// for other workers.
func (w *LocalWorkers) Stop(ctx context.Context) error {
	w.cancel()
	done := make(chan struct{})
	go func() {
		w.stopped.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("local query workers: %w", ctx.Err())
	}
}
