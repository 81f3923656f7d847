package distributor

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/prompb"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// Reasons a series or sample is discarded; each is a metric label and, as
// err-orrery-<reason>, a stable ID in the message the client sees.
const (
	reasonMissingName      = "missing-metric-name"
	reasonInvalidName      = "metric-name-invalid"
	reasonInvalidLabel     = "label-name-invalid"
	reasonDuplicateLabel   = "duplicate-label-names"
	reasonInvalidValue     = "label-value-invalid"
	reasonOutOfOrder       = "sample-out-of-order"
	reasonNoSamples        = "series-without-samples"
	reasonHistogramsUnsupp = "native-histograms-unsupported"
)

// discards counts what validation dropped, by reason, and keeps the first
// message: one error value per request, not per sample.
type discards struct {
	samples  int
	byReason map[string]int
	first    string
}

func (d *discards) add(reason string, samples int, format string, args ...any) {
	if d.byReason == nil {
		d.byReason = map[string]int{}
	}
	d.byReason[reason] += samples
	d.samples += samples
	if d.first == "" {
		d.first = fmt.Sprintf(format, args...) + " (err-orrery-" + reason + ")"
	}
}

// validated is the part of a request that passed validation, ready to push.
type validated struct {
	series  []*ingesterpb.TimeSeries
	lsets   []labels.Labels
	samples int
}

// validator checks series against Prometheus's rules for names and order.
type validator struct {
	scheme model.ValidationScheme
	b      labels.ScratchBuilder
}

// validate keeps every valid series and valid sample of req. Labels are
// sorted; labels with an empty value are dropped, as Prometheus treats them
// as absent.
func (v *validator) validate(req *prompb.WriteRequest, d *discards) validated {
	var out validated
	for k := range req.Timeseries {
		ts := &req.Timeseries[k]
		if len(ts.Histograms) > 0 {
			d.add(reasonHistogramsUnsupp, len(ts.Histograms), "native histogram samples are not supported yet, series %s", seriesString(ts.Labels))
		}
		lset, ok := v.labels(ts, d)
		if !ok {
			continue
		}
		samples := v.samples(lset, ts.Samples, d)
		if len(samples) == 0 {
			continue
		}
		out.series = append(out.series, &ingesterpb.TimeSeries{Labels: ingesterpb.FromLabels(lset), Samples: samples})
		out.lsets = append(out.lsets, lset)
		out.samples += len(samples)
	}
	return out
}

func (v *validator) labels(ts *prompb.TimeSeries, d *discards) (labels.Labels, bool) {
	n := len(ts.Samples)
	v.b.Reset()
	for _, l := range ts.Labels {
		if l.Value != "" {
			v.b.Add(l.Name, l.Value)
		}
	}
	v.b.Sort()
	lset := v.b.Labels()
	name := lset.Get(labels.MetricName)
	if name == "" {
		d.add(reasonMissingName, n, "series %s has no metric name (__name__ label)", seriesString(ts.Labels))
		return lset, false
	}
	if !v.scheme.IsValidMetricName(name) {
		d.add(reasonInvalidName, n, "series %s has an invalid metric name %q", seriesString(ts.Labels), name)
		return lset, false
	}
	for _, l := range ts.Labels {
		if !v.scheme.IsValidLabelName(l.Name) {
			d.add(reasonInvalidLabel, n, "series %s has an invalid label name %q", seriesString(ts.Labels), l.Name)
			return lset, false
		}
		if !utf8.ValidString(l.Value) {
			d.add(reasonInvalidValue, n, "series %s has a label %q whose value is not valid UTF-8", seriesString(ts.Labels), l.Name)
			return lset, false
		}
	}
	if dup, has := lset.HasDuplicateLabelNames(); has {
		d.add(reasonDuplicateLabel, n, "series %s has the label name %q more than once", seriesString(ts.Labels), dup)
		return lset, false
	}
	return lset, true
}

// samples keeps the samples whose timestamps strictly increase.
func (v *validator) samples(lset labels.Labels, in []prompb.Sample, d *discards) []*ingesterpb.Sample {
	if len(in) == 0 {
		d.add(reasonNoSamples, 0, "series %s has no samples", lset)
		return nil
	}
	out := make([]*ingesterpb.Sample, 0, len(in))
	slab := make([]ingesterpb.Sample, len(in))
	last := int64(0)
	for k, s := range in {
		if k > 0 && s.Timestamp <= last {
			d.add(reasonOutOfOrder, 1, "series %s has samples out of order within the request: %s after %s", lset,
				timestamp.Time(s.Timestamp).Format(time.RFC3339Nano), timestamp.Time(last).Format(time.RFC3339Nano))
			continue
		}
		slab[k] = ingesterpb.Sample{TimestampMs: s.Timestamp, Value: s.Value}
		out = append(out, &slab[k])
		last = s.Timestamp
	}
	return out
}

// seriesString prints wire labels as they came, unsorted and unvalidated,
// so the message shows the client what it sent.
func seriesString(ls []prompb.Label) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for k, l := range ls {
		if k > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s=%q", l.Name, l.Value)
	}
	sb.WriteByte('}')
	return sb.String()
}
