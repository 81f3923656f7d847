package queue

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/frontendpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/tenant"
)

var logger = slog.New(slog.DiscardHandler)

func newScheduler(t *testing.T, maxQueued int) (*Scheduler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s := NewScheduler(Config{MaxOutstandingPerTenant: maxQueued}, reg, logger)
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s, reg
}

func newRequest(t *testing.T, ctx context.Context, org, query string) *http.Request {
	t.Helper()
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://frontend/prometheus/api/v1/query?query="+query, nil)
	require.NoError(t, err)
	r.Header.Set(tenant.HeaderName, org)
	r.Header.Set("Authorization", "Bearer secret")
	return r
}

// roundTrip runs one request in the background.
func roundTrip(s *Scheduler, r *http.Request) <-chan error {
	errc := make(chan error, 1)
	go func() {
		resp, err := s.RoundTrip(r)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = errors.New(resp.Status)
			}
		}
		errc <- err
	}()
	return errc
}

func queueLen(s *Scheduler, org string) float64 {
	return testutil.ToFloat64(s.queueLength.WithLabelValues(org))
}

func waitQueued(t *testing.T, s *Scheduler, org string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return queueLen(s, org) == float64(n) }, 5*time.Second, time.Millisecond, "%s has %d queued", org, n)
}

func startLocal(t *testing.T, s *Scheduler, n int, h http.Handler) *LocalWorkers {
	t.Helper()
	w := NewLocalWorkers(s, n, h, logger)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	return w
}

// A flood of one tenant queued first does not delay another's requests
// beyond one round: the worker alternates between the tenants with work.
func TestRoundRobinAcrossTenants(t *testing.T) {
	s, _ := newScheduler(t, 100)
	var errs []<-chan error
	for range 20 {
		errs = append(errs, roundTrip(s, newRequest(t, context.Background(), "flood", "x")))
	}
	waitQueued(t, s, "flood", 20)
	for range 3 {
		errs = append(errs, roundTrip(s, newRequest(t, context.Background(), "quiet", "y")))
	}
	waitQueued(t, s, "quiet", 3)
	errs = append(errs, roundTrip(s, newRequest(t, context.Background(), "a|b", "z")))
	waitQueued(t, s, "a|b", 1)

	var mu sync.Mutex
	var order []string
	startLocal(t, s, 1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids, err := tenant.IDsFromContext(r.Context())
		require.NoError(t, err)
		require.Empty(t, r.Header.Get("Authorization"), "credentials stay at the frontend")
		mu.Lock()
		order = append(order, tenant.JoinIDs(ids))
		mu.Unlock()
	}))
	for _, e := range errs {
		require.NoError(t, <-e)
	}
	require.Equal(t, []string{"flood", "quiet", "a|b", "flood", "quiet", "flood", "quiet", "flood"}, order[:8])
	require.Len(t, order, 24)
}

// A tenant over its queue bound gets 429 with the flag to change; another
// tenant is unaffected.
func TestQueueBound(t *testing.T) {
	s, reg := newScheduler(t, 2)
	for range 2 {
		roundTrip(s, newRequest(t, context.Background(), "a", "x"))
	}
	waitQueued(t, s, "a", 2)
	_, err := s.RoundTrip(newRequest(t, context.Background(), "a", "x"))
	require.Error(t, err)
	require.Equal(t, http.StatusTooManyRequests, apierr.HTTPStatus(err))
	require.Contains(t, err.Error(), "-frontend.max-outstanding-requests-per-tenant")
	roundTrip(s, newRequest(t, context.Background(), "b", "x"))
	waitQueued(t, s, "b", 1)
	require.Equal(t, 1.0, testutil.ToFloat64(s.outcomes.WithLabelValues(outcomeQueueFull)))
	n, err := testutil.GatherAndCount(reg, "orrery_frontend_queue_length")
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

func TestMissingTenant(t *testing.T) {
	s, _ := newScheduler(t, 2)
	r := newRequest(t, context.Background(), "a", "x")
	r.Header.Del(tenant.HeaderName)
	_, err := s.RoundTrip(r)
	require.Equal(t, http.StatusUnauthorized, apierr.HTTPStatus(err))
}

// A request whose caller goes away while it waits leaves the queue and is
// never run.
func TestCancelWhileQueued(t *testing.T) {
	s, _ := newScheduler(t, 10)
	ctx, cancel := context.WithCancel(context.Background())
	errc := roundTrip(s, newRequest(t, ctx, "a", "cancelled"))
	waitQueued(t, s, "a", 1)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	require.Zero(t, queueLen(s, "a"))
	require.Equal(t, 1.0, testutil.ToFloat64(s.outcomes.WithLabelValues(outcomeCanceledQueued)))

	ran := make(chan string, 10)
	startLocal(t, s, 2, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { ran <- r.URL.Query().Get("query") }))
	require.NoError(t, <-roundTrip(s, newRequest(t, context.Background(), "a", "after")))
	require.Equal(t, "after", <-ran)
	require.Empty(t, ran, "the cancelled request never ran")
}

// grpcFrontend serves s's Process on a loopback port.
func grpcFrontend(t *testing.T, s *Scheduler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	frontendpb.RegisterFrontendServer(srv, s)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// staticRing is a ring of fixed members, all healthy.
type staticRing struct {
	mu        sync.Mutex
	instances []*ringpb.Instance
}

func (r *staticRing) Instances() []*ringpb.Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.instances
}

func (r *staticRing) IsHealthy(*ringpb.Instance, time.Time) bool { return true }

func (r *staticRing) set(in ...*ringpb.Instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.instances = in
}

func startWorkers(t *testing.T, cfg WorkerConfig, self string, n int, h http.Handler, r Ring, changed <-chan struct{}) (*Workers, *prometheus.Registry) {
	t.Helper()
	if r == nil {
		r = &staticRing{}
	}
	reg := prometheus.NewRegistry()
	w := NewWorkers(cfg, self, n, h, r, changed, nil, reg, logger)
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	return w, reg
}

// A request whose caller goes away while a remote querier runs it is
// cancelled there: the frontend ends the stream and the worker cancels the
// handler's context; the worker then reconnects and serves on.
func TestCancelWhileRunningRemote(t *testing.T) {
	s, _ := newScheduler(t, 10)
	addr := grpcFrontend(t, s)
	started, stopped := make(chan struct{}, 1), make(chan error, 1)
	startWorkers(t, WorkerConfig{FrontendAddress: addr}, "q1", 1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("query") == "block" {
			started <- struct{}{}
			<-r.Context().Done()
			stopped <- r.Context().Err()
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := roundTrip(s, newRequest(t, ctx, "a", "block"))
	<-started
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	select {
	case err := <-stopped:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("the querier's handler was not cancelled")
	}
	require.Equal(t, 1.0, testutil.ToFloat64(s.outcomes.WithLabelValues(outcomeCanceledRun)))
	require.NoError(t, <-roundTrip(s, newRequest(t, context.Background(), "a", "next")), "the worker reconnected")
	require.Zero(t, testutil.ToFloat64(s.retries), "a cancelled request is not retried")
}

func TestCancelWhileRunningLocal(t *testing.T) {
	s, _ := newScheduler(t, 10)
	started, stopped := make(chan struct{}), make(chan error, 1)
	startLocal(t, s, 1, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		stopped <- r.Context().Err()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	errc := roundTrip(s, newRequest(t, ctx, "a", "block"))
	<-started
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	require.ErrorIs(t, <-stopped, context.Canceled)
}

// rawWorker is a hand-driven querier: it takes one request and, instead
// of answering, drops the stream as a crashed querier would.
func rawWorker(t *testing.T, addr string) (got <-chan string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	st, err := frontendpb.NewFrontendClient(conn).Process(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Send(&frontendpb.QuerierToFrontend{QuerierId: "crashing"}))
	out := make(chan string, 1)
	go func() {
		defer cancel()
		m, err := st.Recv()
		if err == nil {
			out <- m.GetRequest().GetUrl()
		}
	}()
	return out
}

// A worker lost while running a request: the request runs once more on
// another worker and its caller gets that answer; lost twice, it fails
// with 503 and says why.
func TestWorkerLost(t *testing.T) {
	s, _ := newScheduler(t, 10)
	addr := grpcFrontend(t, s)
	crashed := rawWorker(t, addr)
	require.Eventually(t, func() bool { return testutil.ToFloat64(s.workers) == 1 }, 5*time.Second, time.Millisecond)
	errc := roundTrip(s, newRequest(t, context.Background(), "a", "retried"))
	require.Contains(t, <-crashed, "retried")
	waitQueued(t, s, "a", 1)
	ran := make(chan string, 2)
	startWorkers(t, WorkerConfig{FrontendAddress: addr}, "q1", 1, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ran <- r.URL.Query().Get("query")
	}), nil, nil)
	require.NoError(t, <-errc)
	require.Equal(t, "retried", <-ran)
	require.Equal(t, 1.0, testutil.ToFloat64(s.retries))
	require.Equal(t, 1.0, testutil.ToFloat64(s.outcomes.WithLabelValues(outcomeAnswered)))

	s2, _ := newScheduler(t, 10)
	addr2 := grpcFrontend(t, s2)
	first := rawWorker(t, addr2)
	errc = roundTrip(s2, newRequest(t, context.Background(), "a", "doomed"))
	<-first
	second := rawWorker(t, addr2)
	<-second
	err := <-errc
	require.Equal(t, http.StatusServiceUnavailable, apierr.HTTPStatus(err))
	require.Contains(t, err.Error(), "disconnected 2 times")
	require.Equal(t, 1.0, testutil.ToFloat64(s2.outcomes.WithLabelValues(outcomeWorkerLost)))
}

// Workers find frontends in the ring (never themselves), divide their
// concurrency among them, and close the workers of a frontend that left.
func TestWorkersFollowRing(t *testing.T) {
	s1, _ := newScheduler(t, 100)
	s2, _ := newScheduler(t, 100)
	a1, a2 := grpcFrontend(t, s1), grpcFrontend(t, s2)
	fe := func(id, addr string) *ringpb.Instance {
		return &ringpb.Instance{Id: id, Addr: addr, State: ringpb.State_ACTIVE, Components: []string{"querier", FrontendComponent}}
	}
	r := &staticRing{}
	r.set(fe("fe1", a1), fe("fe2", a2), fe("self", "127.0.0.1:1"),
		&ringpb.Instance{Id: "ing", Addr: "127.0.0.1:2", State: ringpb.State_ACTIVE, Components: []string{"ingester"}})
	changed := make(chan struct{}, 1)
	w, _ := startWorkers(t, WorkerConfig{}, "self", 5, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), r, changed)
	require.Eventually(t, func() bool {
		n1, n2 := testutil.ToFloat64(s1.workers), testutil.ToFloat64(s2.workers)
		return n1+n2 == 5 && min(n1, n2) == 2
	}, 5*time.Second, 5*time.Millisecond, "5 workers over two frontends")
	require.NoError(t, <-roundTrip(s2, newRequest(t, context.Background(), "a", "x")))

	r.set(fe("fe1", a1))
	changed <- struct{}{}
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(s1.workers) == 5 && testutil.ToFloat64(s2.workers) == 0
	}, 5*time.Second, 5*time.Millisecond, "fe2's workers closed, fe1 takes all")
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(w.connected) == 5
	}, 5*time.Second, 5*time.Millisecond)
}

// Stopping the frontend fails what is queued with 503 and lets workers go.
func TestStopFailsQueued(t *testing.T) {
	s, _ := newScheduler(t, 10)
	errc := roundTrip(s, newRequest(t, context.Background(), "a", "x"))
	waitQueued(t, s, "a", 1)
	require.NoError(t, s.Stop(context.Background()))
	err := <-errc
	require.Equal(t, http.StatusServiceUnavailable, apierr.HTTPStatus(err))
	_, err = s.RoundTrip(newRequest(t, context.Background(), "a", "x"))
	require.Equal(t, http.StatusServiceUnavailable, apierr.HTTPStatus(err))
}

// Many callers of several tenants, some giving up at random moments, over
// remote and local workers at once: every answer reaches its own caller,
// and no request is counted twice or lost.
func TestConcurrentCallersGetTheirOwnAnswers(t *testing.T) {
	s, _ := newScheduler(t, 1000)
	addr := grpcFrontend(t, s)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids, _ := tenant.IDsFromContext(r.Context())
		time.Sleep(time.Duration(len(r.URL.Query().Get("query"))%3) * time.Millisecond)
		_, _ = io.WriteString(w, tenant.JoinIDs(ids)+"/"+r.URL.Query().Get("query"))
	})
	startWorkers(t, WorkerConfig{FrontendAddress: addr}, "q1", 4, echo, nil, nil)
	startLocal(t, s, 2, echo)
	var wg sync.WaitGroup
	for c := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			org := []string{"a", "b", "c", "a|b"}[c%4]
			q := strings.Repeat("q", c%7) + strconv.Itoa(c)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(c%5+1)*time.Millisecond*20)
			defer cancel()
			resp, err := s.RoundTrip(newRequest(t, ctx, org, q))
			if err != nil {
				require.ErrorIs(t, err, context.DeadlineExceeded)
				return
			}
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, org+"/"+q, string(body))
		}()
	}
	wg.Wait()
	total := 0.0
	for _, o := range []string{outcomeAnswered, outcomeCanceledQueued, outcomeCanceledRun} {
		total += testutil.ToFloat64(s.outcomes.WithLabelValues(o))
	}
	require.Equal(t, 200.0, total, "one outcome per request")
	for _, org := range []string{"a", "b", "c", "a|b"} {
		require.Zero(t, queueLen(s, org))
	}
}

// A tenant runs at most MaxRunningPerTenant requests at once even with
// workers free, so another tenant's request starts at once.
func TestMaxRunningPerTenant(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewScheduler(Config{MaxOutstandingPerTenant: 100, MaxRunningPerTenant: 2}, reg, logger)
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	var mu sync.Mutex
	running, most := map[string]int{}, 0
	release := make(chan struct{})
	startLocal(t, s, 4, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		org := r.Header.Get(tenant.HeaderName)
		mu.Lock()
		running[org]++
		if org == "a" {
			most = max(most, running[org])
		}
		mu.Unlock()
		if org == "a" {
			<-release
		}
		mu.Lock()
		running[org]--
		mu.Unlock()
	}))
	var errs []<-chan error
	for range 6 {
		errs = append(errs, roundTrip(s, newRequest(t, context.Background(), "a", "x")))
	}
	waitQueued(t, s, "a", 4)
	require.NoError(t, <-roundTrip(s, newRequest(t, context.Background(), "b", "y")), "b runs while a waits")
	require.Equal(t, 4.0, queueLen(s, "a"), "a's requests wait with workers free")
	close(release)
	for _, e := range errs {
		require.NoError(t, <-e)
	}
	require.Equal(t, 2, most)
}

// Without a configured bound a tenant runs up to half the cores the
// connected queriers report, at least one.
func TestRunningBoundFollowsQuerierCores(t *testing.T) {
	s, _ := newScheduler(t, 100)
	for _, c := range []struct {
		querier     string
		cores, want int
	}{{"q1", 1, 1}, {"q1", 1, 1}, {"q2", 6, 3}, {"q3", 8, 7}} {
		s.connect(c.querier, c.cores)
		s.mu.Lock()
		limit := s.runningLimitLocked()
		s.mu.Unlock()
		require.Equal(t, c.want, limit, "%+v", c)
	}
	s.disconnect("q3")
	s.disconnect("q1")
	require.Equal(t, 7, s.cores, "q1 has a worker left")
	s.disconnect("q1")
	require.Equal(t, 6, s.cores)
}

// The default bound is work-conserving: a tenant alone runs on every
// worker; once another tenant is present (queued, running, or done within
// sharedWindow) it is held to half the cores again.
func TestDefaultBoundOnlyWhenShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewScheduler(Config{MaxOutstandingPerTenant: 100}, reg, logger)
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	s.connect("q1", 2)
	var mu sync.Mutex
	running, most := 0, 0
	release := make(chan struct{})
	startLocal(t, s, 4, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if r.Header.Get(tenant.HeaderName) != "a" {
			return
		}
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
	}))
	var errs []<-chan error
	for range 4 {
		errs = append(errs, roundTrip(s, newRequest(t, context.Background(), "a", "x")))
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return running == 4 }, 5*time.Second, time.Millisecond,
		"a alone runs on every worker")
	close(release)
	for _, e := range errs {
		require.NoError(t, <-e)
	}
	require.Equal(t, 4, most)

	// b has just been served: a is held to half the cores again.
	require.NoError(t, <-roundTrip(s, newRequest(t, context.Background(), "b", "y")))
	s.mu.Lock()
	limit := s.runningLimitLocked()
	s.mu.Unlock()
	require.Less(t, limit, 4)
	mu.Lock()
	most = 0
	mu.Unlock()
	release = make(chan struct{})
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	errs = errs[:0]
	for range 4 {
		errs = append(errs, roundTrip(s, newRequest(t, context.Background(), "a", "x")))
	}
	waitQueued(t, s, "a", 4-limit)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return running == limit }, 5*time.Second, time.Millisecond,
		"the taken requests reach the handler")
	close(release)
	released = true
	for _, e := range errs {
		require.NoError(t, <-e)
	}
	require.Equal(t, limit, most)

	// Long after b's last request, a is alone again, and b's queue is
	// forgotten.
	s.mu.Lock()
	for _, q := range s.queues {
		q.lastDone = q.lastDone.Add(-sharedWindow)
	}
	shared := s.sharedLocked(time.Now())
	_, kept := s.queues["b"]
	s.mu.Unlock()
	require.False(t, shared)
	require.False(t, kept)
}
