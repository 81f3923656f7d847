package loadgen

import (
	"encoding/binary"
	"fmt"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
)

const tagTimeSeriesHistograms = 4<<3 | 2 // TimeSeries.histograms

// histogramBuckets is how many buckets each series' native histogram has
// populated: a request-latency histogram at schema 3 over about two
// decades, what client_golang's default factor of 1.1 gives a service.
const histogramBuckets = 20

// Histogram is series i's native histogram at step: an integer counter
// histogram at schema 3 whose populated buckets start at an offset of
// the series and whose counts grow with every step, differently per
// bucket, so that chunks hold realistic deltas.
func (g *Generator) Histogram(i, step int) *histogram.Histogram {
	if i < 0 || i >= len(g.specs) {
		panic(fmt.Sprintf("loadgen: series %d outside [0,%d)", i, len(g.specs)))
	}
	k := int64(step + 1)
	h := &histogram.Histogram{
		Schema: 3, ZeroThreshold: 1e-128,
		PositiveSpans:   []histogram.Span{{Offset: int32(i%16) - 40, Length: histogramBuckets}},
		PositiveBuckets: make([]int64, histogramBuckets),
	}
	prev := int64(0)
	for j := range histogramBuckets {
		c := k * int64(1+(i+j*7)%11)
		h.PositiveBuckets[j] = c - prev
		prev = c
		h.Count += uint64(c)
	}
	h.ZeroCount = uint64(k)
	h.Count += h.ZeroCount
	h.Sum = float64(h.Count) * 0.037 * float64(1+i%5)
	return h
}

// AppendHistogramRequest is AppendRequest with each series' native
// histogram at step (Histogram) in place of its float sample: the same
// series and labels, one histogram each.
func (g *Generator) AppendHistogramRequest(buf []byte, from, to int, step int, tsMillis int64) []byte {
	if from < 0 || to > len(g.specs) || from > to {
		panic(fmt.Sprintf("loadgen: series range [%d,%d) outside [0,%d)", from, to, len(g.specs)))
	}
	for i := from; i < to; i++ {
		lbls := g.encoded[g.offsets[i]:g.offsets[i+1]]
		ph := prompb.FromIntHistogram(tsMillis, g.Histogram(i, step))
		n := ph.Size()
		seriesLen := len(lbls) + 1 + varintLen(uint64(n)) + n
		buf = append(buf, tagWriteRequestTimeseries)
		buf = binary.AppendUvarint(buf, uint64(seriesLen))
		buf = append(buf, lbls...)
		buf = append(buf, tagTimeSeriesHistograms)
		buf = binary.AppendUvarint(buf, uint64(n))
		start := len(buf)
		buf = append(buf, make([]byte, n)...)
		// Cannot fail into a buffer of Size bytes.
		_, _ = ph.MarshalToSizedBuffer(buf[start:])
	}
	return buf
}
