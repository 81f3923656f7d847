package distributor

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// Field numbers of remote write 1.0 (prometheus/prompb/remote.proto, types.proto).
const (
	fieldTimeseries = 1
	fieldMetadata   = 3

	fieldLabels     = 1
	fieldSamples    = 2
	fieldExemplars  = 3
	fieldHistograms = 4

	fieldName  = 1
	fieldValue = 2

	fieldSampleValue     = 1
	fieldSampleTimestamp = 2

	fieldExemplarLabels    = 1
	fieldExemplarValue     = 2
	fieldExemplarTimestamp = 3

	fieldMetadataType   = 1
	fieldMetadataFamily = 2
	fieldMetadataHelp   = 4
	fieldMetadataUnit   = 5
)

// metricTypes are remote write's MetricMetadata.MetricType values, by
// number, as Prometheus's model.MetricType names them.
var metricTypes = []string{"unknown", "counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset"}

// rawMetadata is one MetricMetadata; the strings alias the body.
type rawMetadata struct {
	family, help, unit []byte
	typ                string
}

// rawLabel is a label whose name and value alias the request body.
type rawLabel struct{ name, value []byte }

type rawSample struct {
	t int64
	v float64
}

// rawSeries indexes into writeRequest's slabs: a request of thousands of
// series costs a few slab growths, not allocations per series or label.
type rawSeries struct {
	labelsLo, labelsHi   int
	samplesLo, samplesHi int
	histLo, histHi       int
	exLo, exHi           int
}

// rawExemplar is one exemplar; its labels are exLabels[labelsLo:labelsHi].
type rawExemplar struct {
	labelsLo, labelsHi int
	t                  int64
	v                  float64
}

// writeRequest is a decoded remote-write 1.0 request. It is reused between
// requests; everything in it aliases the body it was parsed from.
type writeRequest struct {
	symbols [][]byte
	// refs and exRefs hold a 2.0 series' and exemplar's label references.
	refs    []uint32
	exRefs  []uint32
	series  []rawSeries
	labels  []rawLabel
	samples []rawSample
	// histograms are the Histogram messages, 1.0's and 2.0's alike: they
	// are decoded one at a time as they are validated.
	histograms [][]byte
	exemplars  []rawExemplar
	exLabels   []rawLabel
	metadata   []rawMetadata
	// m is charged for the decoded form as it grows; nil charges nothing.
	m *meter
}

func (w *writeRequest) reset() {
	w.series, w.labels, w.samples, w.histograms, w.metadata = w.series[:0], w.labels[:0], w.samples[:0], w.histograms[:0], w.metadata[:0]
	w.exemplars, w.exLabels = w.exemplars[:0], w.exLabels[:0]
}

func (w *writeRequest) seriesExemplars(s *rawSeries) []rawExemplar {
	return w.exemplars[s.exLo:s.exHi]
}

func (w *writeRequest) exemplarLabels(e *rawExemplar) []rawLabel {
	return w.exLabels[e.labelsLo:e.labelsHi]
}

func (w *writeRequest) seriesHistograms(s *rawSeries) [][]byte {
	return w.histograms[s.histLo:s.histHi]
}

func (w *writeRequest) seriesLabels(s *rawSeries) []rawLabel { return w.labels[s.labelsLo:s.labelsHi] }
func (w *writeRequest) seriesSamples(s *rawSeries) []rawSample {
	return w.samples[s.samplesLo:s.samplesHi]
}

var errTruncated = errors.New("truncated or malformed field")

// parse decodes a prometheus.WriteRequest. Unknown fields are skipped, as
// protobuf requires.
func (w *writeRequest) parse(b []byte) error {
	w.reset()
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == fieldTimeseries && typ == protowire.BytesType:
			if err := w.parseSeries(v); err != nil {
				return fmt.Errorf("timeseries %d: %w", len(w.series), err)
			}
		case num == fieldMetadata && typ == protowire.BytesType:
			if err := w.parseMetadata(v); err != nil {
				return fmt.Errorf("metadata %d: %w", len(w.metadata), err)
			}
		}
		return nil
	})
}

func (w *writeRequest) parseMetadata(b []byte) error {
	md := rawMetadata{typ: metricTypes[0]}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == fieldMetadataType && typ == protowire.VarintType:
			if x < uint64(len(metricTypes)) {
				md.typ = metricTypes[x]
			}
		case num == fieldMetadataFamily && typ == protowire.BytesType:
			md.family = v
		case num == fieldMetadataHelp && typ == protowire.BytesType:
			md.help = v
		case num == fieldMetadataUnit && typ == protowire.BytesType:
			md.unit = v
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.m.add(metadataCost + len(md.family) + len(md.help) + len(md.unit)); err != nil {
		return err
	}
	w.metadata = append(w.metadata, md)
	return nil
}

func (w *writeRequest) parseSeries(b []byte) error {
	s := rawSeries{labelsLo: len(w.labels), samplesLo: len(w.samples), histLo: len(w.histograms), exLo: len(w.exemplars)}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == fieldLabels && typ == protowire.BytesType:
			l, err := w.parseLabel(v)
			if err != nil {
				return err
			}
			w.labels = append(w.labels, l)
			return nil
		case num == fieldSamples && typ == protowire.BytesType:
			return w.parseSample(v)
		case num == fieldExemplars && typ == protowire.BytesType:
			return w.parseExemplar(v)
		case num == fieldHistograms && typ == protowire.BytesType:
			return w.addHistogram(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.m.add(seriesCost); err != nil {
		return err
	}
	s.labelsHi, s.samplesHi, s.histHi, s.exHi = len(w.labels), len(w.samples), len(w.histograms), len(w.exemplars)
	w.series = append(w.series, s)
	return nil
}

// parseLabel decodes one Label message, charged before it is kept.
func (w *writeRequest) parseLabel(b []byte) (rawLabel, error) {
	var l rawLabel
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ == protowire.BytesType && num == fieldName {
			l.name = v
		} else if typ == protowire.BytesType && num == fieldValue {
			l.value = v
		}
		return nil
	})
	if err != nil {
		return rawLabel{}, err
	}
	return l, w.m.add(labelCost + len(l.name) + len(l.value))
}

// parseExemplar appends one 1.0 Exemplar message: labels, value, time.
func (w *writeRequest) parseExemplar(b []byte) error {
	e := rawExemplar{labelsLo: len(w.exLabels)}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == fieldExemplarLabels && typ == protowire.BytesType:
			l, err := w.parseLabel(v)
			if err != nil {
				return err
			}
			w.exLabels = append(w.exLabels, l)
		case num == fieldExemplarValue && typ == protowire.Fixed64Type:
			e.v = math.Float64frombits(x)
		case num == fieldExemplarTimestamp && typ == protowire.VarintType:
			e.t = int64(x)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return w.addExemplar(e)
}

// addExemplar keeps an exemplar whose labels were appended to exLabels.
func (w *writeRequest) addExemplar(e rawExemplar) error {
	if err := w.m.add(exemplarCost); err != nil {
		return err
	}
	e.labelsHi = len(w.exLabels)
	w.exemplars = append(w.exemplars, e)
	return nil
}

// addHistogram keeps one Histogram message, 1.0's or 2.0's (their fields
// are the same), for validation to decode. It is charged for what decoding
// it may take: a one-byte bucket delta becomes eight bytes, the push
// encoding takes its size again, and a span, two bytes when empty, takes
// spanCost (counted before anything is decoded).
func (w *writeRequest) addHistogram(v []byte) error {
	spans, _, err := ingesterpb.HistogramShape(v)
	if err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	if err := w.m.add(histogramCost + histogramExpansion*len(v) + spanCost*spans); err != nil {
		return err
	}
	w.histograms = append(w.histograms, v)
	return nil
}

// parseSample appends one Sample message; 1.0 and 2.0 share its layout.
func (w *writeRequest) parseSample(b []byte) error {
	var smp rawSample
	err := eachField(b, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
		if num == fieldSampleValue && typ == protowire.Fixed64Type {
			smp.v = math.Float64frombits(x)
		} else if num == fieldSampleTimestamp && typ == protowire.VarintType {
			smp.t = int64(x)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.m.add(sampleCost); err != nil {
		return err
	}
	w.samples = append(w.samples, smp)
	return nil
}

// eachField calls f with every field of a message: v holds the bytes of a
// length-delimited field, x the value of a varint or fixed field.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errTruncated
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(b)
			x = uint64(x32)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errTruncated
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
