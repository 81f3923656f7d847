package distributor

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/tenant"
)

// Push, the ruler's entry, counts against the same in-flight request
// limit as remote write: with the limit at 1 and a ruler push in flight, a
// client push is refused with 503 (found by the ruler's review).
func TestPushCountsAgainstInflightRequestLimit(t *testing.T) {
	d, clients := newConfiguredDistributor(t, 1, &fixedLimits{}, func(c *Config) {
		c.InstanceLimits.MaxInflightPushRequests = 1
		c.RemoteTimeout = 10 * time.Second
	})
	block := make(chan struct{})
	clients["ing-0"].block = block
	done := make(chan error, 1)
	go func() {
		_, err := d.Push(tenant.WithID(context.Background(), "t"), "t", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "rule_out")}})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // the ruler's push is now blocked at the ingester
	inflight := d.requests.Load()
	body := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "up")}})
	code := make(chan int, 1)
	go func() { code <- post(d, body, nil).Code }()
	var got int
	select {
	case got = <-code:
	case <-time.After(300 * time.Millisecond):
		got = -1 // admitted and now blocked at the ingester too
	}
	close(block)
	<-done
	require.Equal(t, int64(1), inflight, "the ruler's push in flight is not counted against max-inflight-push-requests")
	require.Equal(t, http.StatusServiceUnavailable, got)
}
