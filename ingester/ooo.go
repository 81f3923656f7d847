package ingester

import (
	"slices"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/orrery/orrery/ingester/chunks"
)

// oooCapMax is how many out-of-order samples a series keeps unencoded
// before encoding them into completed chunks: Prometheus's default
// out_of_order_cap_max. Unencoded samples cost more memory than a chunk
// but take an insert anywhere; queries encode them on the fly.
const oooCapMax = 32

// insertOOO adds a sample older than the series' newest. A timestamp held
// among the unencoded samples already is a replayed copy of one of them,
// and is dropped; a push never offers one (judgeOld finds it). The caller
// holds s.mu.
func (s *memSeries) insertOOO(smp sample) {
	k, found := slices.BinarySearchFunc(s.ooo, smp.T, byTime)
	if found {
		return
	}
	s.ooo = slices.Insert(s.ooo, k, smp)
	if len(s.ooo) >= oooCapMax {
		s.cutOOO()
	}
}

// cutOOO encodes the unencoded out-of-order samples into completed chunks.
// The caller holds s.mu.
func (s *memSeries) cutOOO() {
	if len(s.ooo) == 0 {
		return
	}
	s.oooChunks = append(s.oooChunks, encodeOOO(s.ooo)...)
	// The slice's samples are dropped, not kept alive by a reused array.
	s.ooo = nil
}

// encodeOOO encodes samples rising strictly in time into completed chunks,
// as few as their types and histogram layouts allow.
func encodeOOO(samples []sample) []*memChunk {
	if len(samples) == 0 {
		return nil
	}
	cs, err := chunks.Encode(samples, 0)
	if err != nil {
		// Encode fails only if chunkenc refuses a sample; push and replay
		// validate every histogram before it gets here.
		panic(err)
	}
	out := make([]*memChunk, 0, len(cs))
	for _, c := range cs {
		chk, err := chunkenc.FromData(c.Encoding, c.Data)
		if err != nil {
			// Encode produced only these three encodings.
			panic(err)
		}
		out = append(out, &memChunk{c: chk, minT: c.MinTime, maxT: c.MaxTime})
	}
	return out
}
