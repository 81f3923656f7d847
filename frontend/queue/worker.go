package queue

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/ingester/client"
	"github.com/orrery/orrery/proto/frontendpb"
	"github.com/orrery/orrery/proto/ringpb"
)

// FrontendComponent is the component name a frontend gossips in the ring.
const FrontendComponent = "query-frontend"

// WorkerConfig is the querier side's configuration.
type WorkerConfig struct {
	// FrontendAddress lists gRPC addresses of frontends to pull work from,
	// comma-separated, besides those the ring names. Empty: the ring's only.
	FrontendAddress string `yaml:"frontend_address"`
}

// RegisterFlags registers the querier side's flags.
func (c *WorkerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.FrontendAddress, "querier.frontend-address", "", "Comma-separated gRPC host:port of query frontends to pull queries from, besides the ring's members running query-frontend.")
}

// Ring is what Workers need of the ring: its members.
type Ring interface {
	Instances() []*ringpb.Instance
	IsHealthy(inst *ringpb.Instance, now time.Time) bool
}

// Backoff between reconnections of one worker.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// resyncPeriod rereads the ring without a change notification, so a
	// frontend whose heartbeat went stale is dropped in time.
	resyncPeriod = 5 * time.Second
)

// Workers keep querier workers connected to every frontend and serve what
// they pull with a handler. At most concurrency workers exist in all,
// divided among the frontends (one each at least).
type Workers struct {
	cfg         WorkerConfig
	self        string
	concurrency int
	h           http.Handler
	ring        Ring
	changed     <-chan struct{}
	dialOpts    []grpc.DialOption
	logger      *slog.Logger
	connected   prometheus.Gauge

	cancel context.CancelFunc
	loop   sync.WaitGroup

	mu        sync.Mutex
	frontends map[string]*frontendConn
}

type frontendConn struct {
	conn    *grpc.ClientConn
	workers []*worker
}

// worker is one Process stream, reopened with backoff until stopped.
type worker struct {
	stop chan struct{} // closed: finish the running request, then end
	done chan struct{} // closed when the worker ended
}

// NewWorkers returns workers for the querier instance self (its ring ID,
// never dialed itself: its own frontend has local workers). They serve
// with h, watch r whenever changed fires, and dial with dialOpts after
// the defaults (plaintext), as client.Pool does.
func NewWorkers(cfg WorkerConfig, self string, concurrency int, h http.Handler, r Ring, changed <-chan struct{}, dialOpts []grpc.DialOption, reg prometheus.Registerer, logger *slog.Logger) *Workers {
	return &Workers{
		cfg: cfg, self: self, concurrency: concurrency, h: h, ring: r, changed: changed, dialOpts: dialOpts, logger: logger,
		frontends: map[string]*frontendConn{},
		connected: promauto.With(reg).NewGauge(prometheus.GaugeOpts{Name: "orrery_querier_frontend_workers_connected",
			Help: "Querier workers with an open stream to a query frontend."}),
	}
}

// Start begins following the ring; connections are made in the background.
func (w *Workers) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.loop.Add(1)
	go func() {
		defer w.loop.Done()
		t := time.NewTicker(resyncPeriod)
		defer t.Stop()
		for {
			w.resync()
			select {
			case <-ctx.Done():
				return
			case <-w.changed:
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop ends every worker after its running request, then closes the
// connections; ctx bounds the wait.
func (w *Workers) Stop(ctx context.Context) error {
	w.cancel()
	w.loop.Wait()
	w.mu.Lock()
	var all []*frontendConn
	for addr, f := range w.frontends {
		for _, wk := range f.workers {
			close(wk.stop)
		}
		all = append(all, f)
		delete(w.frontends, addr)
	}
	w.mu.Unlock()
	var errs []error
	for _, f := range all {
		for _, wk := range f.workers {
			select {
			case <-wk.done:
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("query workers: %w", ctx.Err()))
			}
		}
		errs = append(errs, f.conn.Close())
	}
	return errors.Join(errs...)
}

// addresses are the frontends to pull from: the static ones and the
// ring's healthy ACTIVE members running a frontend, self excluded.
func (w *Workers) addresses() []string {
	var out []string
	for _, a := range strings.Split(w.cfg.FrontendAddress, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	now := time.Now()
	for _, in := range w.ring.Instances() {
		if in.GetId() == w.self || in.GetState() != ringpb.State_ACTIVE || !w.ring.IsHealthy(in, now) ||
			!slices.Contains(in.GetComponents(), FrontendComponent) {
			continue
		}
		out = append(out, in.GetAddr())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// resync connects to new frontends, drops those gone, and divides the
// concurrency among the rest.
func (w *Workers) resync() {
	addrs := w.addresses()
	w.mu.Lock()
	defer w.mu.Unlock()
	for addr, f := range w.frontends {
		if !slices.Contains(addrs, addr) {
			w.logger.Info("query frontend gone: closing its workers", "frontend", addr)
			delete(w.frontends, addr)
			go w.close(f, f.workers)
		}
	}
	for i, addr := range addrs {
		want := max(1, w.concurrency/len(addrs))
		if i < w.concurrency%len(addrs) {
			want++
		}
		f := w.frontends[addr]
		if f == nil {
			conn, err := w.dial(addr)
			if err != nil {
				w.logger.Error("query frontend: dial", "frontend", addr, "err", err)
				continue
			}
			w.logger.Info("query frontend found: connecting workers", "frontend", addr, "workers", want)
			f = &frontendConn{conn: conn}
			w.frontends[addr] = f
		}
		for len(f.workers) < want {
			wk := &worker{stop: make(chan struct{}), done: make(chan struct{})}
			f.workers = append(f.workers, wk)
			go w.run(f.conn, addr, wk)
		}
		if extra := f.workers[want:]; len(extra) > 0 {
			f.workers = f.workers[:want]
			for _, wk := range extra {
				close(wk.stop)
			}
		}
	}
}

// close stops workers and closes f's connection once they ended.
func (w *Workers) close(f *frontendConn, workers []*worker) {
	for _, wk := range workers {
		close(wk.stop)
	}
	for _, wk := range workers {
		<-wk.done
	}
	if err := f.conn.Close(); err != nil {
		w.logger.Warn("query frontend: close connection", "err", err)
	}
}

func (w *Workers) dial(addr string) (*grpc.ClientConn, error) {
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(client.MaxMsgSize), grpc.MaxCallSendMsgSize(client.MaxMsgSize)),
	}, w.dialOpts...)
	return grpc.NewClient(addr, opts...)
}

// run keeps one stream to the frontend at addr open until wk is stopped,
// reconnecting with jittered exponential backoff.
func (w *Workers) run(conn *grpc.ClientConn, addr string, wk *worker) {
	defer close(wk.done)
	c := frontendpb.NewFrontendClient(conn)
	backoff := minBackoff
	for {
		served, err := w.stream(c, wk)
		select {
		case <-wk.stop:
			return
		default:
		}
		if status.Code(err) == codes.Canceled {
			// The frontend cancelled the request this stream ran: it is
			// up and has more work, so reconnect at once.
			backoff = minBackoff
			continue
		}
		if served {
			backoff = minBackoff
		}
		w.logger.Debug("query frontend stream ended: reconnecting", "frontend", addr, "err", err, "backoff", backoff)
		select {
		case <-wk.stop:
			return
		case <-time.After(backoff/2 + rand.N(backoff/2)):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// stream serves one Process stream until it ends or wk is stopped while
// idle; served reports whether it answered anything. When the stream ends
// while a request runs (the frontend's way of cancelling it, or the
// frontend gone), the request's context is cancelled.
func (w *Workers) stream(c frontendpb.FrontendClient, wk *worker) (served bool, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := c.Process(ctx)
	if err != nil {
		return false, err
	}
	if err := st.Send(&frontendpb.QuerierToFrontend{QuerierId: w.self, QuerierCores: int32(runtime.GOMAXPROCS(0))}); err != nil {
		return false, err
	}
	w.connected.Inc()
	defer w.connected.Dec()
	requests := make(chan *frontendpb.FrontendToQuerier)
	var recvErr error
	go func() {
		defer close(requests)
		for {
			m, err := st.Recv()
			if err != nil {
				recvErr = err
				return
			}
			select {
			case requests <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		var m *frontendpb.FrontendToQuerier
		select {
		case <-wk.stop:
			return served, nil
		case m = <-requests:
		}
		if m == nil {
			return served, recvErr
		}
		rctx, rcancel := context.WithCancel(ctx)
		answer := make(chan *frontendpb.HTTPResponse, 1)
		go func() { answer <- serveHTTP(rctx, w.h, m.GetRequest(), w.logger) }()
		select {
		case resp := <-answer:
			rcancel()
			if err := st.Send(&frontendpb.QuerierToFrontend{Id: m.GetId(), Response: resp}); err != nil {
				return served, err
			}
			served = true
		case next := <-requests:
			// Only the stream's end may come while a request runs.
			rcancel()
			<-answer
			if next != nil {
				return served, fmt.Errorf("protocol: request %d sent while %d runs", next.GetId(), m.GetId())
			}
			return served, recvErr
		}
	}
}
