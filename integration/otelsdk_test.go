//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
)

// otelStrategies are Prometheus's OTLP translation strategies, each a
// tenant of the same name in TestOTelSDKMatchesPrometheus3's overrides.
var otelStrategies = []string{"UnderscoreEscapingWithSuffixes", "UnderscoreEscapingWithoutSuffixes", "NoUTF8EscapingWithSuffixes", "NoTranslation"}

// TestOTelSDKMatchesPrometheus3: the OpenTelemetry Go SDK, with its
// OTLP/HTTP exporter, records counters, an up-down counter, an observable
// gauge, an explicit-bucket histogram and an exponential histogram for a
// service with resource attributes, and each collection is exported to
// Orrery and to a Prometheus 3 with its OTLP receiver on, for each of
// Prometheus's translation strategies (an Orrery tenant and a Prometheus
// configured with it). Every series and the histogram queries answer
// alike. (The SDK has no summaries: TestOTLPMatchesPrometheus3 sends
// those.)
func TestOTelSDKMatchesPrometheus3(t *testing.T) {
	t.Parallel()
	var overrides strings.Builder
	overrides.WriteString("overrides:\n")
	for _, s := range otelStrategies {
		fmt.Fprintf(&overrides, "  %s:\n    name_validation_scheme: utf8\n    otlp: {translation_strategy: %s}\n", s, s)
	}
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte(overrides.String()), 0o644))
	o := startOrrery(t, t.TempDir(), "-runtime-config.file="+file)
	for _, strategy := range otelStrategies {
		t.Run(strategy, func(t *testing.T) { otelSDKCompare(t, o, strategy) })
	}
}

// otelSDKCompare runs the SDK against tenant strategy of o and a
// Prometheus 3 with that translation strategy, and compares.
func otelSDKCompare(t *testing.T, o *orrery, strategy string) {
	prom := startPrometheus3WithConfig(t, func(int) string {
		return "otlp:\n  translation_strategy: " + strategy + "\n"
	}, "--web.enable-otlp-receiver")
	ctx := ctxTimeout(t, time.Minute)

	exporter := func(u string, headers map[string]string) sdkmetric.Exporter {
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		e, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpoint(parsed.Host), otlpmetrichttp.WithURLPath(parsed.Path), otlpmetrichttp.WithInsecure(),
			otlpmetrichttp.WithHeaders(headers))
		require.NoError(t, err)
		return e
	}
	toOrrery := exporter(o.url("/otlp/v1/metrics"), map[string]string{"X-Scope-OrgID": strategy})
	toProm := exporter(prom+"/api/v1/otlp/v1/metrics", nil)
	reader := sdkmetric.NewManualReader()
	res := resource.NewWithAttributes("", attribute.String("service.name", "checkout"), attribute.String("service.namespace", "shop"),
		attribute.String("service.instance.id", "pod-1"), attribute.String("k8s.pod.name", "checkout-7d9f-1"))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "rpc.client.duration"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})))
	meter := mp.Meter("io.opentelemetry.test", metric.WithInstrumentationVersion("1.0.0"))
	requests, err := meter.Int64Counter("http.server.requests", metric.WithUnit("{request}"))
	require.NoError(t, err)
	bytes, err := meter.Float64Counter("db.client.bytes", metric.WithUnit("By"))
	require.NoError(t, err)
	inflight, err := meter.Int64UpDownCounter("http.server.active_requests")
	require.NoError(t, err)
	duration, err := meter.Float64Histogram("http.server.duration", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.01, 0.1, 1))
	require.NoError(t, err)
	rpc, err := meter.Float64Histogram("rpc.client.duration", metric.WithUnit("ms"))
	require.NoError(t, err)
	load := 0.5
	_, err = meter.Float64ObservableGauge("system.load", metric.WithFloat64Callback(func(_ context.Context, ob metric.Float64Observer) error {
		ob.Observe(load, metric.WithAttributes(attribute.String("cpu", "all")))
		return nil
	}))
	require.NoError(t, err)

	var last time.Time
	for step := range 4 {
		for k := range 20 * (step + 1) {
			route := []string{"/pay", "/cart"}[k%2]
			requests.Add(ctx, 1, metric.WithAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", 200)))
			bytes.Add(ctx, 12.5*float64(k+1))
			inflight.Add(ctx, int64(k%3)-1)
			duration.Record(ctx, float64(k%7)/20, metric.WithAttributes(attribute.String("http.route", route)))
			rpc.Record(ctx, float64(1+k*k%97), metric.WithAttributes(attribute.String("rpc.method", "Get")))
		}
		load += 0.25
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(ctx, &rm))
		require.NoError(t, toOrrery.Export(ctx, &rm))
		require.NoError(t, toProm.Export(ctx, &rm))
		last = time.Now()
		time.Sleep(1100 * time.Millisecond)
	}

	at := strconv.FormatFloat(float64(last.Add(time.Second).UnixMilli())/1000, 'f', 3, 64)
	// Queries that name no metric, so that they read every strategy's
	// names; the default one's names are queried by name too.
	queries := []string{
		`{__name__=~".+"}`,
		`count by (__name__) ({__name__=~".+"})`,
		`sum by (__name__, le) (rate({__name__=~".*duration.*_bucket"}[1m]))`,
		`histogram_count({__name__=~"rpc.client.duration.*"})`,
		`histogram_quantile(0.9, sum by (__name__) (rate({__name__=~"rpc.client.duration.*"}[1m])))`,
		`target_info`,
	}
	if strategy == "UnderscoreEscapingWithSuffixes" {
		queries = append(queries,
			`sum by (http_route) (rate(http_server_duration_seconds_bucket[1m]))`,
			`histogram_quantile(0.9, sum by (le) (rate(http_server_duration_seconds_bucket[1m])))`,
			`histogram_quantile(0.9, sum(rate(rpc_client_duration_milliseconds[1m])))`,
			`histogram_count(rpc_client_duration_milliseconds)`)
	}
	for _, q := range queries {
		params := url.Values{"query": {q}, "time": {at}}
		want, err := get(prom, "/api/v1/query", params)
		require.NoError(t, err)
		require.Equal(t, "success", want.Status, "%s: %s", q, want.Error)
		require.NotContains(t, string(want.Data), `"result":[]`, "%s: the query must read something", q)
		_, got := queryAs(t, o, strategy, "/query", params)
		require.Empty(t, diffResponses(want, &got), q)
	}
	if strategy != "UnderscoreEscapingWithSuffixes" {
		return
	}
	_, all := queryAs(t, o, strategy, "/query", url.Values{"query": {`{__name__=~".+"}`}, "time": {at}})
	for _, name := range []string{"http_server_requests_total", "db_client_bytes_total", "http_server_active_requests", "http_server_duration_seconds_bucket",
		"rpc_client_duration_milliseconds", "system_load", "target_info"} {
		require.True(t, strings.Contains(string(all.Data), `"__name__":"`+name+`"`), "%s missing: %.2000s", name, all.Data)
	}
}
