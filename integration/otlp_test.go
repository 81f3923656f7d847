//go:build integration

package integration

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// otelExport is what an OpenTelemetry SDK or Collector sends for two
// services at time at: gauges, int and float counters, an explicit-bucket
// histogram and a summary, attributes with dots and a leading underscore,
// resource attributes, one metric with a unit suffix and one with a
// ratio unit.
func otelExport(at time.Time, step int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for r, svc := range []string{"checkout", "cart"} {
		rm := md.ResourceMetrics().AppendEmpty()
		attrs := rm.Resource().Attributes()
		attrs.PutStr("service.name", svc)
		attrs.PutStr("service.namespace", "shop")
		attrs.PutStr("service.instance.id", fmt.Sprintf("pod-%d", r))
		attrs.PutStr("k8s.pod.name", fmt.Sprintf("%s-7d9f-%d", svc, r))
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName("io.opentelemetry.http")
		sm.Scope().SetVersion("1.2.3")
		ms := sm.Metrics()
		ts := pcommon.NewTimestampFromTime(at)
		start := pcommon.NewTimestampFromTime(at.Add(-time.Hour))

		g := ms.AppendEmpty()
		g.SetName("process.memory.usage")
		g.SetUnit("By")
		g.SetDescription("Resident memory.")
		gp := g.SetEmptyGauge().DataPoints().AppendEmpty()
		gp.SetTimestamp(ts)
		gp.SetIntValue(int64(1<<20*(r+1) + step))

		u := ms.AppendEmpty()
		u.SetName("system.cpu.utilization")
		u.SetUnit("1")
		up := u.SetEmptyGauge().DataPoints().AppendEmpty()
		up.SetTimestamp(ts)
		up.SetDoubleValue(0.25 + float64(step)/100)
		up.Attributes().PutStr("cpu.mode", "user")
		up.Attributes().PutStr("_private", "x")

		c := ms.AppendEmpty()
		c.SetName("http.server.request.count")
		c.SetUnit("{request}")
		sum := c.SetEmptySum()
		sum.SetIsMonotonic(true)
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		for i, route := range []string{"/pay", "/cart"} {
			p := sum.DataPoints().AppendEmpty()
			p.SetStartTimestamp(start)
			p.SetTimestamp(ts)
			p.SetIntValue(int64(10*(i+1) + step))
			p.Attributes().PutStr("http.route", route)
			p.Attributes().PutInt("http.response.status_code", 200)
		}

		f := ms.AppendEmpty()
		f.SetName("db.client.bytes")
		f.SetUnit("By")
		fsum := f.SetEmptySum()
		fsum.SetIsMonotonic(true)
		fsum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		fp := fsum.DataPoints().AppendEmpty()
		fp.SetStartTimestamp(start)
		fp.SetTimestamp(ts)
		fp.SetDoubleValue(1234.5 + float64(step))

		h := ms.AppendEmpty()
		h.SetName("http.server.request.duration")
		h.SetUnit("s")
		hist := h.SetEmptyHistogram()
		hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		hp := hist.DataPoints().AppendEmpty()
		hp.SetStartTimestamp(start)
		hp.SetTimestamp(ts)
		hp.ExplicitBounds().FromRaw([]float64{0.005, 0.1, 1})
		hp.BucketCounts().FromRaw([]uint64{uint64(1 + step), 5, 2, 1})
		hp.SetCount(uint64(9 + step))
		hp.SetSum(3.25 + float64(step))
		hp.Attributes().PutStr("http.route", "/pay")

		e := ms.AppendEmpty()
		e.SetName("http.client.request.duration")
		e.SetUnit("s")
		eh := e.SetEmptyExponentialHistogram()
		eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		ep := eh.DataPoints().AppendEmpty()
		ep.SetStartTimestamp(start)
		ep.SetTimestamp(ts)
		ep.SetScale(2)
		ep.SetZeroCount(uint64(step))
		ep.Positive().SetOffset(-3)
		ep.Positive().BucketCounts().FromRaw([]uint64{1, uint64(2 + step), 0, 4})
		ep.Negative().SetOffset(1)
		ep.Negative().BucketCounts().FromRaw([]uint64{uint64(step)})
		ep.SetCount(uint64(7 + 3*step))
		ep.SetSum(2.5 + float64(step))
		ep.Attributes().PutStr("http.route", "/pay")

		s := ms.AppendEmpty()
		s.SetName("rpc.latency")
		s.SetUnit("ms")
		sp := s.SetEmptySummary().DataPoints().AppendEmpty()
		sp.SetStartTimestamp(start)
		sp.SetTimestamp(ts)
		sp.SetCount(uint64(4 + step))
		sp.SetSum(40 + float64(step))
		for _, q := range []float64{0.5, 0.99} {
			qv := sp.QuantileValues().AppendEmpty()
			qv.SetQuantile(q)
			qv.SetValue(q * 20)
		}
	}
	return md
}

func postOTLP(t *testing.T, u string, body []byte, contentType string, gzipped bool) (int, []byte) {
	t.Helper()
	if gzipped {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, err := zw.Write(body)
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		body = buf.Bytes()
	}
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

// TestOTLPMatchesPrometheus3: the same OTLP exports, protobuf and JSON,
// plain and gzip, sent to Orrery and to Prometheus 3's OTLP receiver, give
// the same series, samples and metadata through the query API.
func TestOTLPMatchesPrometheus3(t *testing.T) {
	t.Parallel()
	o := startOrrery(t, t.TempDir())
	prom := startPrometheus3WithConfig(t, func(int) string { return "global: {}\n" }, "--web.enable-otlp-receiver")

	base := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	for step := range 4 {
		at := base.Add(time.Duration(step) * 15 * time.Second)
		req := pmetricotlp.NewExportRequestFromMetrics(otelExport(at, step))
		contentType, gzipped := "application/x-protobuf", step%2 == 1
		body, err := req.MarshalProto()
		if step >= 2 {
			contentType = "application/json"
			body, err = req.MarshalJSON()
		}
		require.NoError(t, err)
		code, out := postOTLP(t, prom+"/api/v1/otlp/v1/metrics", body, contentType, gzipped)
		require.Equal(t, http.StatusOK, code, "Prometheus 3: %s", out)
		code, out = postOTLP(t, o.url("/otlp/v1/metrics"), body, contentType, gzipped)
		require.Equal(t, http.StatusOK, code, "Orrery: %s", out)
		resp := pmetricotlp.NewExportResponse()
		if contentType == "application/json" {
			require.NoError(t, resp.UnmarshalJSON(out))
		} else {
			require.NoError(t, resp.UnmarshalProto(out))
		}
		require.Zero(t, resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage())
	}

	end := base.Add(time.Minute)
	queries := []url.Values{
		{"query": {`{__name__=~".+"}`}, "time": {strconv.FormatInt(end.Unix(), 10)}},
		{"query": {`{__name__=~".+"}`}, "start": {strconv.FormatInt(base.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)}, "step": {"15"}},
		{"query": {`sum by (http_route) (rate(http_server_request_duration_seconds_bucket[1m]))`}, "time": {strconv.FormatInt(end.Unix(), 10)}},
		{"query": {`target_info`}, "time": {strconv.FormatInt(end.Unix(), 10)}},
		{"query": {`histogram_quantile(0.9, sum by (http_route) (rate(http_client_request_duration_seconds[1m])))`}, "time": {strconv.FormatInt(end.Unix(), 10)}},
	}
	for _, q := range queries {
		path := "/api/v1/query"
		if q.Has("start") {
			path = "/api/v1/query_range"
		}
		want, err := get(prom, path, q)
		require.NoError(t, err)
		require.Equal(t, "success", want.Status, "%s: %s", q.Get("query"), want.Error)
		got, err := get(o.url("/prometheus"), path, q)
		require.NoError(t, err)
		require.Empty(t, diffResponses(want, got), "%s %v", path, q)
	}

	// Not two empty answers: every family's series is there.
	all, err := httpGet(o.url("/prometheus/api/v1/query?") + queries[0].Encode())
	require.NoError(t, err)
	for _, name := range []string{"process_memory_usage_bytes", "system_cpu_utilization_ratio", "http_server_request_count_total",
		"db_client_bytes_total", "http_server_request_duration_seconds_bucket", "http_client_request_duration_seconds", "rpc_latency_milliseconds_count", "target_info"} {
		require.Contains(t, all, `"__name__":"`+name+`"`)
	}

	// Metadata per metric family, as remote write's is kept (Prometheus
	// 3's metadata API answers from its scrape targets only, so it has
	// none to compare).
	got, err := httpGet(o.url("/prometheus/api/v1/metadata"))
	require.NoError(t, err)
	for _, family := range []string{
		`"http_server_request_duration_seconds":[{"type":"histogram","unit":"seconds","help":""}]`,
		`"process_memory_usage_bytes":[{"type":"gauge","unit":"bytes","help":"Resident memory."}]`,
		`"http_server_request_count_total":[{"type":"counter","unit":"","help":""}]`,
	} {
		require.Contains(t, got, family)
	}
}

// TestOTLPUTF8TenantMatchesPrometheus3: tenants whose overrides choose
// UTF-8 names and one of Prometheus's other translation strategies
// (without suffixes, NoUTF8EscapingWithSuffixes, NoTranslation) store the
// same export, summaries and exponential histograms included, as a
// Prometheus 3 configured the same way does; with NoUTF8EscapingWithSuffixes
// OTLP's dotted names are kept and PromQL's quoted names read them alike.
// Another tenant keeps legacy names and stores the same export escaped.
func TestOTLPUTF8TenantMatchesPrometheus3(t *testing.T) {
	t.Parallel()
	overrides := filepath.Join(t.TempDir(), "overrides.yaml")
	strategies := otelStrategies[1:]
	var yaml strings.Builder
	yaml.WriteString("overrides:\n")
	for _, s := range strategies {
		fmt.Fprintf(&yaml, "  %s:\n    name_validation_scheme: utf8\n    otlp: {translation_strategy: %s}\n", s, s)
	}
	require.NoError(t, os.WriteFile(overrides, []byte(yaml.String()), 0o644))
	o := startOrrery(t, t.TempDir(), "-runtime-config.file="+overrides)

	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	body, err := pmetricotlp.NewExportRequestFromMetrics(otelExport(at, 0)).MarshalProto()
	require.NoError(t, err)
	now := strconv.FormatInt(at.Add(30*time.Second).Unix(), 10)
	for _, strategy := range strategies {
		prom := startPrometheus3WithConfig(t, func(int) string {
			return "otlp:\n  translation_strategy: " + strategy + "\n"
		}, "--web.enable-otlp-receiver")
		code, out := postOTLP(t, prom+"/api/v1/otlp/v1/metrics", body, "application/x-protobuf", false)
		require.Equal(t, http.StatusOK, code, "Prometheus 3: %s", out)
		req, err := http.NewRequest(http.MethodPost, o.url("/otlp/v1/metrics"), bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Scope-OrgID", strategy)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, strategy)

		queries := []string{`{__name__=~".+"}`, `count by (__name__) ({__name__=~".+"})`}
		if strategy == "NoUTF8EscapingWithSuffixes" {
			queries = append(queries, `{"http.server.request.duration_seconds_bucket", "http.route"="/pay"}`,
				`sum by ("service.name") ({"process.memory.usage_bytes"})`)
		}
		for _, q := range queries {
			params := url.Values{"query": {q}, "time": {now}}
			want, err := get(prom, "/api/v1/query", params)
			require.NoError(t, err)
			require.Equal(t, "success", want.Status, "%s: %s", q, want.Error)
			_, got := queryAs(t, o, strategy, "/query", params)
			require.Empty(t, diffResponses(want, &got), "%s: %s", strategy, q)
		}
	}
	_, got := queryAs(t, o, "NoUTF8EscapingWithSuffixes", "/query", url.Values{"query": {`{"http.server.request.count_total"}`}, "time": {now}})
	require.Contains(t, string(got.Data), `"http.route":"/pay"`, "the dotted names are stored, not escaped")
	_, summary := queryAs(t, o, "NoTranslation", "/query", url.Values{"query": {`{__name__=~"rpc.latency.*"}`}, "time": {now}})
	require.Contains(t, string(summary.Data), `"quantile"`, "the summary is stored")

	// The default tenant keeps legacy names and the default translation:
	// the same export is stored with escaped names.
	code, out := postOTLP(t, o.url("/otlp/v1/metrics"), body, "application/x-protobuf", false)
	require.Equal(t, http.StatusOK, code, "%s", out)
	_, legacy := queryAs(t, o, "anonymous", "/query", url.Values{"query": {`http_server_request_count_total`}, "time": {now}})
	require.Contains(t, string(legacy.Data), `"http_route":"/pay"`)
	require.NotContains(t, string(legacy.Data), `"http.route"`)
}
