//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/deploy/mixin"
	"github.com/orrery/orrery/loadgen"
)

// mixinTenants are the credentials of the test: ops holds Orrery's own
// metrics (Debian's Prometheus 2 cannot send X-Scope-OrgID, so it writes
// with basic auth), team-a and limited are tenants whose traffic the
// dashboards show.
const mixinTenants = `tokens:
  - {token: ops, tenant: ops}
  - {token: team-a, tenant: team-a}
  - {token: limited, tenant: limited}
users:
  - {username: ops, password: secret, tenant: ops}
`

// limited's limits are tiny so that one push and two queries meet them:
// the limit panels and alerts then have series to show.
const mixinOverrides = `overrides:
  limited:
    max_global_series_per_user: 2
    max_fetched_series_per_query: 1
    max_query_length: 1h
`

// team-a's rules: an alert that always fires, so its notifier sends to
// Alertmanager, and a recording rule.
const mixinTenantRules = `groups:
- name: always
  rules:
  - alert: Always
    expr: vector(1)
  - record: mixin:up:count
    expr: count(mixin_up)
`

// TestMixin runs the monitoring mixin against a live Orrery: Debian's
// Prometheus 2 scrapes Orrery (-target=all, ruler on, a real Alertmanager)
// and remote-writes what it scrapes into Orrery as tenant ops, while the
// test writes, queries and runs rules as other tenants. Then:
//   - promtool accepts alerts.yaml;
//   - every metric name a dashboard (panel or variable) or an alert uses is
//     on Orrery's /metrics;
//   - every panel's query, evaluated through Orrery's query API as ops,
//     parses and returns a non-empty result, and every variable has values;
//   - alerts.yaml, loaded into Orrery's own ruler for ops, evaluates every
//     rule without error.
func TestMixin(t *testing.T) {
	// It waits for scrapes, remote write and rule evaluations, and bounds
	// no latency (integration/doc.go).
	t.Parallel()
	prom2 := dependency(t, "ORRERY_PROMETHEUS2", "Debian's prometheus package, for its promtool")
	promtool := filepath.Join(filepath.Dir(prom2), "promtool")
	out, err := exec.Command(promtool, "check", "rules", "../deploy/mixin/alerts.yaml").CombinedOutput()
	require.NoError(t, err, "promtool check rules:\n%s", out)

	queries, variables, names := mixinQueries(t)

	hook := startWebhook(t)
	am := startAlertmanager(t, hook.url)
	dir := t.TempDir()
	for tenantID, rules := range map[string][]byte{"team-a": []byte(mixinTenantRules), "ops": mixin.Alerts} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "rules", tenantID), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "rules", tenantID, "rules.yaml"), rules, 0o644))
	}
	tokens := filepath.Join(dir, "tokens.yaml")
	require.NoError(t, os.WriteFile(tokens, []byte(mixinTenants), 0o600))
	overrides := filepath.Join(dir, "overrides.yaml")
	require.NoError(t, os.WriteFile(overrides, []byte(mixinOverrides), 0o644))
	o := startOrrery(t, dir, "-auth.enabled=true", "-auth.tokens-file="+tokens,
		"-runtime-config.file="+overrides, "-runtime-config.reload-period=1s",
		"-ruler.alertmanager-url="+am, "-ruler.evaluation-interval=1s", "-ruler.poll-interval=1s",
		"-ring.heartbeat-period=1s")
	// A second member, so that the ring and gossip panels have peers'
	// heartbeats to count.
	startOrrery(t, t.TempDir(), "-target=distributor", "-instance.id=mixin-distributor",
		fmt.Sprintf("-memberlist.join=127.0.0.1:%d", o.gossip), "-ring.heartbeat-period=1s",
		"-auth.enabled=true", "-auth.tokens-file="+tokens)
	startPrometheus2(t, func(int) string {
		return fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: orrery
    static_configs: [{targets: ['127.0.0.1:%d']}]
remote_write:
  - url: %s
    basic_auth: {username: ops, password: secret}
    queue_config: {batch_send_deadline: 1s}
`, o.http, o.url("/api/v1/push"))
	})

	exerciseForMixin(t, o)

	// Some series exist only once something happened (a tenant's first
	// write, query or refusal; a peer's first message): wait for them.
	var missing []string
	waitFor(20*time.Second, func() bool {
		body, err := httpGet(o.url("/metrics"))
		require.NoError(t, err)
		have := exportedNames(body)
		missing = missing[:0]
		for _, n := range names {
			if !have[n] {
				missing = append(missing, n)
			}
		}
		return len(missing) == 0
	})
	require.Empty(t, missing, "metrics the mixin uses that Orrery's /metrics lacks")

	// Each query is asked again until it has answered with data once: the
	// rates need two scrapes of a series, and remote write takes a few
	// seconds to deliver them.
	// First one cheap query on a counter the exercise created: once it has
	// two samples in ops' data, so should the rest.
	waitFor(20*time.Second, func() bool {
		n, _ := instantQuery(t, o, "ops", "rate(orrery_frontend_queries_rejected_total[1m])")
		return n > 0
	})
	failures := map[string]string{}
	for _, q := range queries {
		failures[q.Panel] = q.Expr + ": not asked"
	}
	waitFor(30*time.Second, func() bool {
		for _, q := range queries {
			if _, failing := failures[q.Panel]; !failing {
				continue
			}
			if n, problem := instantQuery(t, o, "ops", q.Expr); problem != "" || n == 0 {
				failures[q.Panel] = fmt.Sprintf("%s: %d series %s", q.Expr, n, problem)
			} else {
				delete(failures, q.Panel)
			}
		}
		return len(failures) == 0
	})
	require.Empty(t, failures, "panel queries that gave no data")

	// Each variable offers values, as Grafana asks for them.
	for file, vs := range variables {
		for _, v := range vs {
			u := o.url("/prometheus/api/v1/label/" + v.Label + "/values?" + url.Values{"match[]": {v.Selector}}.Encode())
			code, body := authed(t, http.MethodGet, u, "ops", nil)
			require.Equal(t, http.StatusOK, code, body)
			var r struct{ Data []string }
			require.NoError(t, json.Unmarshal([]byte(body), &r), body)
			require.NotEmpty(t, r.Data, "%s: variable %s has no values: %s", file, v.Variable, body)
		}
	}

	// The mixin's alerts run in Orrery's own ruler, as README.md says.
	groups, errs := rulefmt.Parse(mixin.Alerts, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	var want int
	for _, g := range groups.Groups {
		want += len(g.Rules)
	}
	var health map[string]string
	waitFor(20*time.Second, func() bool {
		health = ruleHealth(t, o, "ops")
		if len(health) != want {
			return false
		}
		for _, h := range health {
			if h != "ok" {
				return false
			}
		}
		return true
	})
	require.Len(t, health, want, "every alert of alerts.yaml is loaded: %v", health)
	for name, h := range health {
		require.Equal(t, "ok", h, "%s evaluates in Orrery's ruler", name)
	}
	t.Logf("%d metric names exported, %d panel queries and %d variables answered with data, %d alerts evaluated",
		len(names), len(queries), len(slices.Concat(slices.Collect(maps.Values(variables))...)), want)
}

// waitFor calls done every 250 ms until it returns true or d has passed.
// Unlike require.Eventually it calls done on the test's goroutine, so done
// may fail the test and set what the assertions after it read.
func waitFor(d time.Duration, done func() bool) {
	for deadline := time.Now().Add(d); !done() && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
	}
}

// mixinQueries returns every panel query and every variable's query of
// the mixin's dashboards (by dashboard file), and every metric name the
// dashboards' panels and variables and the alerts use.
func mixinQueries(t *testing.T) ([]mixin.Query, map[string][]mixin.VariableQuery, []string) {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	dashboards, err := mixin.Dashboards()
	require.NoError(t, err)
	var queries []mixin.Query
	variables := map[string][]mixin.VariableQuery{}
	var exprs []string
	for _, d := range dashboards {
		qs, err := d.Queries()
		require.NoError(t, err)
		queries = append(queries, qs...)
		for _, q := range qs {
			exprs = append(exprs, q.Expr)
		}
		vs, err := d.VariableQueries()
		require.NoError(t, err)
		variables[d.File] = vs
		for _, v := range vs {
			exprs = append(exprs, v.Selector)
		}
	}
	groups, errs := rulefmt.Parse(mixin.Alerts, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	var names []string
	for _, e := range exprs {
		n, err := mixin.MetricNames(p, e)
		require.NoError(t, err, e)
		names = append(names, n...)
	}
	slices.Sort(names)
	return queries, variables, slices.Compact(names)
}

// exerciseForMixin makes Orrery create the series that appear only on
// first use: per-tenant writes and refusals, queries through the frontend
// and refusals by query limits.
func exerciseForMixin(t *testing.T, o *orrery) {
	t.Helper()
	now := time.Now()
	sample := func(name string, at time.Time, labels ...string) prompb.TimeSeries {
		s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}}}
		for i := 0; i < len(labels); i += 2 {
			s.Labels = append(s.Labels, prompb.Label{Name: labels[i], Value: labels[i+1]})
		}
		s.Samples = []prompb.Sample{{Timestamp: at.UnixMilli(), Value: 1}}
		return s
	}
	push := func(token string, wantCode int, series ...prompb.TimeSeries) {
		t.Helper()
		raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
		require.NoError(t, err)
		code, body := authed(t, http.MethodPost, o.url("/api/v1/push"), token, loadgen.Compress(nil, raw))
		require.Equal(t, wantCode, code, body)
	}
	push("team-a", http.StatusNoContent, sample("mixin_up", now, "i", "0"), sample("mixin_up", now, "i", "1"))
	// Refused by the distributor: too far in the future.
	push("team-a", http.StatusBadRequest, sample("mixin_up", now.Add(time.Hour), "i", "2"))
	// Refused by the ingester: older than what it holds for the series.
	push("team-a", http.StatusBadRequest, sample("mixin_up", now.Add(-time.Minute), "i", "0"))
	// limited may hold 2 series; the third is refused at its series limit.
	push("limited", http.StatusBadRequest, sample("mixin_limited", now, "i", "0"), sample("mixin_limited", now, "i", "1"), sample("mixin_limited", now, "i", "2"))

	query := func(token, path string, params url.Values, wantCode int) {
		t.Helper()
		code, body := authed(t, http.MethodGet, o.url("/prometheus/api/v1/"+path+"?"+params.Encode()), token, nil)
		require.Equal(t, wantCode, code, body)
	}
	rangeOf := func(q string, d time.Duration) url.Values {
		return url.Values{"query": {q}, "start": {fmt.Sprint(now.Add(-d).Unix())}, "end": {fmt.Sprint(now.Unix())}, "step": {"60"}}
	}
	query("team-a", "query", url.Values{"query": {"sum(mixin_up)"}}, http.StatusOK)
	query("team-a", "query_range", rangeOf("sum(mixin_up)", time.Hour), http.StatusOK)
	// Refused by the querier: two series fetched, one allowed.
	query("limited", "query", url.Values{"query": {"count(mixin_limited)"}}, http.StatusUnprocessableEntity)
	// Refused by the frontend: two hours, one allowed.
	query("limited", "query_range", rangeOf("count(mixin_limited)", 2*time.Hour), http.StatusBadRequest)
}

// exportedNames returns the metric names of a /metrics page, histograms'
// and summaries' series (_bucket, _sum, _count) included, as a scrape
// stores them.
func exportedNames(page string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(page, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		out[name] = true
	}
	return out
}

// instantQuery evaluates expr now as the tenant and returns how many
// series it gave, or what went wrong.
func instantQuery(t *testing.T, o *orrery, token, expr string) (int, string) {
	t.Helper()
	code, body := authed(t, http.MethodGet, o.url("/prometheus/api/v1/query?query="+url.QueryEscape(expr)), token, nil)
	if code != http.StatusOK {
		return 0, fmt.Sprintf("status %d: %s", code, body)
	}
	var r struct {
		Data struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return 0, fmt.Sprintf("%v: %s", err, body)
	}
	if r.Data.ResultType != "vector" {
		return 0, "result type " + r.Data.ResultType
	}
	return len(r.Data.Result), ""
}

// ruleHealth returns the health of each of the tenant's rules by name.
func ruleHealth(t *testing.T, o *orrery, token string) map[string]string {
	t.Helper()
	code, body := authed(t, http.MethodGet, o.url("/prometheus/api/v1/rules"), token, nil)
	require.Equal(t, http.StatusOK, code, body)
	var r rulesAPI
	require.NoError(t, json.Unmarshal([]byte(body), &r), body)
	out := map[string]string{}
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			name, _ := rule["name"].(string)
			health, _ := rule["health"].(string)
			if e, _ := rule["lastError"].(string); e != "" {
				health += ": " + e
			}
			out[name] = health
		}
	}
	return out
}
