package distributor

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/timestamp"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/ring"
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
	reasonHistogramsUnsupp = "native-histograms-unsupported"
	reasonMetadataInvalid  = "metadata-invalid"
)

var metricName = []byte(model.MetricNameLabel)

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

// validSeries is one series that passed validation: enc[lo:hi] of its
// validated is the series in the push encoding.
type validSeries struct {
	lo, hi int
	key    uint32
}

// validated is the part of a request that passed validation, ready to push.
type validated struct {
	enc      []byte
	series   []validSeries
	samples  int
	metadata []*ingesterpb.MetricMetadata
}

func (v *validated) reset() {
	v.enc, v.series, v.samples, v.metadata = v.enc[:0], v.series[:0], 0, v.metadata[:0]
}

// validateMetadata keeps metadata with a valid metric family name and UTF-8
// text. Metadata is rare next to samples, so it is copied out of the body.
func (v *validator) validateMetadata(w *writeRequest, d *discards, out *validated) {
	for _, md := range w.metadata {
		if !v.scheme.IsValidMetricName(yolo(md.family)) || !utf8.Valid(md.help) || !utf8.Valid(md.unit) {
			d.add(reasonMetadataInvalid, 0, "metadata for metric family %q has an invalid name, help or unit", md.family)
			continue
		}
		out.metadata = append(out.metadata, &ingesterpb.MetricMetadata{
			MetricFamilyName: string(md.family), Type: md.typ, Help: string(md.help), Unit: string(md.unit),
		})
	}
}

// validator checks series against Prometheus's rules for names and order.
type validator struct {
	scheme model.ValidationScheme
	hasher ring.ShardHasher
	lbuf   []byte
}

// validate appends every valid series of w, with its valid samples, to out.
// Labels are sorted; labels with an empty value are dropped, as Prometheus
// treats them as absent.
func (v *validator) validate(tenantID string, w *writeRequest, d *discards, out *validated) {
	for k := range w.series {
		s := &w.series[k]
		ls := w.seriesLabels(s)
		if s.histograms > 0 {
			d.add(reasonHistogramsUnsupp, s.histograms, "native histogram samples are not supported yet, series %s", seriesString(ls))
		}
		ls, ok := v.checkLabels(ls, len(w.seriesSamples(s)), d)
		if !ok {
			continue
		}
		v.appendSeries(tenantID, ls, w.seriesSamples(s), d, out)
	}
}

// checkLabels returns the series' labels sorted, without empty values, or
// false when the series is invalid.
func (v *validator) checkLabels(ls []rawLabel, samples int, d *discards) ([]rawLabel, bool) {
	for _, l := range ls {
		if !v.scheme.IsValidLabelName(yolo(l.name)) {
			d.add(reasonInvalidLabel, samples, "series %s has an invalid label name %q", seriesString(ls), l.name)
			return nil, false
		}
		if !utf8.Valid(l.value) {
			d.add(reasonInvalidValue, samples, "series %s has a label %q whose value is not valid UTF-8", seriesString(ls), l.name)
			return nil, false
		}
	}
	kept := slices.DeleteFunc(ls, func(l rawLabel) bool { return len(l.value) == 0 })
	if !slices.IsSortedFunc(kept, cmpName) {
		slices.SortFunc(kept, cmpName)
	}
	var name []byte
	for k, l := range kept {
		if k > 0 && bytes.Equal(kept[k-1].name, l.name) {
			d.add(reasonDuplicateLabel, samples, "series %s has the label name %q more than once", seriesString(kept), l.name)
			return nil, false
		}
		if bytes.Equal(l.name, metricName) {
			name = l.value
		}
	}
	if name == nil {
		d.add(reasonMissingName, samples, "series %s has no metric name (__name__ label)", seriesString(kept))
		return nil, false
	}
	if !v.scheme.IsValidMetricName(yolo(name)) {
		d.add(reasonInvalidName, samples, "series %s has an invalid metric name %q", seriesString(kept), name)
		return nil, false
	}
	return kept, true
}

// appendSeries encodes the series with the samples whose timestamps
// strictly increase; the others are discarded.
func (v *validator) appendSeries(tenantID string, ls []rawLabel, samples []rawSample, d *discards, out *validated) {
	n := 0
	for k, last := 0, int64(0); k < len(samples); k++ {
		if n == 0 || samples[k].t > last {
			n, last = n+1, samples[k].t
		}
	}
	if n == 0 {
		return
	}
	v.hasher.Reset(tenantID)
	v.lbuf = v.lbuf[:0]
	for _, l := range ls {
		v.hasher.Add(l.name, l.value)
		v.lbuf = ingesterpb.AppendLabelPair(v.lbuf, l.name, l.value)
	}
	lo := len(out.enc)
	out.enc = ingesterpb.AppendSeriesHeader(out.enc, v.lbuf, n)
	for k, last := 0, int64(0); k < len(samples); k++ {
		s := samples[k]
		if k > 0 && s.t <= last {
			d.add(reasonOutOfOrder, 1, "series %s has samples out of order within the request: %s after %s", seriesString(ls),
				timestamp.Time(s.t).Format(time.RFC3339Nano), timestamp.Time(last).Format(time.RFC3339Nano))
			continue
		}
		out.enc = ingesterpb.AppendSample(out.enc, s.t, s.v)
		last = s.t
	}
	out.series = append(out.series, validSeries{lo: lo, hi: len(out.enc), key: v.hasher.Sum()})
	out.samples += n
}

func cmpName(a, b rawLabel) int { return bytes.Compare(a.name, b.name) }

// yolo views b as a string without copying, for read-only checks that do
// not keep the string.
func yolo(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// seriesString prints labels as they are, so the message shows the client
// what it sent. Only called on the error path.
func seriesString(ls []rawLabel) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for k, l := range ls {
		if k > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s=%q", l.name, l.value)
	}
	sb.WriteByte('}')
	return sb.String()
}
