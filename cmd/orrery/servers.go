package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/orrery/orrery/ingester/client"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/querier/evaluator"
)

// HTTPConfig bounds how long a client may hold a connection without
// finishing a request. Zero disables a timeout.
type HTTPConfig struct {
	ReadTimeout       time.Duration `yaml:"http_read_timeout"`
	ReadHeaderTimeout time.Duration `yaml:"http_read_header_timeout"`
	IdleTimeout       time.Duration `yaml:"http_idle_timeout"`
}

// RegisterFlags registers the HTTP server's flags, named as dskit names them.
func (c *HTTPConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.ReadTimeout, "server.http-read-timeout", 30*time.Second, "Longest time to read a request, headers and body; a slower upload is cut off and its connection closed.")
	fs.DurationVar(&c.ReadHeaderTimeout, "server.http-read-header-timeout", 10*time.Second, "Longest time to read a request's headers.")
	fs.DurationVar(&c.IdleTimeout, "server.http-idle-timeout", 2*time.Minute, "Longest time an idle keep-alive connection stays open.")
}

// Validate reports a negative timeout.
func (c *HTTPConfig) Validate() error {
	if c.ReadTimeout < 0 || c.ReadHeaderTimeout < 0 || c.IdleTimeout < 0 {
		return errors.New("server.http-*-timeout must not be negative")
	}
	return nil
}

// newHTTPServer returns the process's HTTP server with cfg's timeouts. The
// read timeout covers a request's headers and body; once the body is read,
// net/http lifts it, so a query that runs longer keeps its context.
func newHTTPServer(cfg HTTPConfig, addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr: addr, Handler: h,
		ReadTimeout: cfg.ReadTimeout, ReadHeaderTimeout: cfg.ReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout,
	}
}

// httpServer is the process's HTTP server as a lifecycle component.
type httpServer struct {
	srv    *http.Server
	logger *slog.Logger
}

func (s *httpServer) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", s.srv.Addr, err)
	}
	s.logger.Info("http listening", "addr", ln.Addr().String())
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http server failed", "err", err)
		}
	}()
	return nil
}

// drainHTTP is how long requests in flight may run on at shutdown before
// their connections are closed: a stalled download (a snapshot) must not
// hold the process's whole stop deadline, nor the ingester's final flush
// behind it.
const drainHTTP = 30 * time.Second

func (s *httpServer) Stop(ctx context.Context) error {
	drainCtx, cancel := context.WithTimeout(ctx, drainHTTP)
	defer cancel()
	if err := s.srv.Shutdown(drainCtx); err != nil {
		s.logger.Warn("http requests still running at shutdown: closing their connections", "err", err)
		return s.srv.Close()
	}
	return nil
}

// grpcServer is the process's gRPC server as a lifecycle component.
type grpcServer struct {
	srv    *grpc.Server
	addr   string
	logger *slog.Logger
}

func (s *grpcServer) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("grpc listen %s: %w", s.addr, err)
	}
	s.logger.Info("grpc listening", "addr", ln.Addr().String())
	go func() {
		if err := s.srv.Serve(ln); err != nil {
			s.logger.Error("grpc server failed", "err", err)
		}
	}()
	return nil
}

// Stop lets in-flight calls finish, up to the context's deadline.
func (s *grpcServer) Stop(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.srv.Stop()
	case <-time.After(30 * time.Second):
		s.srv.Stop()
	}
	return nil
}

// servePushdown registers the Pushdown service of the ingester at addr in
// this process: it evaluates with an engine of its own over a querier
// whose one ingester is this one, read in process (docs/architecture.md,
// "Pushdown").
func servePushdown(srv *grpc.Server, cfg *Config, addr string, pool *client.Pool, overrides *limits.Overrides, logger *slog.Logger) error {
	logger = logger.With("component", "evaluator")
	local := querier.NewQueryable(cfg.Querier, querier.InstanceRing{Instance: &ringpb.Instance{Id: cfg.InstanceID, Addr: addr}}, pool, overrides, nil, logger)
	c, err := pool.Client(addr)
	if err != nil {
		return err
	}
	ingesterpb.RegisterPushdownServer(srv, evaluator.New(querier.NewEngine(cfg.Querier, nil, logger), local, c, cfg.Querier.MaxConcurrent, cfg.Querier.Timeout))
	return nil
}
