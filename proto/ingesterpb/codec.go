package ingesterpb

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/prometheus/prometheus/model/labels"
)

// The push encoding of a series, appended one after another in
// PushRequest.Series:
//
//	series  := uvarint(len(labels)) labels uvarint(n) n × sample
//	labels  := { uvarint(len(name)) name uvarint(len(value)) value }
//	sample  := varint(timestamp ms) float64 bits, 8 bytes little-endian
//
// Labels are sorted by name, unique and non-empty; the encoded label bytes
// of a label set are canonical, so their hash identifies the series.

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

// AppendSample appends one sample.
func AppendSample(buf []byte, t int64, v float64) []byte {
	buf = binary.AppendVarint(buf, t)
	return binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
}

// DecodeLabels builds a label set from its encoding.
func DecodeLabels(b *labels.ScratchBuilder, enc []byte) (labels.Labels, error) {
	b.Reset()
	for len(enc) > 0 {
		name, rest, ok := cut(enc)
		if !ok {
			return labels.EmptyLabels(), errCorrupt
		}
		value, rest, ok := cut(rest)
		if !ok {
			return labels.EmptyLabels(), errCorrupt
		}
		b.Add(string(name), string(value))
		enc = rest
	}
	return b.Labels(), nil
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
	err     error
}

// NewSeriesReader returns a reader over an encoded push.
func NewSeriesReader(b []byte) *SeriesReader { return &SeriesReader{b: b} }

// Next advances to the next series.
func (r *SeriesReader) Next() bool {
	if r.err != nil || len(r.b) == 0 {
		return false
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
	r.labels, r.samples, r.n, r.b = lbls, rest[:end], int(n), rest[end:]
	return true
}

// Labels is the current series' encoded label set.
func (r *SeriesReader) Labels() []byte { return r.labels }

// Len is the current series' number of samples.
func (r *SeriesReader) Len() int { return r.n }

// NextSample returns the current series' next sample; ok is false after
// the last one. Next has checked the bounds already.
func (r *SeriesReader) NextSample() (t int64, v float64, ok bool) {
	if len(r.samples) == 0 {
		return 0, 0, false
	}
	t, k := binary.Varint(r.samples)
	v = math.Float64frombits(binary.LittleEndian.Uint64(r.samples[k:]))
	r.samples = r.samples[k+8:]
	return t, v, true
}

// Err is the first decoding error.
func (r *SeriesReader) Err() error { return r.err }
