//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPrometheus2RemoteWrites is README's scenario: Debian's Prometheus
// scrapes itself and remote-writes to Orrery; Orrery answers `up` and holds
// every series Prometheus sent, with nothing rejected.
func TestPrometheus2RemoteWrites(t *testing.T) {
	bin := os.Getenv("ORRERY_PROMETHEUS2")
	if bin == "" {
		t.Skip("ORRERY_PROMETHEUS2 is not set: run `make test`, which installs Debian's prometheus")
	}
	o := startOrrery(t, t.TempDir())
	dir := t.TempDir()
	port := freePort(t)
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:%d']
remote_write:
  - url: %s
    queue_config: {batch_send_deadline: 1s}
`, port, o.url("/api/v1/push"))), 0o644))
	startProcess(t, "prometheus2", bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))

	require.Eventually(t, func() bool {
		_, body := rawGet(t, o.url("/prometheus/api/v1/query?query=up"))
		return strings.Contains(body, `"job":"prometheus"`) && strings.Contains(body, `"1"]`)
	}, 30*time.Second, 250*time.Millisecond, "up answers through Orrery")
	require.Zero(t, metricValue(t, o, "orrery_distributor_discarded_samples_total"), "nothing Prometheus sent was rejected")
	_, body := rawGet(t, o.url("/prometheus/api/v1/query?query=count(prometheus_build_info)"))
	require.Contains(t, body, `"1"]`)
}
