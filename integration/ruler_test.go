//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// webhook is an Alertmanager webhook receiver: it keeps every alert it
// was sent.
type webhook struct {
	url    string
	mu     sync.Mutex
	alerts []webhookAlert
}

type webhookAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func startWebhook(t *testing.T) *webhook {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	w := &webhook{url: "http://" + ln.Addr().String() + "/hook"}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var msg struct {
			Alerts []webhookAlert `json:"alerts"`
		}
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &msg) == nil {
			w.mu.Lock()
			w.alerts = append(w.alerts, msg.Alerts...)
			w.mu.Unlock()
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return w
}

// firing returns the firing alerts received with this alertname.
func (w *webhook) firing(name string) []webhookAlert { return w.received(name, "firing") }

// resolved returns the resolutions received for this alertname.
func (w *webhook) resolved(name string) []webhookAlert { return w.received(name, "resolved") }

func (w *webhook) received(name, status string) []webhookAlert {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []webhookAlert
	for _, a := range w.alerts {
		if a.Labels["alertname"] == name && a.Status == status {
			out = append(out, a)
		}
	}
	return out
}

// startAlertmanager runs Debian's Alertmanager, routing every alert to
// the webhook at once, and returns its URL.
func startAlertmanager(t *testing.T, hook string) string {
	t.Helper()
	bin := dependency(t, "ORRERY_ALERTMANAGER", "Debian's prometheus-alertmanager package")
	dir := t.TempDir()
	port := freePort(t)
	cfg := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: %s
`, hook)), 0o644))
	startProcess(t, "alertmanager", bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address=")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base+"/-/ready")
	return base
}

// rulerRules are seed 000's alert rules and a recording rule. Long `for`
// so the restart test sees a pending alert; a short one so one fires.
const rulerRules = `groups:
- name: targets
  rules:
  - alert: monitor_service_down
    expr: up == 0
    for: 2s
    labels:
      severity: critical
    annotations:
      summary: "Monitor service non-operational"
      description: "Service {{ $labels.instance }} is down."
  - alert: long_down
    expr: up == 0
    for: 10m
  - record: job:up:sum
    expr: sum by (job) (up)
`

// pushNow writes one sample at the current time of each series for the
// tenant, through remote write.
func pushNow(url, tenantID string, series map[string]float64) error {
	now := time.Now().UnixMilli()
	var req prompb.WriteRequest
	for name, v := range series {
		ts := prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: now, Value: v}}}
		for _, kv := range strings.Split(name, ",") {
			k, val, _ := strings.Cut(kv, "=")
			ts.Labels = append(ts.Labels, prompb.Label{Name: k, Value: val})
		}
		slices.SortFunc(ts.Labels, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		req.Timeseries = append(req.Timeseries, ts)
	}
	raw, err := req.Marshal()
	if err != nil {
		return err
	}
	r, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(snappy.Encode(nil, raw))))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	r.Header.Set("X-Scope-OrgID", tenantID)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, body)
	}
	return nil
}

// rulesAPI is the part of /api/v1/rules and /alerts the tests compare.
type rulesAPI struct {
	Status string `json:"status"`
	Data   struct {
		Groups []struct {
			Name     string           `json:"name"`
			Interval float64          `json:"interval"`
			Rules    []map[string]any `json:"rules"`
		} `json:"groups"`
		Alerts []map[string]any `json:"alerts"`
	} `json:"data"`
}

func getRules(t *testing.T, base, tenantID, path string) (rulesAPI, string) {
	t.Helper()
	code, body := getAs(t, base+path, tenantID)
	require.Equal(t, http.StatusOK, code, body)
	var out rulesAPI
	require.NoError(t, json.Unmarshal([]byte(body), &out), body)
	return out, body
}

// shape is the JSON value's structure: its keys, recursively, with
// values replaced by their JSON type.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = shape(e)
		}
		return out
	case []any:
		if len(x) == 0 {
			return "[]"
		}
		return []any{shape(x[0])}
	default:
		return fmt.Sprintf("%T", v)
	}
}

// TestRulerAlertsThroughAlertmanager: seed 000's alert fires through a
// real Alertmanager to a webhook with its labels and templated
// annotations; the recording rule's series is queryable; /rules and
// /alerts have exactly Prometheus 3's shape and values for the same rules
// and data; another tenant sees none of it; and a kill -9 does not reset
// a pending alert's `for` clock (ALERTS_FOR_STATE).
func TestRulerAlertsThroughAlertmanager(t *testing.T) {
	t.Parallel()
	hook := startWebhook(t)
	am := startAlertmanager(t, hook.url)

	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules", "team-a")
	require.NoError(t, os.MkdirAll(rulesDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(rulesDir, "seed.yaml"), []byte(rulerRules), 0o644))
	seed000, err := os.ReadFile("../deploy/compose/rules/demo/seed000.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(rulesDir, "seed000.yml"), seed000, 0o644))
	flags := []string{"-ruler.alertmanager-url=" + am, "-ruler.evaluation-interval=1s", "-ruler.poll-interval=1s",
		"-ruler.resend-delay=1s", "-ruler.for-grace-period=1s", "-auth.enabled=true"}
	o := startOrrery(t, dir, flags...)

	// Prometheus lists groups by file path, Orrery by file name within
	// the tenant: the same names in one directory give both one order,
	// wherever the checkout and the temporary directory are.
	promDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(promDir, "seed.yaml"), []byte(rulerRules), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(promDir, "seed000.yml"), seed000, 0o644))
	prom := startPrometheus3WithConfig(t, func(int) string {
		return "global:\n  evaluation_interval: 1s\nrule_files: [" + filepath.Join(promDir, "*") + "]\n"
	}, "--rules.alert.for-grace-period=1s")

	series := map[string]float64{
		"__name__=up,job=node,instance=host-1:9100": 0,
		"__name__=up,job=node,instance=host-2:9100": 1,
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			// Errors while Orrery restarts are expected; the alert
			// checks say whether enough arrived.
			_ = pushNow(o.url("/api/v1/push"), "team-a", series)
			_ = pushNow(prom+"/api/v1/write", "", series)
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	require.Eventually(t, func() bool { return len(hook.firing("monitor_service_down")) > 0 }, 60*time.Second, 200*time.Millisecond,
		"the alert reaches the webhook through Alertmanager")
	got := hook.firing("monitor_service_down")[0]
	require.Equal(t, map[string]string{"alertname": "monitor_service_down", "instance": "host-1:9100", "job": "node", "severity": "critical"}, got.Labels)
	require.Equal(t, "Service host-1:9100 is down.", got.Annotations["description"])

	// The recording rule's series, written back through the distributor.
	require.Eventually(t, func() bool {
		code, r := queryAs(t, o, "team-a", "/query", map[string][]string{"query": {`job:up:sum{job="node"}`}})
		return code == http.StatusOK && strings.Contains(string(r.Data), `"1"`)
	}, 30*time.Second, 200*time.Millisecond, "job:up:sum is queryable")

	// /rules and /alerts: Prometheus 3's shape and, but for times, values.
	for _, path := range []string{"/prometheus/api/v1/rules", "/prometheus/api/v1/alerts"} {
		promPath := strings.TrimPrefix(path, "/prometheus")
		require.Eventually(t, func() bool {
			ours, ourBody := getRules(t, o.url(""), "team-a", path)
			theirs, theirBody := getRules(t, prom, "", promPath)
			var a, b any
			require.NoError(t, json.Unmarshal([]byte(ourBody), &a))
			require.NoError(t, json.Unmarshal([]byte(theirBody), &b))
			if fmt.Sprint(shape(a)) != fmt.Sprint(shape(b)) {
				t.Logf("%s shapes differ:\nours   %v\ntheirs %v", path, shape(a), shape(b))
				return false
			}
			return fmt.Sprint(comparable(ours)) == fmt.Sprint(comparable(theirs))
		}, 30*time.Second, time.Second, "%s answers as Prometheus 3's", path)
	}

	ours, _ := getRules(t, o.url(""), "team-a", "/prometheus/api/v1/rules")
	require.Len(t, ours.Data.Groups, 3, "seed.yaml's group and seed000.yml's two")

	// Another tenant has no rules and no alerts.
	other, _ := getRules(t, o.url(""), "team-b", "/prometheus/api/v1/rules")
	require.Empty(t, other.Data.Groups)
	code, _ := getAs(t, o.url("/prometheus/api/v1/rules"), "")
	require.Equal(t, http.StatusUnauthorized, code, "the rules API needs a tenant")

	// kill -9 while long_down is pending: after the restart its activeAt
	// is restored from ALERTS_FOR_STATE, before the restart, not reset.
	before := activeAt(t, o, "long_down")
	time.Sleep(5 * time.Second)
	o.kill9(t)
	restarted := time.Now()
	o.start(t, flags...)
	// Prometheus restores after the group's second evaluation; until then
	// the alert shows the activeAt of the first.
	var after time.Time
	require.Eventually(t, func() bool {
		after = activeAt(t, o, "long_down")
		return !after.IsZero() && after.Before(restarted)
	}, 30*time.Second, 200*time.Millisecond, "the for clock survives the restart: active since %v, restarted at %v (before the kill: %v)", after, restarted, before)
	require.False(t, after.Before(before), "restored activeAt %v is not before the original %v", after, before)
}

// comparable is what of a rules or alerts answer must equal Prometheus's:
// names, queries, labels, annotations, health and state, not times.
func comparable(r rulesAPI) []string {
	var out []string
	keep := func(m map[string]any) string {
		return fmt.Sprint(m["name"], m["query"], m["duration"], m["labels"], m["annotations"], m["health"], m["state"], m["type"], m["value"])
	}
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			s := g.Name + " " + keep(rule)
			if alerts, ok := rule["alerts"].([]any); ok {
				for _, a := range alerts {
					s += " alert:" + keep(a.(map[string]any))
				}
			}
			out = append(out, s)
		}
	}
	for _, a := range r.Data.Alerts {
		out = append(out, keep(a))
	}
	slices.Sort(out)
	return out
}

// activeAt is when the tenant's alert of that name became active, zero
// when it is not.
func activeAt(t *testing.T, o *orrery, name string) time.Time {
	t.Helper()
	r, _ := getRules(t, o.url(""), "team-a", "/prometheus/api/v1/alerts")
	for _, a := range r.Data.Alerts {
		if a["labels"].(map[string]any)["alertname"] == name {
			at, err := time.Parse(time.RFC3339Nano, a["activeAt"].(string))
			require.NoError(t, err)
			return at
		}
	}
	return time.Time{}
}
