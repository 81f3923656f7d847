package querier

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/protobuf/proto"
)

// FederatePath is where /federate is served, beside the API.
const FederatePath = "/prometheus/federate"

// Federation serves the latest sample of every series matching match[], in
// the exposition format, so that a Prometheus can scrape Orrery as it would
// scrape another Prometheus's /federate (honor_labels, params.match[]).
type Federation struct {
	q             *Queryable
	lookbackDelta time.Duration
	parser        parser.Parser
	logger        *slog.Logger
}

// NewFederation returns the /federate handler. It shares q's queue with the
// query API: a federation scrape reads as much as a query.
func NewFederation(cfg Config, q *Queryable, logger *slog.Logger) *Federation {
	return &Federation{q: q, lookbackDelta: cfg.LookbackDelta, parser: parser.NewParser(parser.Options{}), logger: logger}
}

// federated is a series' latest sample: a float, or a histogram (h).
type federated struct {
	lset labels.Labels
	t    int64
	v    float64
	h    *histogram.FloatHistogram
}

func (f *Federation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, fmt.Sprintf("error parsing form values: %v", err), http.StatusBadRequest)
		return
	}
	sets, err := f.parser.ParseMetricSelectors(r.Form["match[]"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	release, ok := f.q.admit(r.Context())
	if !ok {
		return
	}
	defer release()
	now := time.Now()
	mint, maxt := now.Add(-f.lookbackDelta).UnixMilli(), now.UnixMilli()
	samples, warns, err := f.latest(r, sets, mint, maxt)
	if err != nil {
		http.Error(w, err.Error(), httpStatus(err))
		return
	}
	// The exposition format has no place for warnings: an answer that may
	// be incomplete says so in HTTP Warning headers (RFC 9111 §5.5) and
	// in the log, as Prometheus's own /federate logs them.
	for _, warn := range warns.AsErrors() {
		w.Header().Add("Warning", fmt.Sprintf("199 orrery %q", warn.Error()))
		f.logger.Warn("federation answer may be incomplete", "warning", warn)
	}
	format := expfmt.NegotiateAccept(r.Header, expfmt.NewFormat(expfmt.TypeProtoDelim), expfmt.NewFormat(expfmt.TypeProtoText), expfmt.NewFormat(expfmt.TypeProtoCompact), expfmt.NewFormat(expfmt.TypeTextPlain))
	w.Header().Set("Content-Type", string(format))
	if err := encodeFamilies(expfmt.NewEncoder(w, format), format.FormatType(), samples); err != nil {
		f.logger.Error("federation failed", "err", err)
	}
}

// latest returns, for every series matching any set, its last sample at or
// before maxt, sorted by metric name, and the selects' warnings. Stale
// markers (a float's or a histogram's sum) are not federated.
func (f *Federation) latest(r *http.Request, sets [][]*labels.Matcher, mint, maxt int64) ([]federated, annotations.Annotations, error) {
	q, err := f.q.Querier(mint, maxt)
	if err != nil {
		return nil, nil, err
	}
	defer q.Close()
	hints := &storage.SelectHints{Start: mint, End: maxt}
	selected := make([]storage.SeriesSet, 0, len(sets))
	for _, ms := range sets {
		selected = append(selected, q.Select(r.Context(), true, hints, ms...))
	}
	set := storage.NewMergeSeriesSet(selected, 0, storage.ChainedSeriesMerge)
	var out []federated
	var it chunkenc.Iterator
	// buf is decoded into for every histogram; only the series' last one
	// is copied out.
	var buf histogram.FloatHistogram
	for set.Next() {
		s := set.At()
		it = s.Iterator(it)
		var last federated
		found, isHist := false, false
	samples:
		for {
			switch it.Next() {
			case chunkenc.ValFloat:
				t, v := it.At()
				if t > maxt {
					break samples
				}
				last, found, isHist = federated{t: t, v: v}, true, false
			case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
				if it.AtT() > maxt {
					break samples
				}
				t, _ := it.AtFloatHistogram(&buf)
				last, found, isHist = federated{t: t}, true, true
			default:
				break samples
			}
		}
		if !found {
			continue
		}
		if isHist {
			last.h = buf.Copy()
			if value.IsStaleNaN(last.h.Sum) {
				continue
			}
		} else if value.IsStaleNaN(last.v) {
			continue
		}
		last.lset = s.Labels()
		out = append(out, last)
	}
	if err := set.Err(); err != nil {
		return nil, nil, err
	}
	slices.SortStableFunc(out, func(a, b federated) int {
		return strings.Compare(a.lset.Get(model.MetricNameLabel), b.lset.Get(model.MetricNameLabel))
	})
	return out, set.Warnings(), nil
}

// encodeFamilies writes the samples as Prometheus's /federate does: an
// untyped family per metric name, a histogram or gauge histogram family
// for histograms (a new family when the kind changes within a name, which
// Prometheus parses). A native histogram goes out only in the protobuf
// formats, which can carry it; one with custom buckets goes out in any,
// as the classic histogram it stands for. A series without an instance
// label gets instance="", as Prometheus does, so that the scraper's
// honor_labels does not attach the target's instance.
func encodeFamilies(enc expfmt.Encoder, format expfmt.FormatType, samples []federated) error {
	protobuf := format == expfmt.TypeProtoDelim || format == expfmt.TypeProtoText || format == expfmt.TypeProtoCompact
	var fam *dto.MetricFamily
	for _, s := range samples {
		if s.h != nil && !s.h.UsesCustomBuckets() && !protobuf {
			continue
		}
		name := s.lset.Get(model.MetricNameLabel)
		typ := dto.MetricType_UNTYPED
		switch {
		case s.h != nil && s.h.CounterResetHint == histogram.GaugeType:
			typ = dto.MetricType_GAUGE_HISTOGRAM
		case s.h != nil:
			typ = dto.MetricType_HISTOGRAM
		}
		if fam == nil || fam.GetName() != name || fam.GetType() != typ {
			if fam != nil {
				if err := enc.Encode(fam); err != nil {
					return err
				}
			}
			fam = &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum()}
		}
		m := &dto.Metric{TimestampMs: proto.Int64(s.t)}
		switch {
		case s.h == nil:
			m.Untyped = &dto.Untyped{Value: proto.Float64(s.v)}
		case s.h.UsesCustomBuckets():
			m.Histogram = classicHistogram(s.h)
		default:
			m.Histogram = nativeHistogram(s.h)
		}
		s.lset.Range(func(l labels.Label) {
			if l.Name != model.MetricNameLabel && l.Value != "" {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
			}
		})
		if !s.lset.Has(model.InstanceLabel) {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(model.InstanceLabel), Value: proto.String("")})
		}
		fam.Metric = append(fam.Metric, m)
	}
	if fam == nil {
		return nil
	}
	return enc.Encode(fam)
}

// nativeHistogram is the exposition of an exponential histogram.
func nativeHistogram(h *histogram.FloatHistogram) *dto.Histogram {
	spans := func(ss []histogram.Span) []*dto.BucketSpan {
		out := make([]*dto.BucketSpan, len(ss))
		for k, sp := range ss {
			out[k] = &dto.BucketSpan{Offset: proto.Int32(sp.Offset), Length: proto.Uint32(sp.Length)}
		}
		return out
	}
	return &dto.Histogram{
		SampleCountFloat: proto.Float64(h.Count),
		SampleSum:        proto.Float64(h.Sum),
		Schema:           proto.Int32(h.Schema),
		ZeroThreshold:    proto.Float64(h.ZeroThreshold),
		ZeroCountFloat:   proto.Float64(h.ZeroCount),
		NegativeCount:    h.NegativeBuckets,
		PositiveCount:    h.PositiveBuckets,
		NegativeSpan:     spans(h.NegativeSpans),
		PositiveSpan:     spans(h.PositiveSpans),
	}
}

// classicHistogram is the exposition of a histogram with custom buckets:
// cumulative buckets at its bounds. The +Inf bucket is left to the
// encoder, which adds it where the format needs it.
func classicHistogram(h *histogram.FloatHistogram) *dto.Histogram {
	out := &dto.Histogram{
		SampleCountFloat: proto.Float64(h.Count),
		SampleSum:        proto.Float64(h.Sum),
		Bucket:           make([]*dto.Bucket, len(h.CustomValues)),
	}
	it := h.PositiveBucketIterator()
	more := it.Next()
	cumulative := 0.0
	for k, le := range h.CustomValues {
		for more && int(it.At().Index) < k {
			more = it.Next()
		}
		if more && int(it.At().Index) == k {
			cumulative += it.At().Count
		}
		out.Bucket[k] = &dto.Bucket{UpperBound: proto.Float64(le), CumulativeCountFloat: proto.Float64(cumulative)}
	}
	return out
}
