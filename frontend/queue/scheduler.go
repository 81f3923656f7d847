package queue

import (
	"container/list"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/frontendpb"
	"github.com/orrery/orrery/tenant"
)

// Config is the frontend queue's configuration.
type Config struct {
	// MaxOutstandingPerTenant bounds the requests a tenant may have queued
	// (waiting for a worker, not running); one more is refused with 429.
	MaxOutstandingPerTenant int `yaml:"max_outstanding_requests_per_tenant"`
	// MaxRunningPerTenant bounds the requests of one tenant that workers
	// run at once; the rest wait their turn even when workers are free, so
	// that those workers, and the CPU under them, stay free for other
	// tenants: a request is never preempted, so the room a newcomer finds
	// is the room left before it came. Zero: half the cores of the
	// connected queriers, at least one.
	MaxRunningPerTenant int `yaml:"max_running_requests_per_tenant"`
}

// RegisterFlags registers the queue's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxOutstandingPerTenant, "frontend.max-outstanding-requests-per-tenant", 100, "Maximum number of requests a tenant may have waiting in the query frontend's queue; more are refused with 429.")
	fs.IntVar(&c.MaxRunningPerTenant, "frontend.max-running-requests-per-tenant", 0, "Maximum number of a tenant's requests the query frontend's workers run at once; the rest wait even while workers are free, which keeps queriers' CPU for other tenants. 0: half the CPU cores of the connected queriers, at least 1, while more than one tenant uses them (a tenant alone may use every worker).")
}

// Validate reports a bound that would refuse everything.
func (c *Config) Validate() error {
	if c.MaxOutstandingPerTenant < 1 {
		return errors.New("-frontend.max-outstanding-requests-per-tenant must be positive")
	}
	if c.MaxRunningPerTenant < 0 {
		return errors.New("-frontend.max-running-requests-per-tenant must not be negative")
	}
	return nil
}

// Outcomes of a request, the values of orrery_frontend_requests_total's
// outcome label.
const (
	outcomeAnswered       = "answered"
	outcomeQueueFull      = "queue_full"
	outcomeCanceledQueued = "canceled_while_queued"
	outcomeCanceledRun    = "canceled_while_running"
	outcomeWorkerLost     = "worker_lost"
	outcomeStopped        = "stopped"
)

// maxAttempts is how many workers may take a request: one retry after a
// worker disconnected while running it. Every request the frontend sends
// is a read, so running it twice is harmless; running it a third time
// after two disconnects would more likely be a query that kills queriers.
const maxAttempts = 2

// errCanceled is returned by a worker's run when the request's own context
// ended: its caller went away, and the worker must drop it.
var errCanceled = errors.New("request canceled by its caller")

// errStopped is returned to workers once the scheduler stopped.
var errStopped = apierr.New(apierr.Unavailable, "the query frontend is shutting down")

type state int

const (
	queued state = iota
	running
	done
)

// request is one request from RoundTrip to a worker. Its fields after
// http are guarded by Scheduler.mu.
type request struct {
	ctx    context.Context
	id     uint64
	tenant string
	http   *frontendpb.HTTPRequest
	result chan result // buffered 1; written once, when state becomes done

	state    state
	elem     *list.Element // in its tenant's queue while queued
	since    time.Time     // when it was last queued
	attempts int
}

type querierCores struct {
	workers, cores int
}

type result struct {
	resp *frontendpb.HTTPResponse
	err  error
}

type tenantQueue struct {
	name    string
	reqs    list.List
	active  bool // in Scheduler.active
	running int  // requests taken by workers and not released
	// lastDone is when a request of this tenant last ended: a tenant
	// counts as present for sharedWindow after it.
	lastDone time.Time
}

// sharedWindow is how long after its last request a tenant still counts
// as using the queriers, so that the default running bound holds others
// back for it: a dashboard refreshing every 30s or every minute keeps its
// tenant counted between refreshes, and its next query finds a free core.
const sharedWindow = 2 * time.Minute

// Scheduler is the frontend's fair queue; see the package doc. It is safe
// for concurrent use.
type Scheduler struct {
	frontendpb.UnimplementedFrontendServer

	cfg    Config
	logger *slog.Logger
	ids    atomic.Uint64

	mu     sync.Mutex
	queues map[string]*tenantQueue
	// active are the tenants with queued requests in round-robin order;
	// next is the index of the one served next.
	active  []*tenantQueue
	next    int
	idle    []chan struct{} // waiting workers, longest idle first; each woken once
	stopped bool
	// queriers are the connected queriers' cores by querier ID, with how
	// many of its workers are connected; cores is their sum.
	queriers map[string]*querierCores
	cores    int

	queueLength *prometheus.GaugeVec
	queueWait   *prometheus.HistogramVec
	workers     prometheus.Gauge
	outcomes    *prometheus.CounterVec
	retries     prometheus.Counter
}

// NewScheduler returns a Scheduler with an empty queue and no workers.
func NewScheduler(cfg Config, reg prometheus.Registerer, logger *slog.Logger) *Scheduler {
	f := promauto.With(reg)
	return &Scheduler{
		cfg: cfg, logger: logger, queues: map[string]*tenantQueue{}, queriers: map[string]*querierCores{},
		queueLength: f.NewGaugeVec(prometheus.GaugeOpts{Name: "orrery_frontend_queue_length",
			Help: "Requests waiting in the query frontend's queue for a worker, per tenant (a|b for a cross-tenant read)."}, []string{"tenant"}),
		// Per tenant, as the queue length: tenants are few and named by
		// the operator, and the question it answers is who waits.
		queueWait: f.NewHistogramVec(prometheus.HistogramOpts{Name: "orrery_frontend_queue_wait_seconds",
			Help:    "Time requests waited in the query frontend's queue before a worker took them, per tenant.",
			Buckets: []float64{.001, .005, .02, .1, .5, 2, 10, 60}}, []string{"tenant"}),
		workers: f.NewGauge(prometheus.GaugeOpts{Name: "orrery_frontend_connected_workers",
			Help: "Workers taking requests from the query frontend: queriers' streams and local workers."}),
		outcomes: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_frontend_requests_total",
			Help: "Requests through the query frontend's queue by outcome: answered (by a querier, whatever its status), queue_full (429), canceled_while_queued, canceled_while_running, worker_lost (two workers disconnected while running it: 503), stopped (the frontend shut down: 503)."}, []string{"outcome"}),
		retries: f.NewCounter(prometheus.CounterOpts{Name: "orrery_frontend_retries_total",
			Help: "Requests queued again because the worker running them disconnected."}),
	}
}

// RoundTrip queues r for its tenant, the X-Scope-OrgID header, and returns
// a worker's answer, whatever its status. It fails with an apierr error
// when the tenant's queue is full (TooManyRequests), when the header is
// missing (Unauthorized), when two workers were lost running it or the
// frontend stops (Unavailable), and with r's context's error when that
// ends first: a queued request is then dropped without running, a running
// one is cancelled at its worker.
func (s *Scheduler) RoundTrip(r *http.Request) (*http.Response, error) {
	key := r.Header.Get(tenant.HeaderName)
	if key == "" {
		return nil, apierr.New(apierr.Unauthorized, "%s", tenant.ErrNoTenant)
	}
	m, err := fromHTTPRequest(r)
	if err != nil {
		return nil, apierr.New(apierr.BadData, "%s", err)
	}
	req := &request{ctx: r.Context(), id: s.ids.Add(1), tenant: key, http: m, result: make(chan result, 1)}
	if err := s.enqueue(req); err != nil {
		return nil, err
	}
	select {
	case res := <-req.result:
		if res.err != nil {
			return nil, res.err
		}
		return toHTTPResponse(res.resp, r), nil
	case <-r.Context().Done():
		s.abandon(req)
		return nil, r.Context().Err()
	}
}

func (s *Scheduler) enqueue(req *request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		s.outcomes.WithLabelValues(outcomeStopped).Inc()
		return errStopped
	}
	q := s.queues[req.tenant]
	if q == nil {
		q = &tenantQueue{name: req.tenant}
		s.queues[req.tenant] = q
	}
	if q.reqs.Len() >= s.cfg.MaxOutstandingPerTenant {
		s.outcomes.WithLabelValues(outcomeQueueFull).Inc()
		return apierr.New(apierr.TooManyRequests,
			"tenant %q has %d queries waiting in the query frontend already: retry later, or raise -frontend.max-outstanding-requests-per-tenant",
			req.tenant, q.reqs.Len())
	}
	s.pushLocked(q, req, false)
	return nil
}

// pushLocked queues req at the back of q, or at the front for a retry: it
// waited its turn once already.
func (s *Scheduler) pushLocked(q *tenantQueue, req *request, front bool) {
	req.state, req.since = queued, time.Now()
	if front {
		req.elem = q.reqs.PushFront(req)
	} else {
		req.elem = q.reqs.PushBack(req)
	}
	if !q.active {
		q.active = true
		// Last in the round: a tenant that just got work waits for those
		// that were waiting already.
		s.active = append(s.active, q)
	}
	s.queueLength.WithLabelValues(q.name).Set(float64(q.reqs.Len()))
	s.wakeLocked()
}

// abandon drops req, whose caller went away: a queued request leaves the
// queue; a running one is left to its worker, which sees its context end.
func (s *Scheduler) abandon(req *request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch req.state {
	case queued:
		s.removeLocked(req)
		req.state = done
		s.outcomes.WithLabelValues(outcomeCanceledQueued).Inc()
	case running:
		req.state = done
		s.outcomes.WithLabelValues(outcomeCanceledRun).Inc()
	}
}

func (s *Scheduler) removeLocked(req *request) {
	q := s.queues[req.tenant]
	q.reqs.Remove(req.elem)
	req.elem = nil
	s.queueLength.WithLabelValues(q.name).Set(float64(q.reqs.Len()))
	if q.reqs.Len() == 0 {
		s.deactivateLocked(q)
	}
}

func (s *Scheduler) deactivateLocked(q *tenantQueue) {
	for i, a := range s.active {
		if a == q {
			s.active = append(s.active[:i], s.active[i+1:]...)
			if i < s.next {
				s.next--
			}
			break
		}
	}
	if s.next >= len(s.active) {
		s.next = 0
	}
	q.active = false
}

// popLocked takes the oldest request of the next tenant in the round, or
// nil when nothing is queued.
func (s *Scheduler) popLocked() *request {
	limit := s.runningLimitLocked()
	// sharedLocked also forgets quiet tenants, whatever the bound.
	shared := s.sharedLocked(time.Now())
	if s.cfg.MaxRunningPerTenant == 0 && !shared {
		// The default bound is work-conserving: a tenant alone on the
		// queriers may use every worker, so that one user's split and
		// sharded parts run on all cores.
		limit = math.MaxInt
	}
	var q *tenantQueue
	for i := range s.active {
		k := (s.next + i) % len(s.active)
		if c := s.active[k]; c.running < limit {
			q, s.next = c, k
			break
		}
	}
	if q == nil {
		return nil
	}
	req := q.reqs.Front().Value.(*request)
	s.next++
	s.removeLocked(req)
	if s.next >= len(s.active) {
		s.next = 0
	}
	q.running++
	req.state = running
	req.attempts++
	s.queueWait.WithLabelValues(q.name).Observe(time.Since(req.since).Seconds())
	return req
}

// runningLimitLocked is how many requests one tenant may run at once.
func (s *Scheduler) runningLimitLocked() int {
	if s.cfg.MaxRunningPerTenant > 0 {
		return s.cfg.MaxRunningPerTenant
	}
	return max(1, s.cores/2)
}

// sharedLocked reports whether more than one tenant uses the queriers:
// has requests queued or running, or had one end within sharedWindow.
func (s *Scheduler) sharedLocked(now time.Time) bool {
	present := 0
	for name, q := range s.queues {
		switch {
		case q.running > 0 || q.reqs.Len() > 0 || now.Sub(q.lastDone) < sharedWindow:
			present++
		case !q.active:
			// Gone quiet: forgotten, so that tenant IDs seen once (any
			// header value, without -auth.enabled) do not pile up.
			delete(s.queues, name)
			s.queueLength.DeleteLabelValues(name)
			s.queueWait.DeleteLabelValues(name)
		}
	}
	return present > 1
}

// take blocks until a request is queued and returns it, running; it fails
// when ctx ends or the scheduler stops.
func (s *Scheduler) take(ctx context.Context) (*request, error) {
	for {
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			return nil, errStopped
		}
		req := s.popLocked()
		if req != nil {
			s.mu.Unlock()
			return req, nil
		}
		wake := make(chan struct{}, 1)
		s.idle = append(s.idle, wake)
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			s.mu.Lock()
			if i := slices.Index(s.idle, wake); i >= 0 {
				s.idle = slices.Delete(s.idle, i, i+1)
			} else {
				// Woken as it left: the work it was woken for is another's.
				s.wakeLocked()
			}
			s.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// release ends a worker's hold on req, whatever became of it: its tenant
// may run another.
func (s *Scheduler) release(req *request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[req.tenant]
	q.running--
	q.lastDone = time.Now()
	s.wakeLocked()
}

// wakeLocked wakes the longest idle worker, if any, after a change that
// may let one more request run. One, not all: a worker woken for nothing
// costs CPU that the running queries need.
func (s *Scheduler) wakeLocked() {
	if len(s.idle) > 0 {
		s.idle[0] <- struct{}{}
		s.idle = slices.Delete(s.idle, 0, 1)
	}
}

// finish hands a worker's answer to the caller, unless it went away.
func (s *Scheduler) finish(req *request, resp *frontendpb.HTTPResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.state != running {
		return
	}
	req.state = done
	s.outcomes.WithLabelValues(outcomeAnswered).Inc()
	req.result <- result{resp: resp}
}

// lost queues req again after its worker disconnected while running it,
// or fails it when it has had its attempts or the scheduler stopped.
func (s *Scheduler) lost(req *request, worker string, cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.state != running {
		return
	}
	switch {
	case s.stopped:
		req.state = done
		s.outcomes.WithLabelValues(outcomeStopped).Inc()
		req.result <- result{err: errStopped}
	case req.attempts >= maxAttempts:
		req.state = done
		s.outcomes.WithLabelValues(outcomeWorkerLost).Inc()
		req.result <- result{err: apierr.New(apierr.Unavailable,
			"the queriers running this query disconnected %d times, the last %s: %v", req.attempts, worker, cause)}
	default:
		s.retries.Inc()
		s.logger.Warn("worker lost while running a request; queued again", "worker", worker, "tenant", req.tenant, "err", cause)
		q := s.queues[req.tenant]
		if q == nil {
			q = &tenantQueue{name: req.tenant}
			s.queues[req.tenant] = q
		}
		s.pushLocked(q, req, true)
	}
}

// work is a worker's loop: take a request, run it, hand over the answer,
// until ctx ends, the scheduler stops or run fails. run returns the
// answer, errCanceled when the request's caller went away (the worker
// must then be cut off, which is what cancels the request there), or
// another error when the worker is lost.
func (s *Scheduler) work(ctx context.Context, worker string, cores int, run func(*request) (*frontendpb.HTTPResponse, error)) error {
	s.connect(worker, cores)
	defer s.disconnect(worker)
	for {
		req, err := s.take(ctx)
		if err != nil {
			return err
		}
		if req.ctx.Err() != nil {
			// Its caller went away between queueing and now.
			s.release(req)
			continue
		}
		resp, err := run(req)
		s.release(req)
		switch {
		case err == nil:
			s.finish(req, resp)
		case errors.Is(err, errCanceled):
			return err
		default:
			s.lost(req, worker, err)
			return fmt.Errorf("worker %s: %w", worker, err)
		}
	}
}

// connect counts a worker of querier, whose CPU has cores.
func (s *Scheduler) connect(querier string, cores int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workers.Inc()
	q := s.queriers[querier]
	if q == nil {
		q = &querierCores{}
		s.queriers[querier] = q
	}
	q.workers++
	s.cores += max(1, cores) - q.cores
	q.cores = max(1, cores)
	// More cores may let a tenant run one more.
	s.wakeLocked()
}

func (s *Scheduler) disconnect(querier string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workers.Dec()
	q := s.queriers[querier]
	if q.workers--; q.workers == 0 {
		s.cores -= q.cores
		delete(s.queriers, querier)
	}
}

// Start implements lifecycle.Component; the scheduler has nothing to start.
func (s *Scheduler) Start(context.Context) error { return nil }

// Stop fails every queued request with 503 and ends every worker's wait;
// requests already running finish.
func (s *Scheduler) Stop(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for _, q := range s.active {
		for e := q.reqs.Front(); e != nil; e = e.Next() {
			req := e.Value.(*request)
			req.state, req.elem = done, nil
			s.outcomes.WithLabelValues(outcomeStopped).Inc()
			req.result <- result{err: errStopped}
		}
		q.reqs.Init()
		q.active = false
		s.queueLength.WithLabelValues(q.name).Set(0)
	}
	s.active, s.next = nil, 0
	for _, wake := range s.idle {
		wake <- struct{}{}
	}
	s.idle = nil
	return nil
}
