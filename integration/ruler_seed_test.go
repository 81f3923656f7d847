//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/internal/apicompare"
)

// nodeTarget is a scrape target on a fixed port that can be stopped and
// started again: node_exporter's metrics the seed's rules read, with a
// CPU counter that grows.
type nodeTarget struct {
	addr string
	srv  *http.Server
	cpu  atomic.Int64
}

func (n *nodeTarget) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	require.Eventually(t, func() bool {
		var err error
		ln, err = net.Listen("tcp", n.addr)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "listen on %s again", n.addr)
	n.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c := n.cpu.Add(3)
		fmt.Fprintf(w, "node_load1 0.5\nnode_memory_MemTotal_bytes 1000\nnode_memory_MemFree_bytes 600\nnode_memory_Buffers_bytes 10\nnode_memory_Cached_bytes 10\n")
		fmt.Fprintf(w, "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} %d\nnode_cpu_seconds_total{cpu=\"0\",mode=\"user\"} %d\n", c, c/3)
	})}
	go func() { _ = n.srv.Serve(ln) }()
}

func (n *nodeTarget) stop() { _ = n.srv.Close() }

// recordingRules are in the style of seed 000's follower
// node_exporter_recording.rules; query_offset leaves remote write's lag
// behind the evaluation.
const recordingRules = `groups:
- name: node_recording
  interval: 2s
  query_offset: 5s
  rules:
  - record: instance_mode:node_cpu_seconds:rate1m
    expr: sum by (instance, mode) (rate(node_cpu_seconds_total[1m]))
`

// TestSeedAlertsThroughOrrery is seed 000's alerting setup with Orrery in
// the federation leader's place: Debian's Prometheus scrapes a node target
// and remote-writes to Orrery (and to a Prometheus 3, the reference); the
// seed's alert rules, verbatim, and a recording rule run in Orrery's
// ruler. When the target stops, monitor_service_down goes pending, fires
// after its 30s and reaches a webhook through a real Alertmanager with its
// labels and rendered annotations; when it comes back the resolution is
// delivered. The recording rule's samples equal Prometheus 3's answer for
// its expression at the same timestamps. A second, unreachable
// Alertmanager disturbs none of it.
func TestSeedAlertsThroughOrrery(t *testing.T) {
	t.Parallel()
	hook := startWebhook(t)
	am := startAlertmanager(t, hook.url)
	dead := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))

	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules", "anonymous")
	require.NoError(t, os.MkdirAll(rulesDir, 0o755))
	seed000, err := os.ReadFile("../deploy/compose/rules/demo/seed000.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(rulesDir, "alert.rules.yml"), seed000, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(rulesDir, "node_exporter_recording.yml"), []byte(recordingRules), 0o644))
	o := startOrrery(t, dir, "-ruler.alertmanager-url="+dead+","+am, "-ruler.evaluation-interval=1s", "-ruler.poll-interval=1s",
		"-ruler.resend-delay=2s", "-ruler.notification-timeout=1s")
	prom3 := startPrometheus3(t)

	target := &nodeTarget{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	target.start(t)
	startPrometheus2(t, func(int) string {
		return fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['%s']
remote_write:
  - url: %s
    queue_config: {batch_send_deadline: 500ms}
  - url: %s
    queue_config: {batch_send_deadline: 500ms}
`, target.addr, o.url("/api/v1/push"), prom3+"/api/v1/write")
	})

	upIs := func(v string) func() bool {
		return func() bool {
			code, r := queryAs(t, o, "anonymous", "/query", map[string][]string{"query": {`up{job="node"}`}})
			return code == http.StatusOK && json.Valid(r.Data) && containsValue(r.Data, v)
		}
	}
	require.Eventually(t, upIs("1"), 30*time.Second, 200*time.Millisecond, "the target is scraped into Orrery")
	// Ten seconds of the counter, so the recording rule has a rate
	// through the outage.
	require.Eventually(t, func() bool {
		_, r := queryAs(t, o, "anonymous", "/query", map[string][]string{"query": {`count_over_time(node_cpu_seconds_total{mode="idle"}[1m]) >= 10`}})
		return strings.Contains(string(r.Data), `"value"`)
	}, 60*time.Second, 500*time.Millisecond, "ten scrapes stored")

	target.stop()
	stopped := time.Now()
	require.Eventually(t, func() bool { return alertState(t, o, "monitor_service_down") == "pending" }, 20*time.Second, 200*time.Millisecond,
		"monitor_service_down goes pending")
	require.Empty(t, hook.firing("monitor_service_down"), "not firing before its for: 30s")
	require.Eventually(t, func() bool { return len(hook.firing("monitor_service_down")) > 0 }, 60*time.Second, 200*time.Millisecond,
		"monitor_service_down fires and reaches the webhook")
	firedAfter := time.Since(stopped)
	require.Greater(t, firedAfter, 30*time.Second, "it fired after its for: 30s")
	got := hook.firing("monitor_service_down")[0]
	require.Equal(t, map[string]string{"alertname": "monitor_service_down", "instance": target.addr, "job": "node", "severity": "critical"}, got.Labels)
	require.Equal(t, "Service "+target.addr+" is down.", got.Annotations["description"])
	require.Equal(t, "Monitor service non-operational", got.Annotations["summary"])
	t.Logf("fired %v after the target stopped", firedAfter)

	target.start(t)
	require.Eventually(t, func() bool { return len(hook.resolved("monitor_service_down")) > 0 }, 60*time.Second, 200*time.Millisecond,
		"the resolution reaches the webhook")

	// The unreachable Alertmanager is counted as failing, nothing more.
	require.Positive(t, labelledMetric(t, o, "prometheus_notifications_errors_total", dead[len("http://"):]))

	// The recording rule's samples against Prometheus 3's answer for its
	// expression at the same timestamps.
	code, r := queryAs(t, o, "anonymous", "/query", map[string][]string{"query": {`instance_mode:node_cpu_seconds:rate1m[40s]`}})
	require.Equal(t, http.StatusOK, code, r.Error)
	var res apicompare.QueryData
	require.NoError(t, json.Unmarshal(r.Data, &res))
	var series []struct {
		Metric map[string]string   `json:"metric"`
		Values []apicompare.Sample `json:"values"`
	}
	require.NoError(t, json.Unmarshal(res.Result, &series))
	require.Len(t, series, 2, "idle and user")
	compared := 0
	for _, s := range series {
		for _, v := range s.Values {
			at := strconv.FormatFloat(v[0].(float64), 'f', 3, 64)
			want, err := get(prom3, "/api/v1/query", map[string][]string{
				"query": {fmt.Sprintf(`sum by (instance, mode) (rate(node_cpu_seconds_total{mode=%q}[1m]))`, s.Metric["mode"])}, "time": {at}})
			require.NoError(t, err)
			var wres apicompare.QueryData
			require.NoError(t, json.Unmarshal(want.Data, &wres))
			var wvec []struct {
				Value apicompare.Sample `json:"value"`
			}
			require.NoError(t, json.Unmarshal(wres.Result, &wvec))
			require.Len(t, wvec, 1, "Prometheus 3 has the series at %s", at)
			require.Equal(t, wvec[0].Value[1], v[1], "%s at %s", s.Metric["mode"], at)
			compared++
		}
	}
	require.Greater(t, compared, 20)
	t.Logf("compared %d recorded samples with Prometheus 3", compared)
}

// containsValue reports whether a vector answer holds the value v.
func containsValue(data json.RawMessage, v string) bool {
	var res apicompare.QueryData
	if json.Unmarshal(data, &res) != nil {
		return false
	}
	var vec []struct {
		Value apicompare.Sample `json:"value"`
	}
	if json.Unmarshal(res.Result, &vec) != nil {
		return false
	}
	for _, s := range vec {
		if s.Value[1] == v {
			return true
		}
	}
	return false
}

// alertState is the state of the tenant anonymous's alert of that name,
// "" when it is not active.
func alertState(t *testing.T, o *orrery, name string) string {
	t.Helper()
	r, _ := getRules(t, o.url(""), "anonymous", "/prometheus/api/v1/alerts")
	for _, a := range r.Data.Alerts {
		if a["labels"].(map[string]any)["alertname"] == name {
			return a["state"].(string)
		}
	}
	return ""
}
