package distributor

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/prompb"

	"github.com/orrery/orrery/limits"
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
	reasonInvalidHistogram = "invalid-native-histogram"
	reasonHistogramBuckets = "max-native-histogram-buckets"
	reasonMetadataInvalid  = "metadata-invalid"
	reasonTooManyLabels    = "max-label-names-per-series"
	reasonNameTooLong      = "label-name-too-long"
	reasonValueTooLong     = "label-value-too-long"
	reasonTooFarInFuture   = "too-far-in-future"
	reasonTooOld           = "sample-too-old"
	reasonRateLimited      = "tenant-max-ingestion-rate"
	reasonExemplarsOff     = "exemplars-disabled"
	reasonInvalidExemplar  = "invalid-exemplar"
	// reasonExemplarOutOfOrder is the ingesters' refusal of exemplars.
	reasonExemplarOutOfOrder = "exemplar-out-of-order"
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
	enc    []byte
	series []validSeries
	// samples counts floats and histograms, histograms the histograms.
	samples    int
	histograms int
	// exemplars counts the exemplars sent on; exemplarsDropped those
	// left out, the first one's reason in exemplarProblem.
	exemplars        int
	exemplarsDropped int
	exemplarProblem  string
	metadata         []*ingesterpb.MetricMetadata
}

func (v *validated) reset() {
	v.enc, v.series, v.samples, v.histograms, v.metadata = v.enc[:0], v.series[:0], 0, 0, v.metadata[:0]
	v.exemplars, v.exemplarsDropped, v.exemplarProblem = 0, 0, ""
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
	limits *limits.Limits
	// minT and maxT bound the accepted timestamps, from the tenant's grace
	// periods.
	minT, maxT int64
	hasher     ring.ShardHasher
	lbuf       []byte
	// hists holds one series' valid histograms until they are encoded.
	hists []histogramSample
	// dropLabel is removed from every series: the replica label of an
	// accepted HA pair's request.
	dropLabel string
	// exemplarsOn is set when the tenant stores exemplars; exs holds a
	// series' valid ones until they are encoded.
	exemplarsOn bool
	exs         []validExemplar
	ebuf        []byte
	// anyOrder keeps a series' samples in the order sent, older ones
	// too, for a tenant with an out-of-order window: the ingesters judge
	// each against the window, as Prometheus appends a request's samples
	// one by one.
	anyOrder bool
}

// setLimits applies a tenant's limits as of now.
func (v *validator) setLimits(l *limits.Limits, now time.Time) {
	v.limits = l
	v.dropLabel = ""
	v.exemplarsOn = l.MaxGlobalExemplarsPerUser > 0
	v.anyOrder = l.OutOfOrderTimeWindow > 0
	v.minT, v.maxT = math.MinInt64, math.MaxInt64
	if l.PastGracePeriod > 0 {
		v.minT = now.Add(-l.PastGracePeriod).UnixMilli()
	}
	if l.CreationGracePeriod > 0 {
		v.maxT = now.Add(l.CreationGracePeriod).UnixMilli()
	}
}

// validate appends every valid series of w, with its valid samples, to out.
// Labels are sorted; labels with an empty value are dropped, as Prometheus
// treats them as absent.
func (v *validator) validate(tenantID string, w *writeRequest, d *discards, out *validated) {
	for k := range w.series {
		s := &w.series[k]
		samples, hists, exs := w.seriesSamples(s), w.seriesHistograms(s), w.seriesExemplars(s)
		ls, ok := v.checkLabels(w.seriesLabels(s), len(samples)+len(hists), d)
		if !ok {
			out.dropExemplars(len(exs), "the exemplars of discarded series were not written")
			continue
		}
		// Floats first, then histograms, as Prometheus appends a series'
		// samples of a request.
		if len(samples) > 0 {
			v.appendSeries(tenantID, ls, samples, d, out)
		}
		if len(hists) > 0 {
			v.appendHistograms(tenantID, ls, hists, d, out)
		}
		if len(exs) > 0 {
			v.appendExemplars(tenantID, w, ls, exs, out)
		}
	}
}

// dropExemplars counts n exemplars left out, the first for problem.
func (v *validated) dropExemplars(n int, problem string) {
	v.exemplarsDropped += n
	if v.exemplarProblem == "" && problem != "" {
		v.exemplarProblem = problem
	}
}

// appendExemplars encodes the series' exemplars that the tenant stores and
// that follow OpenMetrics' rules (at most 128 characters of label names
// and values, valid UTF-8, no name twice; empty values dropped, as
// Prometheus drops them) within the grace periods, sorted as Prometheus's
// receiver sorts them (by time, value, labels); the ingesters judge their
// order. Exemplars never cost their samples anything. Only the first
// refusal's message is written.
func (v *validator) appendExemplars(tenantID string, w *writeRequest, ls []rawLabel, exs []rawExemplar, out *validated) {
	if !v.exemplarsOn {
		msg := ""
		if out.exemplarProblem == "" {
			msg = fmt.Sprintf("exemplars were not written: the tenant stores none (err-orrery-%s: set the tenant's max_global_exemplars_per_user, or -ingester.max-global-exemplars-per-user, or send without exemplars: send_exemplars: false)", reasonExemplarsOff)
		}
		out.dropExemplars(len(exs), msg)
		return
	}
	v.exs = v.exs[:0]
	for k := range exs {
		e := &exs[k]
		els, why := v.checkExemplar(w.exemplarLabels(e), e.t)
		if why != "" {
			msg := ""
			if out.exemplarProblem == "" {
				msg = fmt.Sprintf("series %s has an exemplar %s (err-orrery-%s)", seriesString(ls), why, reasonInvalidExemplar)
			}
			out.dropExemplars(1, msg)
			continue
		}
		v.exs = append(v.exs, validExemplar{labels: els, t: e.t, v: e.v})
	}
	if len(v.exs) == 0 {
		return
	}
	slices.SortFunc(v.exs, compareExemplars)
	v.encodeLabels(tenantID, ls)
	lo := len(out.enc)
	out.enc = ingesterpb.AppendExemplarSeriesHeader(out.enc, v.lbuf, len(v.exs))
	for _, e := range v.exs {
		v.ebuf = v.ebuf[:0]
		for _, l := range e.labels {
			v.ebuf = ingesterpb.AppendLabelPair(v.ebuf, l.name, l.value)
		}
		out.enc = ingesterpb.AppendExemplar(out.enc, v.ebuf, e.t, e.v)
	}
	out.series = append(out.series, validSeries{lo: lo, hi: len(out.enc), key: v.hasher.Sum()})
	out.exemplars += len(v.exs)
}

// validExemplar is an exemplar that passed validation.
type validExemplar struct {
	labels []rawLabel
	t      int64
	v      float64
}

// compareExemplars orders exemplars as exemplar.Compare does.
func compareExemplars(a, b validExemplar) int {
	if c := cmp.Compare(a.t, b.t); c != 0 {
		return c
	}
	switch {
	case a.v < b.v:
		return -1
	case a.v > b.v:
		return 1
	}
	for k := 0; k < len(a.labels) && k < len(b.labels); k++ {
		if c := bytes.Compare(a.labels[k].name, b.labels[k].name); c != 0 {
			return c
		}
		if c := bytes.Compare(a.labels[k].value, b.labels[k].value); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a.labels), len(b.labels))
}

// checkExemplar returns the exemplar's labels sorted, without empty
// values, or why it is invalid.
func (v *validator) checkExemplar(ls []rawLabel, t int64) ([]rawLabel, string) {
	if !v.inBounds(t) {
		return nil, fmt.Sprintf("at %s, outside the tenant's grace periods", timestamp.Time(t).Format(time.RFC3339Nano))
	}
	ls = slices.DeleteFunc(ls, func(l rawLabel) bool { return len(l.value) == 0 })
	runes := 0
	for _, l := range ls {
		if !utf8.Valid(l.name) || !utf8.Valid(l.value) || len(l.name) == 0 {
			return nil, "with a label name that is empty or not valid UTF-8"
		}
		runes += utf8.RuneCount(l.name) + utf8.RuneCount(l.value)
	}
	if runes > exemplar.ExemplarMaxLabelSetLength {
		return nil, fmt.Sprintf("whose labels take %d characters, more than OpenMetrics' %d", runes, exemplar.ExemplarMaxLabelSetLength)
	}
	if !slices.IsSortedFunc(ls, cmpName) {
		slices.SortFunc(ls, cmpName)
	}
	for k := 1; k < len(ls); k++ {
		if bytes.Equal(ls[k-1].name, ls[k].name) {
			return nil, fmt.Sprintf("with the label name %q twice", ls[k].name)
		}
	}
	return ls, ""
}

// checkLabels returns the series' labels sorted, without empty values, or
// false when the series is invalid.
func (v *validator) checkLabels(ls []rawLabel, samples int, d *discards) ([]rawLabel, bool) {
	if n := v.limits.MaxLabelNamesPerSeries; n > 0 && len(ls) > n {
		d.add(reasonTooManyLabels, samples, "series %s has %d labels, more than the limit of %d (raise the tenant's max_label_names_per_series or -validation.max-label-names-per-series)", seriesString(ls), len(ls), n)
		return nil, false
	}
	for _, l := range ls {
		if n := v.limits.MaxLabelNameLength; n > 0 && len(l.name) > n {
			d.add(reasonNameTooLong, samples, "series %s has a label name of %d bytes, longer than the limit of %d (raise the tenant's max_label_name_length or -validation.max-length-label-name)", seriesString(ls), len(l.name), n)
			return nil, false
		}
		if n := v.limits.MaxLabelValueLength; n > 0 && len(l.value) > n {
			d.add(reasonValueTooLong, samples, "series %s has a value of %d bytes for label %q, longer than the limit of %d (raise the tenant's max_label_value_length or -validation.max-length-label-value)", seriesString(ls), len(l.value), l.name, n)
			return nil, false
		}
		if !v.scheme.IsValidLabelName(yolo(l.name)) {
			d.add(reasonInvalidLabel, samples, "series %s has an invalid label name %q", seriesString(ls), l.name)
			return nil, false
		}
		if !utf8.Valid(l.value) {
			d.add(reasonInvalidValue, samples, "series %s has a label %q whose value is not valid UTF-8", seriesString(ls), l.name)
			return nil, false
		}
	}
	kept := slices.DeleteFunc(ls, func(l rawLabel) bool {
		return len(l.value) == 0 || (v.dropLabel != "" && yolo(l.name) == v.dropLabel)
	})
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
// strictly increase (any in-bounds sample, with anyOrder); the others are
// discarded.
func (v *validator) appendSeries(tenantID string, ls []rawLabel, samples []rawSample, d *discards, out *validated) {
	n := 0
	for k, last := 0, int64(0); k < len(samples); k++ {
		if v.inBounds(samples[k].t) && (n == 0 || v.anyOrder || samples[k].t > last) {
			n, last = n+1, samples[k].t
		}
	}
	if n == 0 {
		for _, s := range samples {
			if !v.inBounds(s.t) {
				v.discardOutOfBounds(ls, s.t, d)
			}
		}
		return
	}
	v.encodeLabels(tenantID, ls)
	lo := len(out.enc)
	out.enc = ingesterpb.AppendSeriesHeader(out.enc, v.lbuf, n)
	first := true
	for k, last := 0, int64(0); k < len(samples); k++ {
		s := samples[k]
		if !v.inBounds(s.t) {
			v.discardOutOfBounds(ls, s.t, d)
			continue
		}
		if !first && !v.anyOrder && s.t <= last {
			d.add(reasonOutOfOrder, 1, "series %s has samples out of order within the request: %s after %s", seriesString(ls),
				timestamp.Time(s.t).Format(time.RFC3339Nano), timestamp.Time(last).Format(time.RFC3339Nano))
			continue
		}
		out.enc = ingesterpb.AppendSample(out.enc, s.t, s.v)
		last, first = s.t, false
	}
	out.series = append(out.series, validSeries{lo: lo, hi: len(out.enc), key: v.hasher.Sum()})
	out.samples += n
}

// encodeLabels puts the series' encoded labels in v.lbuf and its shard
// key in v.hasher.
func (v *validator) encodeLabels(tenantID string, ls []rawLabel) {
	v.hasher.Reset(tenantID)
	v.lbuf = v.lbuf[:0]
	for _, l := range ls {
		v.hasher.Add(l.name, l.value)
		v.lbuf = ingesterpb.AppendLabelPair(v.lbuf, l.name, l.value)
	}
}

// histogramSample is a decoded native histogram: exactly one of h and fh.
// raw is its message as sent, which goes on as it is unless validation
// changed the histogram (changed).
type histogramSample struct {
	t       int64
	h       *histogram.Histogram
	fh      *histogram.FloatHistogram
	raw     []byte
	changed bool
}

// appendHistograms encodes the series' histograms that decode, validate,
// fit the tenant's bucket limit and rise strictly in time (any order, with
// anyOrder); the others are discarded.
func (v *validator) appendHistograms(tenantID string, ls []rawLabel, raw [][]byte, d *discards, out *validated) {
	v.hists = v.hists[:0]
	for _, b := range raw {
		hs, ok := v.checkHistogram(ls, b, d)
		if !ok {
			continue
		}
		if n := len(v.hists); n > 0 && !v.anyOrder && hs.t <= v.hists[n-1].t {
			d.add(reasonOutOfOrder, 1, "series %s has histograms out of order within the request: %s after %s", seriesString(ls),
				timestamp.Time(hs.t).Format(time.RFC3339Nano), timestamp.Time(v.hists[n-1].t).Format(time.RFC3339Nano))
			continue
		}
		v.hists = append(v.hists, hs)
	}
	if len(v.hists) == 0 {
		return
	}
	v.encodeLabels(tenantID, ls)
	lo := len(out.enc)
	out.enc = ingesterpb.AppendHistogramSeriesHeader(out.enc, v.lbuf, len(v.hists))
	for _, hs := range v.hists {
		if hs.changed {
			out.enc = ingesterpb.AppendHistogram(out.enc, hs.t, hs.h, hs.fh)
		} else {
			out.enc = ingesterpb.AppendHistogramBytes(out.enc, hs.raw)
		}
	}
	out.series = append(out.series, validSeries{lo: lo, hi: len(out.enc), key: v.hasher.Sum()})
	out.samples += len(v.hists)
	out.histograms += len(v.hists)
	clear(v.hists)
}

// checkHistogram decodes one Histogram message and applies Prometheus's
// rules: a known schema, one finer than 8 reduced to 8 as Prometheus
// reduces it, buckets consistent with their spans and counts, and the
// tenant's bucket limit.
func (v *validator) checkHistogram(ls []rawLabel, b []byte, d *discards) (histogramSample, bool) {
	var m prompb.Histogram
	if err := m.Unmarshal(b); err != nil {
		d.add(reasonInvalidHistogram, 1, "series %s has a histogram that does not decode: %s", seriesString(ls), err)
		return histogramSample{}, false
	}
	hs := histogramSample{t: m.Timestamp, raw: b}
	if !v.inBounds(hs.t) {
		v.discardOutOfBounds(ls, hs.t, d)
		return hs, false
	}
	if !histogram.IsKnownSchema(m.Schema) {
		d.add(reasonInvalidHistogram, 1, "series %s has a histogram at %s with %s", seriesString(ls), timestamp.Time(hs.t).Format(time.RFC3339Nano), histogram.UnknownSchemaError(m.Schema))
		return hs, false
	}
	var err error
	if m.IsFloatHistogram() {
		hs.fh = m.ToFloatHistogram()
		if hs.fh.Schema > histogram.ExponentialSchemaMax {
			err, hs.changed = hs.fh.ReduceResolution(histogram.ExponentialSchemaMax), true
		}
		if err == nil {
			err = hs.fh.Validate()
		}
	} else {
		hs.h = m.ToIntHistogram()
		if hs.h.Schema > histogram.ExponentialSchemaMax {
			err, hs.changed = hs.h.ReduceResolution(histogram.ExponentialSchemaMax), true
		}
		if err == nil {
			err = hs.h.Validate()
		}
	}
	if err != nil {
		d.add(reasonInvalidHistogram, 1, "series %s has an invalid histogram at %s: %s", seriesString(ls), timestamp.Time(hs.t).Format(time.RFC3339Nano), err)
		return hs, false
	}
	// Empty spans cost the ingesters memory and say nothing: a histogram
	// with more spans than buckets goes on without them (and without its
	// empty buckets, which change no answer).
	if hs.h != nil && len(hs.h.PositiveSpans)+len(hs.h.NegativeSpans) > len(hs.h.PositiveBuckets)+len(hs.h.NegativeBuckets) {
		hs.h.Compact(0)
		hs.changed = true
	}
	if hs.fh != nil && len(hs.fh.PositiveSpans)+len(hs.fh.NegativeSpans) > len(hs.fh.PositiveBuckets)+len(hs.fh.NegativeBuckets) {
		hs.fh.Compact(0)
		hs.changed = true
	}
	if err := v.fitBuckets(&hs); err != nil {
		d.add(reasonHistogramBuckets, 1, "series %s has a histogram at %s with %s (raise the tenant's max_native_histogram_buckets or -validation.max-native-histogram-buckets)", seriesString(ls), timestamp.Time(hs.t).Format(time.RFC3339Nano), err)
		return hs, false
	}
	return hs, true
}

// fitBuckets applies the tenant's bucket limit, halving the resolution
// until the histogram fits when the tenant allows it.
func (v *validator) fitBuckets(hs *histogramSample) error {
	limit := v.limits.MaxNativeHistogramBuckets
	if limit <= 0 {
		return nil
	}
	buckets := func() (int, int32) {
		if hs.h != nil {
			return len(hs.h.PositiveBuckets) + len(hs.h.NegativeBuckets), hs.h.Schema
		}
		return len(hs.fh.PositiveBuckets) + len(hs.fh.NegativeBuckets), hs.fh.Schema
	}
	n, schema := buckets()
	for n > limit {
		if !v.limits.ReduceNativeHistogramOverMaxBuckets || histogram.IsCustomBucketsSchema(schema) || schema <= histogram.ExponentialSchemaMin {
			return fmt.Errorf("%d buckets, more than the limit of %d", n, limit)
		}
		var err error
		if hs.h != nil {
			err = hs.h.ReduceResolution(schema - 1)
		} else {
			err = hs.fh.ReduceResolution(schema - 1)
		}
		if err != nil {
			return err
		}
		hs.changed = true
		n, schema = buckets()
	}
	return nil
}

func (v *validator) inBounds(t int64) bool { return t >= v.minT && t <= v.maxT }

func (v *validator) discardOutOfBounds(ls []rawLabel, t int64, d *discards) {
	at := timestamp.Time(t).Format(time.RFC3339Nano)
	if t > v.maxT {
		d.add(reasonTooFarInFuture, 1, "series %s has a sample at %s, more than %s in the future (raise the tenant's creation_grace_period or -validation.create-grace-period)", seriesString(ls), at, v.limits.CreationGracePeriod)
		return
	}
	d.add(reasonTooOld, 1, "series %s has a sample at %s, older than %s (raise the tenant's past_grace_period or -validation.past-grace-period)", seriesString(ls), at, v.limits.PastGracePeriod)
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
