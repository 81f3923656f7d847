//go:build integration

package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPrometheus2RemoteWrites is README's scenario: Debian's Prometheus
// scrapes itself and remote-writes to Orrery; Orrery answers `up` and holds
// every series Prometheus sent, with nothing rejected.
func TestPrometheus2RemoteWrites(t *testing.T) {
	o := startOrrery(t, t.TempDir())
	startPrometheus2(t, selfScrapeRemoteWrite(o.url("/api/v1/push"), ""))

	require.Eventually(t, func() bool {
		_, body := rawGet(t, o.url("/prometheus/api/v1/query?query=up"))
		return strings.Contains(body, `"job":"prometheus"`) && strings.Contains(body, `"1"]`)
	}, 30*time.Second, 250*time.Millisecond, "up answers through Orrery")
	require.Zero(t, labelledMetric(t, o, "orrery_distributor_discarded_samples_total", ""), "nothing Prometheus sent was rejected")
	_, body := rawGet(t, o.url("/prometheus/api/v1/query?query=count(prometheus_build_info)"))
	require.Contains(t, body, `"1"]`)
}
