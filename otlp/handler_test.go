package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/distributor"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/tenant"
)

// recorder keeps what the handler pushes, per tenant; err, when set, is
// what every push answers.
type recorder struct {
	pushed map[string][]*prompb.WriteRequest
	err    error
}

func (r *recorder) Push(_ context.Context, tenantID string, req *prompb.WriteRequest) (int, error) {
	if r.pushed == nil {
		r.pushed = map[string][]*prompb.WriteRequest{}
	}
	r.pushed[tenantID] = append(r.pushed[tenantID], req)
	n := 0
	for _, s := range req.Timeseries {
		n += len(s.Samples)
	}
	return n, r.err
}

// series returns tenantID's pushed series as "labels value@t" lines.
func (r *recorder) series(tenantID string) []string {
	var out []string
	for _, req := range r.pushed[tenantID] {
		for _, s := range req.Timeseries {
			var ls []string
			for _, l := range s.Labels {
				ls = append(ls, l.Name+"="+l.Value)
			}
			for _, smp := range s.Samples {
				out = append(out, strings.Join(ls, ",")+" "+formatFloat(smp.Value)+"@"+formatInt(smp.Timestamp))
			}
		}
	}
	sort.Strings(out)
	return out
}

type fixedLimits map[string]*limits.Limits

func (f fixedLimits) For(tenantID string) *limits.Limits {
	if l, ok := f[tenantID]; ok {
		return l
	}
	l := &limits.Limits{OTLP: config.DefaultOTLPConfig}
	return l
}

func newHandler(p Pusher, l Limits) http.Handler {
	h := New(Config{MaxRequestSize: 1 << 20, LookbackDelta: 5 * time.Minute}, p, l, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	return tenant.Middleware(false, nil, h)
}

var ts = time.UnixMilli(1_700_000_000_000)

// metrics is a service's export: a gauge, a cumulative counter with an
// attribute, and, when withExpHist, an exponential histogram.
func metrics(withExpHist bool) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	rm.Resource().Attributes().PutStr("service.instance.id", "pod-1")
	rm.Resource().Attributes().PutStr("k8s.namespace.name", "shop")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()

	g := ms.AppendEmpty()
	g.SetName("queue.depth")
	g.SetUnit("{item}")
	p := g.SetEmptyGauge().DataPoints().AppendEmpty()
	p.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	p.SetDoubleValue(7)

	c := ms.AppendEmpty()
	c.SetName("http.server.requests")
	c.SetUnit("1")
	sum := c.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	cp := sum.DataPoints().AppendEmpty()
	cp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	cp.SetIntValue(42)
	cp.Attributes().PutStr("http.route", "/pay")

	if withExpHist {
		e := ms.AppendEmpty()
		e.SetName("latency")
		e.SetUnit("s")
		eh := e.SetEmptyExponentialHistogram()
		eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		ep := eh.DataPoints().AppendEmpty()
		ep.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		ep.SetCount(3)
		ep.SetSum(1.5)
		ep.SetScale(0)
		ep.Positive().BucketCounts().FromRaw([]uint64{1, 2})
	}
	return md
}

func post(t testing.TB, h http.Handler, tenantID, contentType, encoding string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/otlp/v1/metrics", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	if tenantID != "" {
		req.Header.Set(tenant.HeaderName, tenantID)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// exportOK posts md as protobuf for tenantID, requires a 200 and returns
// what was pushed and the OTLP response.
func exportOK(t *testing.T, tenantID string, md pmetric.Metrics) (*recorder, pmetricotlp.ExportResponse) {
	t.Helper()
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	rec := &recorder{}
	w := post(t, newHandler(rec, fixedLimits{}), tenantID, protoType, "", body)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	resp := pmetricotlp.NewExportResponse()
	require.NoError(t, resp.UnmarshalProto(w.Body.Bytes()))
	return rec, resp
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// The same export as protobuf and as JSON, plain and gzip, becomes the
// same series for the tenant, named as Prometheus's default translation
// names them, with target_info for the resource; the answer is an OTLP
// response in the request's encoding.
func TestExportTranslatesLikePrometheus(t *testing.T) {
	req := pmetricotlp.NewExportRequestFromMetrics(metrics(false))
	pb, err := req.MarshalProto()
	require.NoError(t, err)
	js, err := req.MarshalJSON()
	require.NoError(t, err)

	want := []string{
		"__name__=http_server_requests_total,http_route=/pay,instance=pod-1,job=checkout 42@1700000000000",
		"__name__=queue_depth,instance=pod-1,job=checkout 7@1700000000000",
		"__name__=target_info,instance=pod-1,job=checkout,k8s_namespace_name=shop 1@1700000000000",
	}
	for _, c := range []struct{ name, contentType, encoding string }{
		{"protobuf", protoType, ""}, {"protobuf gzip", protoType, "gzip"},
		{"json", jsonType, ""}, {"json gzip", jsonType + "; charset=utf-8", "gzip"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			body := pb
			if strings.HasPrefix(c.contentType, jsonType) {
				body = js
			}
			if c.encoding == "gzip" {
				body = gz(t, body)
			}
			w := post(t, newHandler(rec, fixedLimits{}), "team-a", c.contentType, c.encoding, body)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			got := rec.series("team-a")
			require.Subset(t, got, want[:2])
			require.Contains(t, strings.Join(got, "\n"), "__name__=target_info,instance=pod-1,job=checkout,k8s_namespace_name=shop 1@")

			resp := pmetricotlp.NewExportResponse()
			if strings.HasPrefix(c.contentType, jsonType) {
				require.Equal(t, jsonType, w.Header().Get("Content-Type"))
				require.NoError(t, resp.UnmarshalJSON(w.Body.Bytes()))
			} else {
				require.Equal(t, protoType, w.Header().Get("Content-Type"))
				require.NoError(t, resp.UnmarshalProto(w.Body.Bytes()))
			}
			require.Zero(t, resp.PartialSuccess().RejectedDataPoints())
			require.Empty(t, resp.PartialSuccess().ErrorMessage())

			var families []string
			for _, r := range rec.pushed["team-a"] {
				for _, m := range r.Metadata {
					families = append(families, m.MetricFamilyName+":"+m.Type.String())
				}
			}
			require.Subset(t, families, []string{"http_server_requests_total:COUNTER", "queue_depth:GAUGE"})
		})
	}
}

// An exponential histogram becomes a native histogram, written with the
// request's other points; nothing is refused.
func TestExportWritesNativeHistograms(t *testing.T) {
	rec, resp := exportOK(t, "team-a", metrics(true))
	require.EqualValues(t, 0, resp.PartialSuccess().RejectedDataPoints())
	require.Empty(t, resp.PartialSuccess().ErrorMessage())
	require.Contains(t, strings.Join(rec.series("team-a"), "\n"), "__name__=queue_depth,")
	var hists []prompb.Histogram
	for _, req := range rec.pushed["team-a"] {
		for _, s := range req.Timeseries {
			hists = append(hists, s.Histograms...)
		}
	}
	require.Len(t, hists, 1)
	require.NoError(t, hists[0].ToIntHistogram().Validate())
}

// A tenant's `otlp` overrides choose Prometheus's translation strategy.
func TestExportFollowsTenantStrategy(t *testing.T) {
	noTranslation := config.DefaultOTLPConfig
	noTranslation.TranslationStrategy = otlptranslator.NoTranslation
	promote := config.DefaultOTLPConfig
	promote.PromoteResourceAttributes = []string{"k8s.namespace.name"}
	l := fixedLimits{"utf8": {OTLP: noTranslation}, "promote": {OTLP: promote}}
	body, err := pmetricotlp.NewExportRequestFromMetrics(metrics(false)).MarshalProto()
	require.NoError(t, err)
	rec := &recorder{}
	h := newHandler(rec, l)
	for _, id := range []string{"utf8", "promote"} {
		require.Equal(t, http.StatusOK, post(t, h, id, protoType, "", body).Code)
	}
	require.Contains(t, strings.Join(rec.series("utf8"), "\n"), "__name__=http.server.requests,http.route=/pay,")
	require.Contains(t, strings.Join(rec.series("promote"), "\n"), "__name__=queue_depth,instance=pod-1,job=checkout,k8s_namespace_name=shop 7@")
}

// Bad requests get a 4xx naming the problem and push nothing; memory is
// bounded by the request size limit before and after gzip.
func TestExportRefusesBadRequests(t *testing.T) {
	good, err := pmetricotlp.NewExportRequestFromMetrics(metrics(false)).MarshalProto()
	require.NoError(t, err)
	// 8 MiB of zeros: about 8 KiB compressed, over the 1 MiB limit once
	// decompressed.
	bomb := gz(t, make([]byte, 8<<20))
	for _, c := range []struct {
		name, tenantID, contentType, encoding string
		body                                  []byte
		code                                  int
		says                                  string
	}{
		{"too large", "t", protoType, "", make([]byte, 2<<20), http.StatusRequestEntityTooLarge, "max-otlp-request-size"},
		{"gzip bomb", "t", protoType, "gzip", bomb, http.StatusRequestEntityTooLarge, "decompresses"},
		{"not gzip", "t", protoType, "gzip", good, http.StatusBadRequest, "gzip"},
		{"unknown encoding", "t", protoType, "br", good, http.StatusUnsupportedMediaType, "Content-Encoding"},
		{"unknown type", "t", "text/plain", "", good, http.StatusUnsupportedMediaType, "Content-Type"},
		{"garbage protobuf", "t", protoType, "", []byte("\xff\xff\xff\xff"), http.StatusBadRequest, "decoding"},
		{"garbage json", "t", jsonType, "", []byte("{"), http.StatusBadRequest, "decoding"},
		{"bad tenant", "a|b", protoType, "", good, http.StatusUnauthorized, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			w := post(t, newHandler(rec, fixedLimits{}), c.tenantID, c.contentType, c.encoding, c.body)
			require.Equal(t, c.code, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), c.says)
			require.Empty(t, rec.pushed)
		})
	}

	req := httptest.NewRequest(http.MethodGet, "/otlp/v1/metrics", nil)
	w := httptest.NewRecorder()
	newHandler(&recorder{}, fixedLimits{}).ServeHTTP(w, req)
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)
}

// The distributor's refusal is the answer, with its status: a 4xx is not
// retried by OTLP exporters, a 5xx is.
func TestExportAnswersWithTheDistributorsStatus(t *testing.T) {
	body, err := pmetricotlp.NewExportRequestFromMetrics(metrics(false)).MarshalProto()
	require.NoError(t, err)
	for _, c := range []struct {
		err  error
		code int
	}{
		{apierr.New(apierr.BadData, "sample too old"), http.StatusBadRequest},
		{apierr.New(apierr.TooManyRequests, "ingestion rate"), http.StatusTooManyRequests},
		{apierr.New(apierr.Unavailable, "too few ingesters"), http.StatusServiceUnavailable},
		{io.ErrUnexpectedEOF, http.StatusInternalServerError},
	} {
		w := post(t, newHandler(&recorder{err: c.err}, fixedLimits{}), "t", protoType, "", body)
		require.Equal(t, c.code, w.Code)
		require.Contains(t, w.Body.String(), c.err.Error())
	}
}

// FuzzExport: any body, as either content type, plain or gzip, gets an
// answer of 200, 400, 413 or 415, never a panic.
func FuzzExport(f *testing.F) {
	good, _ := pmetricotlp.NewExportRequestFromMetrics(metrics(true)).MarshalProto()
	js, _ := pmetricotlp.NewExportRequestFromMetrics(metrics(true)).MarshalJSON()
	f.Add(good, false, false)
	f.Add(js, true, false)
	f.Add([]byte{}, false, true)
	h := newHandler(&recorder{}, fixedLimits{})
	f.Fuzz(func(t *testing.T, body []byte, isJSON, gzipped bool) {
		contentType, encoding := protoType, ""
		if isJSON {
			contentType = jsonType
		}
		if gzipped {
			encoding = "gzip"
		}
		w := post(t, h, "t", contentType, encoding, body)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	})
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
func formatInt(v int64) string     { return strconv.FormatInt(v, 10) }

// A small request must not translate into millions of samples: points of
// one resource fifty years apart would make target_info a sample every
// 2m30s in between. Orrery writes a day of them and says so; the points
// themselves are written.
func TestExportBoundsTargetInfo(t *testing.T) {
	md := metrics(false)
	old := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().AppendEmpty()
	old.SetTimestamp(pcommon.Timestamp(1))
	old.SetDoubleValue(1)
	rec, resp := exportOK(t, "t", md)
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), "more than a day")
	targetInfo := 0
	for _, s := range rec.series("t") {
		if strings.HasPrefix(s, "__name__=target_info,") {
			targetInfo++
		}
	}
	require.Equal(t, maxTargetInfoSamples, targetInfo)
	require.Contains(t, rec.series("t"), "__name__=queue_depth,instance=pod-1,job=checkout 1@0")
	require.Contains(t, rec.series("t"), "__name__=queue_depth,instance=pod-1,job=checkout 7@1700000000000")
}

// The translation budget: a small export whose attributes are long (every
// series repeats them as labels) or whose resources' points lie far apart
// (target_info every 2m30s between them) is refused whole with a 413,
// before it takes gigabytes; nothing of it is written.
func TestExportBoundsTranslation(t *testing.T) {
	longJob := pmetric.NewMetrics()
	rm := longJob.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", strings.Repeat("x", 256<<10))
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("g")
	gauge := g.SetEmptyGauge()
	for k := range 2000 {
		p := gauge.DataPoints().AppendEmpty()
		p.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		p.Attributes().PutInt("k", int64(k))
	}

	spread := pmetric.NewMetrics()
	for r := range 3000 {
		rm := spread.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", fmt.Sprint(r))
		// A non-identifying attribute: the resource gets a target_info.
		rm.Resource().Attributes().PutStr("host.name", "h")
		g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		g.SetName("g")
		gauge := g.SetEmptyGauge()
		for _, at := range []time.Time{ts, ts.Add(-23 * time.Hour)} {
			p := gauge.DataPoints().AppendEmpty()
			p.SetTimestamp(pcommon.NewTimestampFromTime(at))
		}
	}
	for name, md := range map[string]pmetric.Metrics{"long attributes": longJob, "points a day apart": spread} {
		t.Run(name, func(t *testing.T) {
			body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
			require.NoError(t, err)
			rec := &recorder{}
			h := tenant.Middleware(false, nil, New(Config{MaxRequestSize: 8 << 20}, rec, fixedLimits{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			w := post(t, h, "t", protoType, "", body)
			runtime.ReadMemStats(&after)
			require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), "nothing was written")
			require.Empty(t, rec.pushed)
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(100*len(body)), "allocations bounded by the body (%d bytes)", len(body))
		})
	}
}

// Of two batches' refusals, the one an OTLP exporter retries is the
// answer: a 400 on the first must not make it drop the second's 503.
func TestExportAnswersWithTheRetryableRefusal(t *testing.T) {
	md := pmetric.NewMetrics()
	g := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("g")
	gauge := g.SetEmptyGauge()
	for k := range distributor.MaxBatchSeries + 10 {
		p := gauge.DataPoints().AppendEmpty()
		p.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		p.Attributes().PutInt("k", int64(k))
	}
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	rec := &sequence{errs: []error{apierr.New(apierr.BadData, "one sample too old"), apierr.New(apierr.Unavailable, "too few ingesters")}}
	w := post(t, newHandler(rec, fixedLimits{}), "t", protoType, "", body)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.Equal(t, 2, rec.calls)
}

// sequence answers its pushes with errs in turn.
type sequence struct {
	errs  []error
	calls int
}

func (s *sequence) Push(context.Context, string, *prompb.WriteRequest) (int, error) {
	err := s.errs[s.calls%len(s.errs)]
	s.calls++
	return 0, err
}

// Delta sums are refused as Prometheus refuses them by default, and their
// points are counted in the partial success; the cumulative rest is
// written.
func TestExportCountsDeltaPointsRefused(t *testing.T) {
	md := metrics(false)
	d := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	d.SetName("jobs.processed")
	sum := d.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for range 3 {
		p := sum.DataPoints().AppendEmpty()
		p.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		p.SetIntValue(1)
	}
	rec, resp := exportOK(t, "t", md)
	require.EqualValues(t, 3, resp.PartialSuccess().RejectedDataPoints())
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), "jobs.processed")
	require.Contains(t, strings.Join(rec.series("t"), "\n"), "__name__=queue_depth,")
	require.NotContains(t, strings.Join(rec.series("t"), "\n"), "jobs_processed")
}
