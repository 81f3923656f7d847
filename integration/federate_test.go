//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"net/url"
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
	o := startOrrery(t, t.TempDir())
	end := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	writeGenerated(t, loadgen.New(genSeed, 2), 10, end, o.url("/api/v1/push"))

	// Seed 000's job: honor_labels, /federate, params.match[]; the blackbox
	// job has no data here, the other two do.
	base := startPrometheus2(t, func(int) string {
		return fmt.Sprintf(`
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
`, o.http)
	})

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
