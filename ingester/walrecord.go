package ingester

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// Record types of the WAL and checkpoint; the layout is in WAL.md.
const (
	recSeries  byte = 1
	recSamples byte = 2
	// recChunks is the checkpoint's chunks record of XOR chunks only,
	// written before histograms; replay still reads it.
	recChunks byte = 3
	recLast   byte = 4
	// recSamplesMixed and recLastMixed are recSamples and recLast with
	// histograms among the samples; a push of floats alone keeps the
	// smaller float record.
	recSamplesMixed byte = 5
	recLastMixed    byte = 6
	// recChunksEnc is recChunks with each chunk's encoding.
	recChunksEnc byte = 7
	// recExemplars holds exemplars of series by ref.
	recExemplars byte = 8
	// recOOOSamples is recSamplesMixed for samples a push accepted out of
	// order: replay stores them out of order whatever it holds already.
	recOOOSamples byte = 9
	// recOOOChunks is recChunksEnc for a series' out-of-order chunks
	// (checkpoint only).
	recOOOChunks byte = 10
	// recTenantNewest is a tenant's newest sample time, which its
	// out-of-order window is measured from (checkpoint only): its series
	// may have left memory since.
	recTenantNewest byte = 11
)

// The kinds of a sample in a mixed record.
const (
	kindFloat     byte = 0
	kindHistogram byte = 1
)

var errShortRecord = errors.New("record truncated")

type refSample struct {
	ref uint64
	sample
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

// encodeSamples appends a samples record (typ recSamples), an
// out-of-order samples record (typ recOOOSamples, always mixed) or a
// checkpoint's last samples record (typ recLast: the newest sample each
// series ever had, which its chunks may no longer hold once flushed). Refs
// are unique across tenants, so the record needs no tenant. With mixed, the samples
// may be histograms and the record is the mixed variant of typ; a
// histogram is kept in the push encoding's bytes: raw holds them for the
// histograms of samples, in order, when the caller has them.
func encodeSamples(buf []byte, typ byte, samples []refSample, raw [][]byte, mixed bool) []byte {
	if !mixed {
		buf = append(buf, typ)
		for _, s := range samples {
			buf = binary.AppendUvarint(buf, s.ref)
			buf = binary.AppendVarint(buf, s.T)
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(s.V))
		}
		return buf
	}
	switch typ {
	case recLast:
		buf = append(buf, recLastMixed)
	case recOOOSamples:
		buf = append(buf, recOOOSamples)
	default:
		buf = append(buf, recSamplesMixed)
	}
	for _, s := range samples {
		buf = binary.AppendUvarint(buf, s.ref)
		if s.H == nil && s.FH == nil {
			buf = append(buf, kindFloat)
			buf = binary.AppendVarint(buf, s.T)
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(s.V))
			continue
		}
		buf = append(buf, kindHistogram)
		if len(raw) > 0 {
			buf = ingesterpb.AppendHistogramBytes(buf, raw[0])
			raw = raw[1:]
			continue
		}
		buf = ingesterpb.AppendHistogram(buf, s.T, s.H, s.FH)
	}
	return buf
}

// encodeTenantNewest appends a tenant's newest sample time.
func encodeTenantNewest(buf []byte, tenantID string, newest int64) []byte {
	buf = append(buf, recTenantNewest)
	buf = appendString(buf, tenantID)
	return binary.AppendVarint(buf, newest)
}

func decodeTenantNewest(rec []byte) (string, int64, error) {
	d := decoder{b: rec[1:]}
	tenantID, newest := string(d.bytes()), d.varint()
	if d.err == nil && len(d.b) > 0 {
		return "", 0, fmt.Errorf("tenant newest record: %d bytes left over", len(d.b))
	}
	return tenantID, newest, d.err
}

// encodeExemplars appends an exemplars record.
func encodeExemplars(buf []byte, exemplars []refExemplar) []byte {
	buf = append(buf, recExemplars)
	for _, e := range exemplars {
		buf = binary.AppendUvarint(buf, e.ref)
		buf = binary.AppendVarint(buf, e.ex.Ts)
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(e.ex.Value))
		buf = binary.AppendUvarint(buf, uint64(e.ex.Labels.Len()))
		e.ex.Labels.Range(func(l labels.Label) {
			buf = appendString(buf, l.Name)
			buf = appendString(buf, l.Value)
		})
	}
	return buf
}

func decodeExemplars(rec []byte) ([]refExemplar, error) {
	d := decoder{b: rec[1:]}
	var out []refExemplar
	var b labels.ScratchBuilder
	for d.err == nil && len(d.b) > 0 {
		e := refExemplar{ref: d.uvarint()}
		e.ex.Ts, e.ex.Value, e.ex.HasTs = d.varint(), d.float(), true
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			return nil, fmt.Errorf("exemplars record: %d labels in %d bytes", n, len(d.b))
		}
		b.Reset()
		for k := uint64(0); k < n && d.err == nil; k++ {
			name, value := d.bytes(), d.bytes()
			b.Add(string(name), string(value))
		}
		e.ex.Labels = b.Labels()
		out = append(out, e)
	}
	return out, d.err
}

// encodeChunks appends a checkpoint record with one series' chunks, in
// order (typ recChunksEnc) or out of order (recOOOChunks).
func encodeChunks(buf []byte, typ byte, ref uint64, chunks []chunkCopy) []byte {
	buf = append(buf, typ)
	buf = binary.AppendUvarint(buf, ref)
	buf = binary.AppendUvarint(buf, uint64(len(chunks)))
	for _, c := range chunks {
		buf = append(buf, byte(c.enc))
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

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.err = errShortRecord
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
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

// decodeSamples decodes a samples or last samples record, float or mixed.
func decodeSamples(rec []byte, out []refSample) ([]refSample, error) {
	mixed := rec[0] == recSamplesMixed || rec[0] == recLastMixed || rec[0] == recOOOSamples
	d := decoder{b: rec[1:]}
	for d.err == nil && len(d.b) > 0 {
		s := refSample{ref: d.uvarint()}
		if !mixed {
			s.T, s.V = d.varint(), d.float()
			out = append(out, s)
			continue
		}
		switch kind := d.byte(); kind {
		case kindFloat:
			s.T, s.V = d.varint(), d.float()
		case kindHistogram:
			b := d.bytes()
			if d.err != nil {
				return out, d.err
			}
			var err error
			if s.T, s.H, s.FH, err = ingesterpb.DecodeHistogram(b); err != nil {
				return out, fmt.Errorf("sample of series %d: %w", s.ref, err)
			}
			if err := validHistogram(s.sample); err != nil {
				return out, fmt.Errorf("histogram of series %d at %d: %w", s.ref, s.T, err)
			}
		default:
			if d.err == nil {
				return out, fmt.Errorf("sample of series %d: unknown kind %d", s.ref, kind)
			}
		}
		out = append(out, s)
	}
	return out, d.err
}

// decodeChunks decodes a chunks record, with encodings (in order or out of
// order) or of XOR chunks.
func decodeChunks(rec []byte) (ref uint64, out []*memChunk, err error) {
	withEnc := rec[0] != recChunks
	d := decoder{b: rec[1:]}
	ref = d.uvarint()
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		enc := chunkenc.EncXOR
		if withEnc {
			enc = chunkenc.Encoding(d.byte())
		}
		minT, maxT := d.varint(), d.varint()
		data := d.bytes()
		if d.err != nil {
			break
		}
		switch enc {
		case chunkenc.EncXOR, chunkenc.EncHistogram, chunkenc.EncFloatHistogram:
		default:
			return 0, nil, fmt.Errorf("chunk of series %d: encoding %s", ref, enc)
		}
		c, err := chunkenc.FromData(enc, append([]byte(nil), data...))
		if err != nil {
			return 0, nil, fmt.Errorf("chunk of series %d: %w", ref, err)
		}
		out = append(out, &memChunk{c: c, minT: minT, maxT: maxT})
	}
	return ref, out, d.err
}
