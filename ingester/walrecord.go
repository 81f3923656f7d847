package ingester

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Record types of the WAL and checkpoint; the layout is in WAL.md.
const (
	recSeries  byte = 1
	recSamples byte = 2
	recChunks  byte = 3
	recLast    byte = 4
)

var errShortRecord = errors.New("record truncated")

type refSample struct {
	ref uint64
	t   int64
	v   float64
}

// encodeSeries appends a series record of one tenant.
func encodeSeries(buf []byte, tenantID string, series []*memSeries) []byte {
	buf = append(buf, recSeries)
	buf = appendString(buf, tenantID)
	for _, s := range series {
		buf = binary.AppendUvarint(buf, s.ref)
		buf = binary.AppendUvarint(buf, uint64(s.lset.Len()))
		s.lset.Range(func(l labels.Label) {
			buf = appendString(buf, l.Name)
			buf = appendString(buf, l.Value)
		})
	}
	return buf
}

// encodeSamples appends a samples record. Refs are unique across tenants, so
// the record needs no tenant.
func encodeSamples(buf []byte, samples []refSample) []byte {
	buf = append(buf, recSamples)
	for _, s := range samples {
		buf = binary.AppendUvarint(buf, s.ref)
		buf = binary.AppendVarint(buf, s.t)
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(s.v))
	}
	return buf
}

// encodeLast appends a checkpoint record with the last sample of series,
// laid out as a samples record: the newest sample each series ever had,
// which its chunks may no longer hold once flushed.
func encodeLast(buf []byte, last []refSample) []byte {
	start := len(buf)
	buf = encodeSamples(buf, last)
	buf[start] = recLast
	return buf
}

// encodeChunks appends a checkpoint record with one series' chunks.
func encodeChunks(buf []byte, ref uint64, chunks []chunkCopy) []byte {
	buf = append(buf, recChunks)
	buf = binary.AppendUvarint(buf, ref)
	buf = binary.AppendUvarint(buf, uint64(len(chunks)))
	for _, c := range chunks {
		buf = binary.AppendVarint(buf, c.minT)
		buf = binary.AppendVarint(buf, c.maxT)
		buf = binary.AppendUvarint(buf, uint64(len(c.data)))
		buf = append(buf, c.data...)
	}
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// decoder reads the fields of one record; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShortRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShortRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.err = errShortRecord
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errShortRecord
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

type seriesEntry struct {
	ref  uint64
	lset labels.Labels
}

func decodeSeries(rec []byte) (tenantID string, out []seriesEntry, err error) {
	d := decoder{b: rec[1:]}
	tenantID = string(d.bytes())
	var b labels.ScratchBuilder
	for d.err == nil && len(d.b) > 0 {
		ref := d.uvarint()
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			return "", nil, fmt.Errorf("series record: %d labels in %d bytes", n, len(d.b))
		}
		b.Reset()
		for i := uint64(0); i < n && d.err == nil; i++ {
			name, value := d.bytes(), d.bytes()
			b.Add(string(name), string(value))
		}
		out = append(out, seriesEntry{ref: ref, lset: b.Labels()})
	}
	return tenantID, out, d.err
}

func decodeSamples(rec []byte, out []refSample) ([]refSample, error) {
	d := decoder{b: rec[1:]}
	for d.err == nil && len(d.b) > 0 {
		s := refSample{ref: d.uvarint(), t: d.varint(), v: d.float()}
		out = append(out, s)
	}
	return out, d.err
}

func decodeChunks(rec []byte) (ref uint64, out []*memChunk, err error) {
	d := decoder{b: rec[1:]}
	ref = d.uvarint()
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		minT, maxT := d.varint(), d.varint()
		data := d.bytes()
		if d.err != nil {
			break
		}
		c, err := chunkenc.FromData(chunkenc.EncXOR, append([]byte(nil), data...))
		if err != nil {
			return 0, nil, fmt.Errorf("chunk of series %d: %w", ref, err)
		}
		out = append(out, &memChunk{c: c.(*chunkenc.XORChunk), minT: minT, maxT: maxT})
	}
	return ref, out, d.err
}
