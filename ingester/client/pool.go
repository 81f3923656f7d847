package client

import (
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

// MaxMsgSize bounds gRPC messages between components; query responses are
// batched well below it.
const MaxMsgSize = 256 << 20

// Pool hands out clients by address. It is safe for concurrent use.
type Pool struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	opts  []grpc.DialOption
	// local, at localAddr, is the ingester in this process (ServeLocally).
	local     QueryStreamer
	localAddr string
}

// ServeLocally makes the clients for addr, the address this process's own
// ingester advertises, read its QueryStream in process (localClient).
func (p *Pool) ServeLocally(addr string, srv QueryStreamer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.local, p.localAddr = srv, addr
}

// NewPool returns an empty pool. Without options it dials in plaintext;
// opts come after the defaults and so win over them (TLSConfig.DialOptions).
func NewPool(opts ...grpc.DialOption) *Pool {
	return &Pool{conns: map[string]*grpc.ClientConn{}, opts: opts}
}

// Client returns a client for the ingester at addr, dialing lazily: the
// connection is made on first use and re-made by gRPC after failures.
func (p *Pool) Client(addr string) (ingesterpb.IngesterClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.connLocked(addr)
	if err != nil {
		return nil, err
	}
	return p.wrapLocked(addr, ingesterpb.NewIngesterClient(c)), nil
}

// PushdownClient returns a client for the Pushdown service of the
// ingester at addr, over the same connection as Client's; always gRPC,
// also for this process's own ingester.
func (p *Pool) PushdownClient(addr string) (ingesterpb.PushdownClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.connLocked(addr)
	if err != nil {
		return nil, err
	}
	return ingesterpb.NewPushdownClient(c), nil
}

func (p *Pool) connLocked(addr string) (*grpc.ClientConn, error) {
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMsgSize), grpc.MaxCallSendMsgSize(MaxMsgSize)),
		grpc.WithChainUnaryInterceptor(tenant.UnaryClientInterceptor),
		grpc.WithChainStreamInterceptor(tenant.StreamClientInterceptor),
	}, p.opts...)
	c, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("ingester client %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

func (p *Pool) wrapLocked(addr string, c ingesterpb.IngesterClient) ingesterpb.IngesterClient {
	if p.local != nil && addr == p.localAddr {
		return localClient{IngesterClient: c, srv: p.local}
	}
	return c
}

// Close closes every connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for addr, c := range p.conns {
		errs = append(errs, c.Close())
		delete(p.conns, addr)
	}
	return errors.Join(errs...)
}
