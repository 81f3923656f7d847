package ingesterpb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// The push encoding of a series, appended one after another in
// PushRequest.Series:
//
//	entry     := series | 0x00 histograms | 0x01 exemplars
//	series    := uvarint(len(labels)) labels uvarint(n) n × sample
//	histograms:= uvarint(len(labels)) labels uvarint(n) n × histogram
//	exemplars := uvarint(len(labels)) labels uvarint(n) n × exemplar
//	labels    := { uvarint(len(name)) name uvarint(len(value)) value }
//	sample    := varint(timestamp ms) float64 bits, 8 bytes little-endian
//	histogram := uvarint(len) prometheus.Histogram (prompb), timestamp inside
//	exemplar  := uvarint(len(labels)) labels sample
//
// Labels are sorted by name, unique and non-empty; the encoded label bytes
// of a label set are canonical, so their hash identifies the series. A
// series' label set takes at least four bytes, so a float series never
// starts with the 0x00 or 0x01 that mark the other entries. A histogram's
// count and buckets are integers (count_int, deltas) or floats
// (count_float, counts), as in remote write; the same bytes are the
// histogram's record in the WAL. An exemplar's label set may be empty;
// exemplars follow their series' samples in a push.

var errCorrupt = errors.New("push encoding: truncated or corrupt series")

// AppendLabelPair appends one label to an encoded label set.
func AppendLabelPair(buf []byte, name, value []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(name)))
	buf = append(buf, name...)
	buf = binary.AppendUvarint(buf, uint64(len(value)))
	return append(buf, value...)
}

// AppendLabels appends the encoding of ls.
func AppendLabels(buf []byte, ls labels.Labels) []byte {
	ls.Range(func(l labels.Label) {
		buf = binary.AppendUvarint(buf, uint64(len(l.Name)))
		buf = append(buf, l.Name...)
		buf = binary.AppendUvarint(buf, uint64(len(l.Value)))
		buf = append(buf, l.Value...)
	})
	return buf
}

// AppendSeriesHeader appends a series' encoded labels and its sample count;
// exactly n AppendSample calls must follow.
func AppendSeriesHeader(buf, encodedLabels []byte, n int) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(encodedLabels)))
	buf = append(buf, encodedLabels...)
	return binary.AppendUvarint(buf, uint64(n))
}

// AppendHistogramSeriesHeader is AppendSeriesHeader for a series of
// histograms: exactly n AppendHistogram calls must follow.
func AppendHistogramSeriesHeader(buf, encodedLabels []byte, n int) []byte {
	return AppendSeriesHeader(append(buf, 0), encodedLabels, n)
}

// AppendExemplarSeriesHeader is AppendSeriesHeader for a series'
// exemplars: exactly n AppendExemplar calls must follow.
func AppendExemplarSeriesHeader(buf, encodedLabels []byte, n int) []byte {
	return AppendSeriesHeader(append(buf, 1), encodedLabels, n)
}

// AppendExemplar appends one exemplar: its encoded labels, time and value.
func AppendExemplar(buf, encodedLabels []byte, t int64, v float64) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(encodedLabels)))
	buf = append(buf, encodedLabels...)
	return AppendSample(buf, t, v)
}

// AppendHistogram appends one histogram sample, integer (h) or float (fh).
func AppendHistogram(buf []byte, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) []byte {
	var m prompb.Histogram
	if h != nil {
		m = prompb.FromIntHistogram(t, h)
	} else {
		m = prompb.FromFloatHistogram(t, fh)
	}
	n := m.Size()
	buf = binary.AppendUvarint(buf, uint64(n))
	start := len(buf)
	buf = append(buf, make([]byte, n)...)
	// MarshalToSizedBuffer cannot fail into a buffer of Size bytes.
	_, _ = m.MarshalToSizedBuffer(buf[start:])
	return buf
}

// AppendHistogramBytes appends a histogram sample already in the
// encoding: a prometheus.Histogram message as remote write sends it.
func AppendHistogramBytes(buf, msg []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(msg)))
	return append(buf, msg...)
}

// HistogramShape counts the spans and buckets of an encoded
// prometheus.Histogram without decoding it: what decoding will allocate.
// A span is two bytes on the wire and ten times that decoded, so a
// histogram of empty spans must be seen for what it is before it is
// decoded.
func HistogramShape(b []byte) (spans, buckets int, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, errCorrupt
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return 0, 0, errCorrupt
		}
		v := b[:n]
		b = b[n:]
		switch num {
		case histNegativeSpans, histPositiveSpans:
			spans++
		case histNegativeDeltas, histPositiveDeltas:
			if typ != protowire.BytesType {
				buckets++
				continue
			}
			packed, _ := protowire.ConsumeBytes(v)
			for _, c := range packed {
				if c < 0x80 {
					buckets++
				}
			}
		case histNegativeCounts, histPositiveCounts:
			if typ != protowire.BytesType {
				buckets++
				continue
			}
			packed, _ := protowire.ConsumeBytes(v)
			buckets += len(packed) / 8
		}
	}
	return spans, buckets, nil
}

// Field numbers of prometheus.Histogram that HistogramShape counts.
const (
	histNegativeSpans  = 8
	histNegativeDeltas = 9
	histNegativeCounts = 10
	histPositiveSpans  = 11
	histPositiveDeltas = 12
	histPositiveCounts = 13
)

// errSparseSpans refuses a histogram with more spans than its buckets
// need, which only a crafted request has: the distributor compacts every
// histogram it sends.
var errSparseSpans = errors.New("push encoding: histogram has more spans than buckets")

// DecodeHistogram decodes AppendHistogram's bytes, without the length:
// exactly one of h and fh is set. A histogram with more spans than its
// buckets need is refused before it is decoded.
func DecodeHistogram(b []byte) (t int64, h *histogram.Histogram, fh *histogram.FloatHistogram, err error) {
	spans, buckets, err := HistogramShape(b)
	if err != nil {
		return 0, nil, nil, err
	}
	if spans > buckets+2 {
		return 0, nil, nil, fmt.Errorf("%w (%d spans, %d buckets)", errSparseSpans, spans, buckets)
	}
	var m prompb.Histogram
	if err := m.Unmarshal(b); err != nil {
		return 0, nil, nil, fmt.Errorf("push encoding: histogram: %w", err)
	}
	if m.IsFloatHistogram() {
		return m.Timestamp, nil, m.ToFloatHistogram(), nil
	}
	return m.Timestamp, m.ToIntHistogram(), nil, nil
}

// AppendSample appends one sample.
func AppendSample(buf []byte, t int64, v float64) []byte {
	buf = binary.AppendVarint(buf, t)
	return binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
}

// DecodeLabels builds a label set from its encoding. Names and values are
// views of one string made from enc: one allocation for all of them
// instead of two per label, safe under the stringlabels and slicelabels
// builds, since enc itself is not kept. It does not check the set: the
// write path validated it, and queriers check what they receive.
func DecodeLabels(b *labels.ScratchBuilder, enc []byte) (labels.Labels, error) {
	b.Reset()
	s := string(enc)
	for off := 0; off < len(enc); {
		ns, ne, ok := field(enc, off)
		if !ok {
			return labels.EmptyLabels(), errCorrupt
		}
		vs, ve, ok := field(enc, ne)
		if !ok {
			return labels.EmptyLabels(), errCorrupt
		}
		b.Add(s[ns:ne], s[vs:ve])
		off = ve
	}
	return b.Labels(), nil
}

// RangeLabels calls f with each name and value of a label set's encoding,
// aliasing enc, and reports whether the encoding is whole.
func RangeLabels(enc []byte, f func(name, value []byte)) bool {
	for off := 0; off < len(enc); {
		ns, ne, ok := field(enc, off)
		if !ok {
			return false
		}
		vs, ve, ok := field(enc, ne)
		if !ok {
			return false
		}
		f(enc[ns:ne], enc[vs:ve])
		off = ve
	}
	return true
}

// field locates the length-prefixed field at b[off:]: it is b[start:end].
func field(b []byte, off int) (start, end int, ok bool) {
	n, k := binary.Uvarint(b[off:])
	if k <= 0 || uint64(len(b)-off-k) < n {
		return 0, 0, false
	}
	start = off + k
	return start, start + int(n), true
}

func cut(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// SeriesReader walks the series of a push without allocating. The slices it
// returns alias the request and are valid until the request is released.
type SeriesReader struct {
	b       []byte
	labels  []byte
	samples []byte
	n       int
	kind    EntryKind
	err     error
	// hist is the message NextHistogram decoded last.
	hist []byte
}

// EntryKind is what a push entry holds.
type EntryKind uint8

// The kinds of entry.
const (
	Floats EntryKind = iota
	Histograms
	Exemplars
)

// NewSeriesReader returns a reader over an encoded push.
func NewSeriesReader(b []byte) *SeriesReader { return &SeriesReader{b: b} }

// Next advances to the next series.
func (r *SeriesReader) Next() bool {
	if r.err != nil || len(r.b) == 0 {
		return false
	}
	switch r.b[0] {
	case 0:
		return r.nextEntry(Histograms, cutHistogram)
	case 1:
		return r.nextEntry(Exemplars, cutExemplar)
	}
	lbls, rest, ok := cut(r.b)
	if !ok {
		r.err = errCorrupt
		return false
	}
	n, k := binary.Uvarint(rest)
	// A sample takes at least 9 bytes: this bounds n before it sizes anything.
	if k <= 0 || n > uint64(len(rest)-k)/9 {
		r.err = errCorrupt
		return false
	}
	rest = rest[k:]
	end := 0
	for i := uint64(0); i < n; i++ {
		_, k := binary.Varint(rest[end:])
		if k <= 0 || len(rest)-end-k < 8 {
			r.err = errCorrupt
			return false
		}
		end += k + 8
	}
	r.labels, r.samples, r.n, r.kind, r.b = lbls, rest[:end], int(n), Floats, rest[end:]
	return true
}

// nextEntry reads a histograms or exemplars entry, whose items next cuts
// off one at a time (ok false when one is truncated).
func (r *SeriesReader) nextEntry(kind EntryKind, next func([]byte) ([]byte, bool)) bool {
	lbls, rest, ok := cut(r.b[1:])
	if !ok || len(lbls) == 0 {
		r.err = errCorrupt
		return false
	}
	n, k := binary.Uvarint(rest)
	// An item takes at least a byte.
	if k <= 0 || n > uint64(len(rest)-k) {
		r.err = errCorrupt
		return false
	}
	rest = rest[k:]
	after := rest
	for i := uint64(0); i < n; i++ {
		if after, ok = next(after); !ok {
			r.err = errCorrupt
			return false
		}
	}
	end := len(rest) - len(after)
	r.labels, r.samples, r.n, r.kind, r.b = lbls, rest[:end], int(n), kind, rest[end:]
	return true
}

func cutHistogram(b []byte) ([]byte, bool) {
	_, rest, ok := cut(b)
	return rest, ok
}

func cutExemplar(b []byte) ([]byte, bool) {
	_, rest, ok := cut(b)
	if !ok {
		return nil, false
	}
	_, k := binary.Varint(rest)
	if k <= 0 || len(rest)-k < 8 {
		return nil, false
	}
	return rest[k+8:], true
}

// HistogramBytes is the encoded message of the histogram NextHistogram
// returned last, aliasing the push: what the WAL logs of it.
func (r *SeriesReader) HistogramBytes() []byte { return r.hist }

// Kind is what the current entry holds: floats, read with NextSample;
// histograms, read with NextHistogram; or exemplars, read with
// NextExemplar.
func (r *SeriesReader) Kind() EntryKind { return r.kind }

// Histograms reports whether the current entry holds histograms.
func (r *SeriesReader) Histograms() bool { return r.kind == Histograms }

// NextExemplar returns the current exemplars entry's next exemplar: its
// encoded labels (aliasing the push), time and value; ok is false after
// the last one. Next has checked the bounds already.
func (r *SeriesReader) NextExemplar() (labels []byte, t int64, v float64, ok bool) {
	if r.kind != Exemplars || len(r.samples) == 0 {
		return nil, 0, 0, false
	}
	labels, rest, _ := cut(r.samples)
	t, k := binary.Varint(rest)
	v = math.Float64frombits(binary.LittleEndian.Uint64(rest[k:]))
	r.samples = rest[k+8:]
	return labels, t, v, true
}

// NextHistogram returns the current histogram series' next sample; ok is
// false after the last one. A histogram that does not decode is an error,
// and the series' remaining samples are skipped.
func (r *SeriesReader) NextHistogram() (t int64, h *histogram.Histogram, fh *histogram.FloatHistogram, ok bool, err error) {
	if r.kind != Histograms || len(r.samples) == 0 {
		return 0, nil, nil, false, nil
	}
	b, rest, _ := cut(r.samples)
	r.samples, r.hist = rest, b
	t, h, fh, err = DecodeHistogram(b)
	if err != nil {
		r.samples = nil
		return 0, nil, nil, false, err
	}
	return t, h, fh, true, nil
}

// Labels is the current series' encoded label set.
func (r *SeriesReader) Labels() []byte { return r.labels }

// Len is the current series' number of samples.
func (r *SeriesReader) Len() int { return r.n }

// NextSample returns the current float series' next sample; ok is false
// after the last one. Next has checked the bounds already.
func (r *SeriesReader) NextSample() (t int64, v float64, ok bool) {
	if r.kind != Floats || len(r.samples) == 0 {
		return 0, 0, false
	}
	t, k := binary.Varint(r.samples)
	v = math.Float64frombits(binary.LittleEndian.Uint64(r.samples[k:]))
	r.samples = r.samples[k+8:]
	return t, v, true
}

// Err is the first decoding error.
func (r *SeriesReader) Err() error { return r.err }
