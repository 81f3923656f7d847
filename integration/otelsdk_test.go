//go:build integration

package integration

import (
	"context"
	"net/url"
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

// TestOTelSDKMatchesPrometheus3: the OpenTelemetry Go SDK, with its
// OTLP/HTTP exporter, records counters, an up-down counter, an observable
// gauge, an explicit-bucket histogram and an exponential histogram for a
// service with resource attributes, and each collection is exported to
// Orrery and to a Prometheus 3 with its OTLP receiver on. Every series
// and the histogram queries answer alike.
func TestOTelSDKMatchesPrometheus3(t *testing.T) {
	t.Parallel()
	o := startOrrery(t, t.TempDir())
	prom := startPrometheus3WithConfig(t, func(int) string { return "global: {}\n" }, "--web.enable-otlp-receiver")
	ctx := ctxTimeout(t, time.Minute)

	exporter := func(u string) sdkmetric.Exporter {
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		e, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpoint(parsed.Host), otlpmetrichttp.WithURLPath(parsed.Path), otlpmetrichttp.WithInsecure())
		require.NoError(t, err)
		return e
	}
	toOrrery, toProm := exporter(o.url("/otlp/v1/metrics")), exporter(prom+"/api/v1/otlp/v1/metrics")
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
	for _, q := range []string{
		`{__name__=~".+"}`,
		`sum by (http_route) (rate(http_server_duration_seconds_bucket[1m]))`,
		`histogram_quantile(0.9, sum by (le) (rate(http_server_duration_seconds_bucket[1m])))`,
		`histogram_quantile(0.9, sum(rate(rpc_client_duration_milliseconds[1m])))`,
		`histogram_count(rpc_client_duration_milliseconds)`,
		`target_info`,
	} {
		params := url.Values{"query": {q}, "time": {at}}
		want, err := get(prom, "/api/v1/query", params)
		require.NoError(t, err)
		require.Equal(t, "success", want.Status, "%s: %s", q, want.Error)
		got, err := get(o.url("/prometheus"), "/api/v1/query", params)
		require.NoError(t, err)
		require.Empty(t, diffResponses(want, got), q)
	}
	all, err := httpGet(o.url("/prometheus/api/v1/query?") + url.Values{"query": {`{__name__=~".+"}`}, "time": {at}}.Encode())
	require.NoError(t, err)
	for _, name := range []string{"http_server_requests_total", "db_client_bytes_total", "http_server_active_requests", "http_server_duration_seconds_bucket",
		"rpc_client_duration_milliseconds", "system_load", "target_info"} {
		require.True(t, strings.Contains(all, `"__name__":"`+name+`"`), "%s missing: %.2000s", name, all)
	}
}
