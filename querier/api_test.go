package querier

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/tenant"
)

// /federate and metadata wait in the same queue as queries: with one
// place, taken by a slow query, neither reaches an ingester before its
// client gives up.
func TestFederateAndMetadataWaitInTheQueryQueue(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConcurrent = 1
	now := time.Now()
	tq := newTestQuerier(t, cfg, 1, map[string][]fakeSeries{"a": series("up", 1, now.Add(-time.Minute), now)}, false)
	ing := tq.cluster.ingesters[0]
	ing.delay = time.Second

	done := make(chan int)
	go func() {
		code, _ := tq.get(t, "a", PathPrefix+"/query", url.Values{"query": {"up"}, "time": {unix(now)}})
		done <- code
	}()
	require.Eventually(t, func() bool { return ing.calls.Load() == 1 }, 5*time.Second, time.Millisecond, "the query holds the only place")

	for _, path := range []string{FederatePath + "?match[]=up", PathPrefix + "/metadata"} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		r := httptest.NewRequest(http.MethodGet, path, nil).WithContext(ctx)
		r.Header.Set(tenant.HeaderName, "a")
		tq.handler.ServeHTTP(httptest.NewRecorder(), r)
		cancel()
		require.Equal(t, int64(1), ing.calls.Load(), "%s reached an ingester past the queue", path)
	}
	require.Equal(t, http.StatusOK, <-done)
}
