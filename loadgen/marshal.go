package loadgen

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
)

// Field tags of the remote_write 1.0 messages (prompb), as
// (field number << 3) | wire type.
const (
	tagWriteRequestTimeseries = 1<<3 | 2 // WriteRequest.timeseries
	tagTimeSeriesLabels       = 1<<3 | 2 // TimeSeries.labels
	tagTimeSeriesSamples      = 2<<3 | 2 // TimeSeries.samples
	tagLabelName              = 1<<3 | 2
	tagLabelValue             = 2<<3 | 2
	tagSampleValue            = 1<<3 | 1 // fixed64 double
	tagSampleTimestamp        = 2 << 3   // wire type 0: varint
)

// encodeLabels pre-encodes every series' label fields once, so building a
// request only copies bytes and writes one sample per series.
func (g *Generator) encodeLabels() {
	g.offsets = make([]int, 0, len(g.series)+1)
	g.offsets = append(g.offsets, 0)
	for _, ls := range g.series {
		ls.Range(func(l labels.Label) {
			inner := 1 + varintLen(uint64(len(l.Name))) + len(l.Name) +
				1 + varintLen(uint64(len(l.Value))) + len(l.Value)
			g.encoded = append(g.encoded, tagTimeSeriesLabels)
			g.encoded = binary.AppendUvarint(g.encoded, uint64(inner))
			g.encoded = appendString(g.encoded, tagLabelName, l.Name)
			g.encoded = appendString(g.encoded, tagLabelValue, l.Value)
		})
		g.offsets = append(g.offsets, len(g.encoded))
	}
}

func appendString(buf []byte, tag byte, s string) []byte {
	buf = append(buf, tag)
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// AppendRequest appends to buf the uncompressed protobuf bytes of a
// prompb.WriteRequest holding series [from, to), one sample each: the value
// at step, stamped tsMillis. The bytes are identical to what
// prompb.WriteRequest.Marshal produces (zero fields omitted, as proto3
// requires). It allocates only when buf lacks capacity, so a caller reusing
// buf marshals with zero allocations.
func (g *Generator) AppendRequest(buf []byte, from, to int, step int, tsMillis int64) []byte {
	if from < 0 || to > len(g.specs) || from > to {
		panic(fmt.Sprintf("loadgen: series range [%d,%d) outside [0,%d)", from, to, len(g.specs)))
	}
	tsField := 0
	if tsMillis != 0 {
		tsField = 1 + varintLen(uint64(tsMillis))
	}
	for i := from; i < to; i++ {
		lbls := g.encoded[g.offsets[i]:g.offsets[i+1]]
		v := g.Value(i, step)
		sampleLen := tsField
		if v != 0 {
			sampleLen += 1 + 8
		}
		seriesLen := len(lbls) + 1 + varintLen(uint64(sampleLen)) + sampleLen
		buf = append(buf, tagWriteRequestTimeseries)
		buf = binary.AppendUvarint(buf, uint64(seriesLen))
		buf = append(buf, lbls...)
		buf = append(buf, tagTimeSeriesSamples)
		buf = binary.AppendUvarint(buf, uint64(sampleLen))
		if v != 0 {
			buf = append(buf, tagSampleValue)
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
		}
		if tsField != 0 {
			buf = append(buf, tagSampleTimestamp)
			buf = binary.AppendUvarint(buf, uint64(tsMillis))
		}
	}
	return buf
}
