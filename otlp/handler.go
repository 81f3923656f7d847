package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/prompb"
	otlptranslator "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/distributor"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/tenant"
)

// Pusher is the distributor's entry for writers inside Orrery.
type Pusher interface {
	Push(ctx context.Context, tenantID string, req *prompb.WriteRequest) (int, error)
}

// Limits gives a tenant's limits, its OTLP settings among them.
type Limits interface {
	For(tenantID string) *limits.Limits
}

// Config bounds a request.
type Config struct {
	// MaxRequestSize bounds the body, as sent and after gzip: a small
	// compressed body must not become gigabytes, and the decoded OTLP
	// objects take up to about 50 times the body's bytes (BENCHMARKS.md, OTLP).
	MaxRequestSize int `yaml:"max_otlp_request_size"`
	// LookbackDelta is the query engine's; the translator spaces
	// target_info's samples by it, as Prometheus does. Set by the caller.
	LookbackDelta time.Duration `yaml:"-"`
}

// RegisterFlags registers the request bound.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxRequestSize, "distributor.max-otlp-request-size", 4<<20, "Largest OTLP metrics export accepted, compressed and decompressed, in bytes; translating one takes up to about 50 times that in memory (BENCHMARKS.md, OTLP), and one that would take more is refused (docs/otlp.md).")
}

// Validate refuses a bound that accepts nothing.
func (c *Config) Validate() error {
	if c.MaxRequestSize <= 0 {
		return errors.New("-distributor.max-otlp-request-size must be positive")
	}
	return nil
}

// Handler answers OTLP metrics export requests.
type Handler struct {
	cfg    Config
	pusher Pusher
	limits Limits
	logger *slog.Logger

	points   *prometheus.CounterVec
	rejected *prometheus.CounterVec
	warnings *prometheus.CounterVec
}

// New returns the handler; the request's tenant must be in its context
// (tenant.Middleware).
func New(cfg Config, p Pusher, l Limits, reg prometheus.Registerer, logger *slog.Logger) *Handler {
	return &Handler{
		cfg: cfg, pusher: p, limits: l, logger: logger,
		points: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "orrery_otlp_received_data_points_total",
			Help: "OTLP data points received, by tenant."}, []string{"tenant"}),
		rejected: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "orrery_otlp_rejected_data_points_total",
			Help: "OTLP data points refused before the distributor, by tenant and reason (the distributor counts what it refuses of the rest)."},
			[]string{"tenant", "reason"}),
		warnings: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "orrery_otlp_translation_warnings_total",
			Help: "Warnings of Prometheus's OTLP translator, by category."}, []string{"category"}),
	}
}

const (
	protoType = "application/x-protobuf"
	jsonType  = "application/json"
)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	contentType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	resp, err := h.export(r, contentType)
	if apierr.KindOf(err) == apierr.Deduplicated {
		// The standby of an HA pair: dropped on purpose, and a success to
		// the sender, in the body OTLP gives a success.
		resp, err = pmetricotlp.NewExportResponse(), nil
	}
	if err != nil {
		code := apierr.HTTPStatus(err)
		if code >= 500 {
			h.logger.Warn("OTLP export failed", "err", err)
		}
		http.Error(w, err.Error(), code)
		return
	}
	var body []byte
	if contentType == jsonType {
		body, err = resp.MarshalJSON()
	} else {
		body, err = resp.MarshalProto()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// export decodes, translates and pushes one request. Points it cannot
// take (delta temporality, which Prometheus drops too) are left out and
// reported as the OTLP partial success; the distributor's refusal of the
// rest is the request's error, with the distributor's status, as remote
// write answers it (what the distributor could take is kept).
func (h *Handler) export(r *http.Request, contentType string) (pmetricotlp.ExportResponse, error) {
	resp := pmetricotlp.NewExportResponse()
	if r.Method != http.MethodPost {
		return resp, apierr.New(apierr.MethodNotAllowed, "OTLP export takes POST, not %s", r.Method)
	}
	tenantID, err := tenant.FromContext(r.Context())
	if err != nil {
		return resp, apierr.New(apierr.Unauthorized, "%s", err)
	}
	body, err := h.read(r)
	if err != nil {
		return resp, err
	}
	req := pmetricotlp.NewExportRequest()
	switch contentType {
	case protoType:
		err = req.UnmarshalProto(body)
	case jsonType:
		err = req.UnmarshalJSON(body)
	default:
		return resp, apierr.New(apierr.UnsupportedMediaType, "Content-Type %q: OTLP export takes %s or %s", r.Header.Get("Content-Type"), protoType, jsonType)
	}
	if err != nil {
		return resp, apierr.New(apierr.BadData, "decoding the OTLP %s request: %s", contentType, err)
	}
	md := req.Metrics()
	h.points.WithLabelValues(tenantID).Add(float64(md.DataPointCount()))

	notCumulative := notCumulativePoints(md)
	app := newAppender(len(body), md.DataPointCount())
	conv := otlptranslator.NewPrometheusConverter(app)
	annots, convErr := conv.FromMetrics(r.Context(), md, settings(h.limits.For(tenantID).OTLP, h.cfg.LookbackDelta))
	for category, n := range otlptranslator.CountWarningsByCategory(annots) {
		h.warnings.WithLabelValues(string(category)).Add(float64(n))
	}
	if app.over {
		h.rejected.WithLabelValues(tenantID, "too_large").Add(float64(md.DataPointCount()))
		return resp, apierr.New(apierr.TooLarge, "the export translates to more series and samples than %d bytes of OTLP may (at most %d bytes each; long attributes, many buckets or points far apart in time): nothing was written (err-orrery-request-too-large: send smaller batches)", len(body), costPerBodyByte)
	}
	if convErr != nil && len(app.series) == 0 {
		return resp, apierr.New(apierr.BadData, "translating OTLP metrics: %s", convErr)
	}
	// The retryable refusal is the answer, as OTLP exporters retry only
	// 429 and 5xx.
	if err := distributor.PushBatched(r.Context(), h.pusher.Push, tenantID, app.series, app.metadata); err != nil {
		return resp, err
	}

	var problems []string
	rejected := int64(0)
	if notCumulative > 0 {
		h.rejected.WithLabelValues(tenantID, "not_cumulative").Add(float64(notCumulative))
		rejected += int64(notCumulative)
	}
	if convErr != nil {
		problems = append(problems, "translating OTLP metrics: "+convErr.Error())
	}
	if len(problems) > 0 {
		ps := resp.PartialSuccess()
		ps.SetRejectedDataPoints(rejected)
		msg := strings.Join(problems, "; ")
		// One error per refused metric: a large export must not make a
		// larger answer.
		if len(msg) > maxErrorMessage {
			msg = msg[:maxErrorMessage] + "…"
		}
		ps.SetErrorMessage(msg)
	}
	return resp, nil
}

// maxErrorMessage bounds the partial success's message.
const maxErrorMessage = 4096

// notCumulativePoints counts the points of sums and histograms whose
// temporality is not cumulative: Prometheus's translator (without its delta
// features, off by default in Prometheus too) refuses their metrics, and
// the partial success must count them.
func notCumulativePoints(md pmetric.Metrics) int {
	n := 0
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				switch m.Type() {
				case pmetric.MetricTypeSum:
					if m.Sum().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
						n += m.Sum().DataPoints().Len()
					}
				case pmetric.MetricTypeHistogram:
					if m.Histogram().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
						n += m.Histogram().DataPoints().Len()
					}
				case pmetric.MetricTypeExponentialHistogram:
					if m.ExponentialHistogram().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
						n += m.ExponentialHistogram().DataPoints().Len()
					}
				}
			}
		}
	}
	return n
}

// read returns the body, decompressed, within the size limits.
func (h *Handler) read(r *http.Request) ([]byte, error) {
	limit := h.cfg.MaxRequestSize
	raw, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return nil, apierr.New(apierr.BadData, "reading the body: %s", err)
	}
	if len(raw) > limit {
		return nil, apierr.New(apierr.TooLarge, "body over %d bytes (err-orrery-request-too-large: send smaller batches or raise -distributor.max-otlp-request-size)", limit)
	}
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
		return raw, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, apierr.New(apierr.BadData, "gzip: %s", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
		if err != nil {
			return nil, apierr.New(apierr.BadData, "gzip: %s", err)
		}
		if len(out) > limit {
			return nil, apierr.New(apierr.TooLarge, "body decompresses to over %d bytes (err-orrery-request-too-large: send smaller batches or raise -distributor.max-otlp-request-size)", limit)
		}
		return out, nil
	default:
		return nil, apierr.New(apierr.UnsupportedMediaType, "Content-Encoding %q: OTLP export takes gzip or none", enc)
	}
}

// settings are Prometheus's, from the tenant's OTLP configuration, as
// Prometheus's own OTLP handler derives them.
func settings(c config.OTLPConfig, lookback time.Duration) otlptranslator.Settings {
	if c.TranslationStrategy == "" {
		// Limits never set (a zero value): Prometheus's defaults.
		c = config.DefaultOTLPConfig
	}
	return otlptranslator.Settings{
		AddMetricSuffixes:                    c.TranslationStrategy.ShouldAddSuffixes(),
		AllowUTF8:                            !c.TranslationStrategy.ShouldEscape(),
		PromoteResourceAttributes:            otlptranslator.NewPromoteResourceAttributes(c),
		KeepIdentifyingResourceAttributes:    c.KeepIdentifyingResourceAttributes,
		ConvertHistogramsToNHCB:              c.ConvertHistogramsToNHCB,
		PromoteScopeMetadata:                 c.PromoteScopeMetadata,
		LookbackDelta:                        lookback,
		LabelNameUnderscoreSanitization:      c.LabelNameUnderscoreSanitization,
		LabelNamePreserveMultipleUnderscores: c.LabelNamePreserveMultipleUnderscores,
	}
}
