package queue

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestAuditQuietTenantsForgottenWithFixedBound: quiet tenants' queues (and
// their per-tenant metric series) are forgotten only by sharedLocked, which
// popLocked calls only for the default bound. With
// -frontend.max-running-requests-per-tenant set, every tenant ID ever seen
// (any header value without -auth.enabled) stays in the map and in
// orrery_frontend_queue_length / _queue_wait_seconds forever.
func TestAuditQuietTenantsForgottenWithFixedBound(t *testing.T) {
	for _, bound := range []int{0, 2} {
		t.Run(fmt.Sprintf("max-running=%d", bound), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			s := NewScheduler(Config{MaxOutstandingPerTenant: 10, MaxRunningPerTenant: bound}, reg, logger)
			t.Cleanup(func() { _ = s.Stop(context.Background()) })
			startLocal(t, s, 2, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			for k := range 200 {
				require.NoError(t, <-roundTrip(s, newRequest(t, context.Background(), fmt.Sprintf("t%d", k), "x")))
			}
			// Long after: every one of them is quiet.
			s.mu.Lock()
			for _, q := range s.queues {
				q.lastDone = q.lastDone.Add(-2 * sharedWindow)
			}
			s.mu.Unlock()
			require.NoError(t, <-roundTrip(s, newRequest(t, context.Background(), "last", "x")))
			s.mu.Lock()
			n := len(s.queues)
			s.mu.Unlock()
			require.LessOrEqual(t, n, 2, "quiet tenants' queues are forgotten")
			series, err := testutil.GatherAndCount(reg, "orrery_frontend_queue_length")
			require.NoError(t, err)
			require.LessOrEqual(t, series, 2, "quiet tenants' metric series are deleted")
		})
	}
}
