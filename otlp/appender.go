package otlp

import (
	"errors"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
)

// appender collects what the translator appends into a remote-write
// request: one series per label set with its samples in the order given,
// and one metadata entry per metric family.
type appender struct {
	series   []prompb.TimeSeries
	byHash   map[uint64][]int
	metadata []prompb.MetricMetadata
	families map[string]bool
	// histograms counts the native histogram points left out.
	histograms int
	// samples counts the samples taken, budget bounds them, and refused
	// counts those past it.
	samples, budget, refused int
	// targetInfo counts each resource's target_info samples.
	targetInfo map[uint64]int
}

// maxTargetInfoSamples bounds one resource's target_info samples in one
// request: the translator writes one every half lookback delta (2m30s)
// from the resource's earliest point to its latest, so a request with a
// point at 1970 and one today would make eleven million of them. A day's
// worth is written; a longer span is refused with an error.
const maxTargetInfoSamples = 24 * 60 * 60 / 150

var (
	errTargetInfoSpan = errors.New("a resource's points span more than a day: target_info is written for its first day only")
	errTooManySamples = errors.New("the request translates to more samples than its size allows (at most one per byte)")
)

// newAppender returns an appender for a request of size bytes: every
// sample takes at least a byte of an OTLP request, so a request that
// translates to more is refused past that, whatever the translator does.
func newAppender(size int) *appender {
	return &appender{byHash: map[uint64][]int{}, families: map[string]bool{}, budget: size, targetInfo: map[uint64]int{}}
}

func (a *appender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	if h != nil || fh != nil {
		a.histograms++
		// Not an error: the translator goes on with the other points.
		return 1, nil
	}
	if ls.Get(model.MetricNameLabel) == "target_info" {
		hash := ls.Hash()
		if a.targetInfo[hash] >= maxTargetInfoSamples {
			return 0, errTargetInfoSpan
		}
		a.targetInfo[hash]++
	} else if a.samples >= a.budget {
		a.refused++
		return 0, errTooManySamples
	}
	a.samples++
	i := a.seriesOf(ls)
	a.series[i].Samples = append(a.series[i].Samples, prompb.Sample{Timestamp: t, Value: v})
	for _, e := range opts.Exemplars {
		// Carried so the distributor counts them as it counts remote
		// write's (Orrery does not store exemplars yet).
		ex := prompb.Exemplar{Value: e.Value, Timestamp: e.Ts}
		e.Labels.Range(func(l labels.Label) { ex.Labels = append(ex.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
		a.series[i].Exemplars = append(a.series[i].Exemplars, ex)
	}
	if name := opts.MetricFamilyName; name != "" && !a.families[name] && opts.Metadata.Type != "" {
		a.families[name] = true
		a.metadata = append(a.metadata, prompb.MetricMetadata{
			Type:             metricType(opts.Metadata.Type),
			MetricFamilyName: name,
			Help:             opts.Metadata.Help,
			Unit:             opts.Metadata.Unit,
		})
	}
	// A non-zero ref: 0 means a failed append.
	return storage.SeriesRef(i + 1), nil
}

// seriesOf returns the index of ls's series, adding it; the labels are
// copied, since the translator reuses its buffers.
func (a *appender) seriesOf(ls labels.Labels) int {
	hash := ls.Hash()
	for _, i := range a.byHash[hash] {
		if labelsEqual(a.series[i].Labels, ls) {
			return i
		}
	}
	s := prompb.TimeSeries{Labels: make([]prompb.Label, 0, ls.Len())}
	ls.Range(func(l labels.Label) { s.Labels = append(s.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
	a.series = append(a.series, s)
	a.byHash[hash] = append(a.byHash[hash], len(a.series)-1)
	return len(a.series) - 1
}

func labelsEqual(pl []prompb.Label, ls labels.Labels) bool {
	if len(pl) != ls.Len() {
		return false
	}
	i := 0
	equal := true
	ls.Range(func(l labels.Label) {
		if equal && (pl[i].Name != l.Name || pl[i].Value != l.Value) {
			equal = false
		}
		i++
	})
	return equal
}

func metricType(t model.MetricType) prompb.MetricMetadata_MetricType {
	switch t {
	case model.MetricTypeCounter:
		return prompb.MetricMetadata_COUNTER
	case model.MetricTypeGauge:
		return prompb.MetricMetadata_GAUGE
	case model.MetricTypeHistogram:
		return prompb.MetricMetadata_HISTOGRAM
	case model.MetricTypeGaugeHistogram:
		return prompb.MetricMetadata_GAUGEHISTOGRAM
	case model.MetricTypeSummary:
		return prompb.MetricMetadata_SUMMARY
	case model.MetricTypeInfo:
		return prompb.MetricMetadata_INFO
	case model.MetricTypeStateset:
		return prompb.MetricMetadata_STATESET
	default:
		return prompb.MetricMetadata_UNKNOWN
	}
}

// Commit and Rollback do nothing: the handler pushes the collected
// request itself, so that it can answer with the distributor's status.
func (a *appender) Commit() error   { return nil }
func (a *appender) Rollback() error { return nil }
