//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// haSample is one raw sample: milliseconds and the value as the API prints it.
type haSample struct {
	t int64
	v string
}

// rawRange returns the samples of the one series query selects over the
// last 10 minutes, read as tenantID (whose bearer token is its name).
func rawRange(t *testing.T, o *orrery, tenantID, query string) []haSample {
	t.Helper()
	code, body := authed(t, http.MethodGet, o.url("/prometheus/api/v1/query?query="+url.QueryEscape(query+"[10m]")), tenantID, nil)
	require.Equal(t, http.StatusOK, code, body)
	var out struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	if len(out.Data.Result) == 0 {
		return nil
	}
	require.Len(t, out.Data.Result, 1, "%s selects one series", query)
	var samples []haSample
	for _, v := range out.Data.Result[0].Values {
		samples = append(samples, haSample{int64(v[0].(float64) * 1000), v[1].(string)})
	}
	return samples
}

// TestHAPairDeduplication: two real Prometheus replicas (Debian's) scrape
// the same target and remote-write it twice: to tenant "ha", which
// de-duplicates HA pairs, and to tenant "raw", which keeps both replicas
// apart by their __replica__ label. The tenants are told apart by basic
// auth: Debian's Prometheus 2.42 does not send remote_write's custom
// headers, so X-Scope-OrgID cannot be set from its config. Tenant ha holds exactly the elected
// replica's samples, without the replica label; killing the elected
// replica fails over to the other within the failover timeout.
func TestHAPairDeduplication(t *testing.T) {
	dependency(t, "ORRERY_PROMETHEUS2", "Debian's prometheus package")
	const failover = 5 * time.Second
	overrides := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(overrides, []byte("overrides:\n  ha:\n    accept_ha_samples: true\n"), 0o644))
	creds := filepath.Join(t.TempDir(), "auth.yaml")
	require.NoError(t, os.WriteFile(creds, []byte(`tokens:
  - {token: ha, tenant: ha}
  - {token: raw, tenant: raw}
users:
  - {username: ha, password: secret, tenant: ha}
  - {username: raw, password: secret, tenant: raw}
`), 0o600))
	o := startOrrery(t, t.TempDir(), "-runtime-config.file="+overrides, "-auth.enabled=true", "-auth.tokens-file="+creds,
		"-distributor.ha-tracker.update-timeout=1s", "-distributor.ha-tracker.failover-timeout="+failover.String())

	replica := func(name string) func(int) string {
		return func(int) string {
			return fmt.Sprintf(`
global:
  scrape_interval: 1s
  external_labels: {cluster: pair, __replica__: %s}
scrape_configs:
  - job_name: orrery
    static_configs: [{targets: ['127.0.0.1:%d']}]
remote_write:
  - url: %s
    basic_auth: {username: ha, password: secret}
    queue_config: {batch_send_deadline: 1s}
  - url: %s
    basic_auth: {username: raw, password: secret}
    queue_config: {batch_send_deadline: 1s}
`, name, o.http, o.url("/api/v1/push"), o.url("/api/v1/push"))
		}
	}
	procs := map[string]*process{}
	procs["r1"], _ = startPrometheus2Process(t, "prometheus-r1", replica("r1"))
	procs["r2"], _ = startPrometheus2Process(t, "prometheus-r2", replica("r2"))

	const series = `process_resident_memory_bytes{job="orrery"}`
	bySample := func(r string) map[int64]string {
		m := map[int64]string{}
		for _, s := range rawRange(t, o, "raw", strings.Replace(series, "}", `,__replica__="`+r+`"}`, 1)) {
			m[s.t] = s.v
		}
		return m
	}
	// electedOf names the replica whose samples tenant ha holds at ts.
	electedOf := func(s haSample, r1, r2 map[int64]string) string {
		if v, ok := r1[s.t]; ok && v == s.v {
			return "r1"
		}
		if v, ok := r2[s.t]; ok && v == s.v {
			return "r2"
		}
		return ""
	}
	require.Eventually(t, func() bool { return len(rawRange(t, o, "ha", series)) >= 8 }, 60*time.Second, 250*time.Millisecond)

	// Every stored sample is the elected replica's, and every sample of
	// the elected replica since its election is stored.
	ha := rawRange(t, o, "ha", series)
	r1, r2 := bySample("r1"), bySample("r2")
	elected := electedOf(ha[0], r1, r2)
	require.NotEmpty(t, elected, "the first stored sample is one replica's")
	standby := map[string]string{"r1": "r2", "r2": "r1"}[elected]
	mine := map[string]map[int64]string{"r1": r1, "r2": r2}[elected]
	for _, s := range ha {
		require.Equal(t, mine[s.t], s.v, "sample at %d is the elected replica %s's", s.t, elected)
	}
	var since []int64
	for ts := range mine {
		if ts >= ha[0].t && ts <= ha[len(ha)-1].t {
			since = append(since, ts)
		}
	}
	require.Len(t, ha, len(since), "every sample of %s in the window is stored once", elected)
	_, body := authed(t, http.MethodGet, o.url("/prometheus/api/v1/query?query="+url.QueryEscape(`count({__replica__!=""})`)), "ha", nil)
	require.Contains(t, body, `"result":[]`, "no series keeps the replica label")
	require.Positive(t, labelledMetric(t, o, "orrery_distributor_deduped_samples_total", `tenant="ha"`), "the standby's samples were dropped")

	// Fail over: kill the elected replica; the standby takes over.
	killed := time.Now()
	procs[elected].kill9(t)
	var switched time.Duration
	require.Eventually(t, func() bool {
		ha = rawRange(t, o, "ha", series)
		other := bySample(standby)
		last := ha[len(ha)-1]
		if v, ok := other[last.t]; ok && v == last.v {
			switched = time.Since(killed)
			return true
		}
		return false
	}, 4*failover, 200*time.Millisecond, "the standby %s takes over", standby)
	t.Logf("failover: standby's samples stored %s after the elected replica was killed", switched.Round(100*time.Millisecond))

	// No gap in tenant ha longer than the failover timeout plus what the
	// replicas' own pipelines add. The timeout runs from the elected
	// replica's last push, whose newest sample was scraped up to one
	// batch_send_deadline (1s) earlier plus the time its WAL watcher took
	// to read it (a second or more on a loaded machine; a CI run measured
	// 6.5s here); and the standby's first accepted push arrives up to one
	// push interval (1s) after the timeout. So 5s + 1s + 1s, and 1s of
	// slack for the WAL reads: a tracker that waited a second failover
	// period, or never failed over, is still caught.
	gaps := make([]time.Duration, 0, len(ha))
	for k := 1; k < len(ha); k++ {
		gaps = append(gaps, time.Duration(ha[k].t-ha[k-1].t)*time.Millisecond)
	}
	longest := slices.Max(gaps)
	t.Logf("longest gap in the de-duplicated series: %s (failover timeout %s)", longest, failover)
	require.LessOrEqual(t, longest, failover+3*time.Second)
}

// labelledMetric sums the samples of metric name whose labels contain match.
func labelledMetric(t *testing.T, o *orrery, name, match string) float64 {
	t.Helper()
	resp, err := httpGet(o.url("/metrics"))
	require.NoError(t, err)
	sum := 0.0
	for _, line := range strings.Split(resp, "\n") {
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, match) {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		require.NoError(t, err)
		sum += f
	}
	return sum
}
