package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
)

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

func (s *httpServer) Stop(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
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
