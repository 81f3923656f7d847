package distributor

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of remote write 2.0 (io.prometheus.write.v2.Request in
// prometheus/prompb/io/prometheus/write/v2/types.proto).
const (
	fieldV2Symbols    = 4
	fieldV2Timeseries = 5

	fieldV2LabelsRefs = 1
	fieldV2Samples    = 2
	fieldV2Histograms = 3
	fieldV2Exemplars  = 4
	fieldV2Metadata   = 5

	fieldV2MetadataType = 1
	fieldV2MetadataHelp = 3
	fieldV2MetadataUnit = 4
)

var errSymbolRef = errors.New("label or metadata refers to a symbol that is not in the symbol table")

// parseV2 decodes an io.prometheus.write.v2.Request into the same form as
// a 1.0 request: labels are resolved through the symbol table into slices
// of the body. Metadata travels per series in 2.0 and is named by the
// series' metric name.
func (w *writeRequest) parseV2(b []byte) error {
	w.reset()
	w.symbols = w.symbols[:0]
	// Symbols first: protobuf does not promise they precede the series.
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num == fieldV2Symbols && typ == protowire.BytesType {
			if err := w.m.add(symbolCost); err != nil {
				return err
			}
			w.symbols = append(w.symbols, v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(w.symbols) > 0 && len(w.symbols[0]) != 0 {
		return errors.New("the first symbol must be the empty string")
	}
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num == fieldV2Timeseries && typ == protowire.BytesType {
			if err := w.parseSeriesV2(v); err != nil {
				return fmt.Errorf("timeseries %d: %w", len(w.series), err)
			}
		}
		return nil
	})
}

func (w *writeRequest) parseSeriesV2(b []byte) error {
	s := rawSeries{labelsLo: len(w.labels), samplesLo: len(w.samples), histLo: len(w.histograms), exLo: len(w.exemplars)}
	w.refs = w.refs[:0]
	var md *rawMetadata
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == fieldV2LabelsRefs:
			var err error
			w.refs, err = w.appendRefs(w.refs, typ, v, x)
			return err
		case num == fieldV2Samples && typ == protowire.BytesType:
			return w.parseSample(v)
		case num == fieldV2Histograms && typ == protowire.BytesType:
			return w.addHistogram(v)
		case num == fieldV2Exemplars && typ == protowire.BytesType:
			return w.parseExemplarV2(v)
		case num == fieldV2Metadata && typ == protowire.BytesType:
			m, err := w.parseMetadataV2(v)
			md = m
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if w.labels, err = w.resolveRefs(w.refs, w.labels); err != nil {
		return fmt.Errorf("labels_refs: %w", err)
	}
	if err := w.m.add(seriesCost); err != nil {
		return err
	}
	s.labelsHi, s.samplesHi, s.histHi, s.exHi = len(w.labels), len(w.samples), len(w.histograms), len(w.exemplars)
	w.series = append(w.series, s)
	if md != nil {
		for _, l := range w.labels[s.labelsLo:s.labelsHi] {
			if bytes.Equal(l.name, metricName) {
				md.family = familyOf(l.value, md.typ)
				if err := w.m.add(metadataCost + len(md.family) + len(md.help) + len(md.unit)); err != nil {
					return err
				}
				w.metadata = append(w.metadata, *md)
			}
		}
	}
	return nil
}

// parseExemplarV2 appends one 2.0 Exemplar message: label references
// into the symbol table, value, time.
func (w *writeRequest) parseExemplarV2(b []byte) error {
	e := rawExemplar{labelsLo: len(w.exLabels)}
	w.exRefs = w.exRefs[:0]
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == fieldExemplarLabels:
			var err error
			w.exRefs, err = w.appendRefs(w.exRefs, typ, v, x)
			return err
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
	if w.exLabels, err = w.resolveRefs(w.exRefs, w.exLabels); err != nil {
		return fmt.Errorf("an exemplar's labels_refs: %w", err)
	}
	return w.addExemplar(e)
}

// resolveRefs appends to dst the labels that refs, name and value
// references in turn, make of the symbol table. A reference of a byte or
// two names a symbol of any length, and every series may name the same
// long symbols: this is where a small 2.0 request grows, so each label is
// charged before it is kept.
func (w *writeRequest) resolveRefs(refs []uint32, dst []rawLabel) ([]rawLabel, error) {
	if len(refs)%2 != 0 {
		return dst, errors.New("an odd number of entries")
	}
	for k := 0; k < len(refs); k += 2 {
		if int(refs[k]) >= len(w.symbols) || int(refs[k+1]) >= len(w.symbols) {
			return dst, errSymbolRef
		}
		l := rawLabel{name: w.symbols[refs[k]], value: w.symbols[refs[k+1]]}
		if err := w.m.add(labelCost + len(l.name) + len(l.value)); err != nil {
			return dst, err
		}
		dst = append(dst, l)
	}
	return dst, nil
}

// familyOf names the metric family of a series from its metric name: 2.0
// sends a classic histogram's _bucket, _count and _sum series (a summary's
// _count and _sum) each with the family's metadata, and metadata is kept,
// as Prometheus serves it, per family.
func familyOf(name []byte, typ string) []byte {
	var suffixes []string
	switch typ {
	case "histogram", "gaugehistogram":
		suffixes = []string{"_bucket", "_count", "_sum"}
	case "summary":
		suffixes = []string{"_count", "_sum"}
	}
	for _, suffix := range suffixes {
		if base, ok := bytes.CutSuffix(name, []byte(suffix)); ok {
			return base
		}
	}
	return name
}

// parseMetadataV2 returns the series' metadata, or nil when it says nothing.
func (w *writeRequest) parseMetadataV2(b []byte) (*rawMetadata, error) {
	md := rawMetadata{typ: metricTypes[0]}
	var help, unit uint64
	err := eachField(b, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
		if typ != protowire.VarintType {
			return nil
		}
		switch num {
		case fieldV2MetadataType:
			if x < uint64(len(metricTypes)) {
				md.typ = metricTypes[x]
			}
		case fieldV2MetadataHelp:
			help = x
		case fieldV2MetadataUnit:
			unit = x
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if help >= uint64(len(w.symbols)) || unit >= uint64(len(w.symbols)) {
		return nil, errSymbolRef
	}
	if md.typ == metricTypes[0] && help == 0 && unit == 0 {
		return nil, nil
	}
	md.help, md.unit = w.symbols[help], w.symbols[unit]
	return &md, nil
}

// appendRefs appends to dst a repeated uint32 field's entries, packed (v)
// or one (x), each charged before it is kept.
func (w *writeRequest) appendRefs(dst []uint32, typ protowire.Type, v []byte, x uint64) ([]uint32, error) {
	switch typ {
	case protowire.VarintType:
		if err := w.m.add(refCost); err != nil {
			return dst, err
		}
		return append(dst, uint32(x)), nil
	case protowire.BytesType:
		for len(v) > 0 {
			r, n := protowire.ConsumeVarint(v)
			if n < 0 {
				return dst, errTruncated
			}
			if err := w.m.add(refCost); err != nil {
				return dst, err
			}
			dst = append(dst, uint32(r))
			v = v[n:]
		}
	}
	return dst, nil
}
