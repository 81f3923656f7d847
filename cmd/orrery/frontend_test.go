package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/frontend"
	"github.com/orrery/orrery/frontend/queue"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/tenant"
)

// The frontend as wired here hands the authenticated tenant to the querier
// in the header, and answers the queue's refusals as the Prometheus API
// answers errors.
func TestFrontendOverQueue(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	s := queue.NewScheduler(queue.Config{MaxOutstandingPerTenant: 1}, reg, logger)
	defer s.Stop(context.Background())
	var feCfg frontend.Config
	feCfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	var lim limits.Limits
	lim.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	fe, err := frontend.New(feCfg, s, fixedLimits{&lim}, prometheus.NewRegistry(), logger)
	require.NoError(t, err)
	h := tenant.FederatedMiddleware(false, nil, fe)
	// block is closed however the test ends: the server's Close waits for
	// the handler, so a failed assertion must not leave it blocked.
	block := make(chan struct{})
	var unblock sync.Once
	defer unblock.Do(func() { close(block) })
	started := make(chan struct{}, 2)
	w := queue.NewLocalWorkers(s, 1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		if r.Form.Get("query") == "block" {
			started <- struct{}{}
			<-block
		}
		ids, err := tenant.IDsFromContext(r.Context())
		require.NoError(t, err)
		w.Header().Set("X-Seen", tenant.JoinIDs(ids))
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "query="+r.Form.Get("query"))
	}), logger)
	require.NoError(t, w.Start(context.Background()))
	defer w.Stop(context.Background())

	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(org, query string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/prometheus/api/v1/query?query="+query, nil)
		require.NoError(t, err)
		if org != "" {
			req.Header.Set(tenant.HeaderName, org)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp
	}
	resp := get("", "up")
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusTeapot, resp.StatusCode)
	require.Equal(t, tenant.Anonymous, resp.Header.Get("X-Seen"))
	require.Equal(t, "query=up", string(body))

	// One running, one queued: the next of that tenant is refused. The
	// second is sent only once the worker holds the first, or both could
	// meet in the queue and one be refused.
	done := make(chan int, 2)
	send := func() {
		resp := get("b|a", "block")
		resp.Body.Close()
		done <- resp.StatusCode
	}
	go send()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker never took the first request")
	}
	go send()
	require.Eventually(t, func() bool {
		return testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP orrery_frontend_queue_length Requests waiting in the query frontend's queue for a worker, per tenant (a|b for a cross-tenant read).
# TYPE orrery_frontend_queue_length gauge
orrery_frontend_queue_length{tenant="a|b"} 1
orrery_frontend_queue_length{tenant="anonymous"} 0
`), "orrery_frontend_queue_length") == nil
	}, 30*time.Second, time.Millisecond)
	resp = get("a|b", "x")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	var e map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	resp.Body.Close()
	require.Equal(t, "error", e["status"])
	require.Contains(t, e["error"], "-frontend.max-outstanding-requests-per-tenant")
	unblock.Do(func() { close(block) })
	require.Equal(t, http.StatusTeapot, <-done)
	require.Equal(t, http.StatusTeapot, <-done)
}

// fixedLimits gives every tenant the same limits.
type fixedLimits struct{ l *limits.Limits }

func (f fixedLimits) For(string) *limits.Limits { return f.l }
