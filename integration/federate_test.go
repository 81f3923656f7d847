//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

func federateBody(t *testing.T, u string, accept string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var sb strings.Builder
	_, err = fmt.Fprint(&sb, resp.StatusCode, " ", resp.Header.Get("Content-Type"), "\n")
	require.NoError(t, err)
	b := make([]byte, 1<<20)
	for {
		n, err := resp.Body.Read(b)
		sb.Write(b[:n])
		if err != nil {
			break
		}
	}
	return sb.String()
}

// TestFederateMatchesPrometheus3 compares /federate byte for byte.
func TestFederateMatchesPrometheus3(t *testing.T) {
	prom := startPrometheus3(t)
	o := startOrrery(t, t.TempDir())
	end := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	writeGenerated(t, loadgen.New(genSeed, 2), 20, end, prom+"/api/v1/write", o.url("/api/v1/push"))
	for _, q := range []string{
		"match[]=" + url.QueryEscape(`{job="prometheus"}`) + "&match[]=" + url.QueryEscape(`{job="node"}`),
		"match[]=" + url.QueryEscape(`up`),
		"match[]=" + url.QueryEscape(`{__name__=~"node_load.*"}`),
		"match[]=" + url.QueryEscape(`{job=~`),
		"",
	} {
		for _, accept := range []string{"", "text/plain;version=0.0.4"} {
			want := federateBody(t, prom+"/federate?"+q, accept)
			got := federateBody(t, o.url("/prometheus/federate?"+q), accept)
			require.Equal(t, want, got, "%s (Accept: %q)", q, accept)
		}
	}
}

// TestPrometheusFederatesFromOrrery runs seed 000's federation job, adapted
// to the test's ports, in Debian's Prometheus against Orrery.
func TestPrometheusFederatesFromOrrery(t *testing.T) {
	bin := os.Getenv("ORRERY_PROMETHEUS2")
	if bin == "" {
		t.Skip("ORRERY_PROMETHEUS2 is not set: run `make test`, which installs Debian's prometheus")
	}
	o := startOrrery(t, t.TempDir())
	end := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	writeGenerated(t, loadgen.New(genSeed, 2), 10, end, o.url("/api/v1/push"))

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	// Seed 000's job: honor_labels, /federate, params.match[]; the blackbox
	// job has no data here, the other two do.
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
scrape_configs:
  - job_name: 'federate'
    scrape_interval: 1s
    honor_labels: true
    metrics_path: '/prometheus/federate'
    params:
      'match[]':
        - '{job="prometheus"}'
        - '{job="node"}'
        - '{job="blackbox"}'
    static_configs:
      - targets:
        - '127.0.0.1:%d'
`, o.http)), 0o644))
	port := freePort(t)
	startProcess(t, "prometheus2", bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base+"/-/ready")

	count := func(u string) string {
		resp, err := get(u, "/api/v1/query", url.Values{"query": {`count({job=~"node|prometheus"})`}})
		require.NoError(t, err)
		return string(resp.Data)
	}
	want := count(o.url("/prometheus"))
	require.Contains(t, want, `"result":[{`)
	wantN := want[strings.LastIndex(want, `,"`):]
	require.Eventually(t, func() bool {
		return strings.HasSuffix(count(base), wantN)
	}, 30*time.Second, 500*time.Millisecond, "the federating Prometheus ingests every matched series (want %s)", wantN)
}
