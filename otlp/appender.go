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
	series []prompb.TimeSeries
	// byHash is the last series of each label hash; sameHash[i] the series
	// before i with i's hash, or -1: a chain rather than a slice per hash,
	// which would cost an allocation per series.
	byHash   map[uint64]int
	sameHash []int
	// slab is where series' labels are cut from, a few thousand at a time.
	slab     []prompb.Label
	metadata []prompb.MetricMetadata
	families map[string]bool
	// cost is the bytes the translation holds so far (each new series'
	// labels, each sample), budget bounds it; over is set once it would
	// pass the budget, and the request is refused whole.
	cost, budget int
	over         bool
	// targetInfo counts each resource's target_info samples.
	targetInfo map[uint64]int
}

// maxTargetInfoSamples bounds one resource's target_info samples in one
// request: the translator writes one every half lookback delta (2m30s)
// from the resource's earliest point to its latest, so a request with a
// point at 1970 and one today would make eleven million of them. A day's
// worth is written; a longer span is refused with an error.
const maxTargetInfoSamples = 24 * 60 * 60 / 150

// costPerBodyByte bounds what a request may translate into: every series
// repeats its resource's and point's attributes as labels, and a histogram
// makes a series per bucket, so a realistic export takes several times its
// size (BenchmarkExportMemory's 2 MB of histograms: about 7 times). Past
// this, a small body with huge attributes or spread-out timestamps is
// refused before it becomes gigabytes.
const costPerBodyByte = 32

// sampleCost is what one sample holds in a remote-write request; a label
// costs its bytes and labelCost more; a target_info sample also takes an
// entry of the translator's de-duplication map; a native histogram costs
// histogramCost per bucket, custom bound and the rest.
const sampleCost, labelCost, targetInfoCost, histogramCost = 16, 32, 128, 24

var (
	errTargetInfoSpan = errors.New("a resource's points span more than a day: target_info is written for its first day only")
	errTooLarge       = errors.New("the request translates to more than its size allows")
)

// newAppender returns an appender for a request of size bytes with about
// points data points (each usually a series of its own).
func newAppender(size, points int) *appender {
	// What the request probably holds is allocated at once, within the
	// budget: a prompb.TimeSeries takes 128 bytes.
	budget := costPerBodyByte*size + 256<<10
	n := min(points, budget/128)
	return &appender{
		series: make([]prompb.TimeSeries, 0, n), byHash: make(map[uint64]int, n), sameHash: make([]int, 0, n),
		families: map[string]bool{}, budget: budget, targetInfo: map[uint64]int{},
	}
}

func (a *appender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	if a.over {
		return 0, errTooLarge
	}
	if ls.Get(model.MetricNameLabel) == "target_info" {
		hash := ls.Hash()
		if a.targetInfo[hash] >= maxTargetInfoSamples {
			return 0, errTargetInfoSpan
		}
		a.targetInfo[hash]++
		if !a.charge(targetInfoCost) {
			return 0, errTooLarge
		}
	}
	i, ok := a.seriesOf(ls)
	if !ok {
		return 0, errTooLarge
	}
	switch {
	case h != nil:
		if !a.charge(histogramCost * (len(h.PositiveBuckets) + len(h.NegativeBuckets) + len(h.CustomValues) + 1)) {
			return 0, errTooLarge
		}
		a.series[i].Histograms = append(a.series[i].Histograms, prompb.FromIntHistogram(t, h))
	case fh != nil:
		if !a.charge(histogramCost * (len(fh.PositiveBuckets) + len(fh.NegativeBuckets) + len(fh.CustomValues) + 1)) {
			return 0, errTooLarge
		}
		a.series[i].Histograms = append(a.series[i].Histograms, prompb.FromFloatHistogram(t, fh))
	default:
		a.series[i].Samples = append(a.series[i].Samples, prompb.Sample{Timestamp: t, Value: v})
	}
	for _, e := range opts.Exemplars {
		// Stored as remote write's, where the tenant stores exemplars.
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

// seriesOf returns the index of ls's series, adding it within the budget
// (ok is false, and over set, when it does not fit); the labels are
// copied, since the translator reuses its buffers.
func (a *appender) seriesOf(ls labels.Labels) (i int, ok bool) {
	hash := ls.Hash()
	last, seen := a.byHash[hash]
	if seen {
		for i := last; i >= 0; i = a.sameHash[i] {
			if labelsEqual(a.series[i].Labels, ls) {
				return i, a.charge(sampleCost)
			}
		}
	} else {
		last = -1
	}
	size := sampleCost
	ls.Range(func(l labels.Label) { size += len(l.Name) + len(l.Value) + labelCost })
	if !a.charge(size) {
		return 0, false
	}
	n := ls.Len()
	if cap(a.slab)-len(a.slab) < n {
		a.slab = make([]prompb.Label, 0, max(n, 4096))
	}
	start := len(a.slab)
	ls.Range(func(l labels.Label) { a.slab = append(a.slab, prompb.Label{Name: l.Name, Value: l.Value}) })
	a.series = append(a.series, prompb.TimeSeries{Labels: a.slab[start:len(a.slab):len(a.slab)]})
	i = len(a.series) - 1
	a.sameHash = append(a.sameHash, last)
	a.byHash[hash] = i
	return i, true
}

// charge adds n to the cost if it stays within the budget.
func (a *appender) charge(n int) bool {
	if a.cost+n > a.budget {
		a.over = true
		return false
	}
	a.cost += n
	return true
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
