package ingester

import (
	"math"
	"slices"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/orrery/orrery/ingester/chunks"
)

// oooCapMax is how many out-of-order samples a series keeps unencoded
// before merging them into its out-of-order chunks: Prometheus's default
// out_of_order_cap_max. Unencoded samples cost more memory than a chunk
// but take an insert anywhere; queries encode them on the fly.
const oooCapMax = 32

// insertOOO adds a sample older than the series' newest. A timestamp held
// among the unencoded samples already is a replayed copy of one of them,
// and is dropped; a push never offers one (judgeOld finds it). The caller
// holds s.mu.
func (s *memSeries) insertOOO(smp sample, cfg *Config) {
	k, found := slices.BinarySearchFunc(s.ooo, smp.T, byTime)
	if found {
		return
	}
	s.ooo = slices.Insert(s.ooo, k, smp)
	if len(s.ooo) >= oooCapMax {
		s.cutOOO(cfg)
	}
}

// cutOOO merges the unencoded out-of-order samples into the out-of-order
// chunks. The caller holds s.mu.
func (s *memSeries) cutOOO(cfg *Config) {
	if len(s.ooo) == 0 {
		return
	}
	s.mergeOOO(s.ooo, cfg)
	// The slice's samples are dropped, not kept alive by a reused array.
	s.ooo = nil
}

// mergeOOO merges samples, rising strictly in time, into the out-of-order
// chunks, which it keeps sorted and apart in time, each within one period
// of cfg.MaxChunkAge (aligned to the epoch) and at most
// cfg.MaxChunkSamples long: so a time is in one chunk at most, found by a
// binary search (oooChunkAt), a merge re-encodes only the chunks its
// samples fall in, whatever order they came in, and no chunk spans longer
// than an in-order one. Where a chunk holds a sample's time already, the
// chunk's sample is kept. The caller holds s.mu.
func (s *memSeries) mergeOOO(samples []sample, cfg *Config) {
	age := max(cfg.MaxChunkAge.Milliseconds(), 1)
	period := func(t int64) int64 { return floorDiv(t, age) }
	cs := s.oooChunks
	out := make([]*memChunk, 0, len(cs)+1)
	next := 0 // cs[next:] are neither in out nor replaced yet
	for len(samples) > 0 {
		t := samples[0].T
		q := firstAfter(cs, t)
		// t joins the chunk of its period before it, else the one after
		// it, else starts a chunk.
		target := -1
		switch {
		case q > 0 && period(cs[q-1].minT) == period(t):
			target = q - 1
		case q < len(cs) && period(cs[q].minT) == period(t):
			target = q
		}
		upto := q
		if target >= 0 {
			upto = target
		}
		out = append(out, cs[next:max(next, upto)]...)
		next = max(next, upto)
		var with *memChunk
		if target >= 0 {
			with, next = cs[target], target+1
		}
		// With it go the samples up to the end of its period or the start
		// of the next chunk.
		end := periodEnd(t, age)
		if next < len(cs) && cs[next].minT-1 < end {
			end = cs[next].minT - 1
		}
		n := firstSampleAfter(samples, end)
		group := samples[:n]
		samples = samples[n:]
		if with != nil {
			group = mergeSamples(decodeChunk(with), group)
		}
		out = append(out, toChunks(group, cfg.MaxChunkSamples)...)
	}
	s.oooChunks = append(out, cs[next:]...)
}

// newestOOO returns the newest out-of-order sample. The caller holds s.mu.
func (s *memSeries) newestOOO() (sample, bool) {
	var newest sample
	ok := false
	if n := len(s.oooChunks); n > 0 {
		smps := decodeChunk(s.oooChunks[n-1])
		newest, ok = smps[len(smps)-1], true
	}
	if n := len(s.ooo); n > 0 && (!ok || s.ooo[n-1].T > newest.T) {
		newest, ok = s.ooo[n-1], true
	}
	return newest, ok
}

// oooChunkAt returns the out-of-order chunk whose range holds t, if any.
// The caller holds s.mu.
func (s *memSeries) oooChunkAt(t int64) *memChunk {
	if q := firstAfter(s.oooChunks, t); q > 0 && s.oooChunks[q-1].maxT >= t {
		return s.oooChunks[q-1]
	}
	return nil
}

// firstAfter is the index of the first of cs starting after t.
func firstAfter(cs []*memChunk, t int64) int {
	k, _ := slices.BinarySearchFunc(cs, t, func(mc *memChunk, t int64) int {
		if mc.minT <= t {
			return -1
		}
		return 1
	})
	return k
}

// firstSampleAfter is the index of the first of samples after t.
func firstSampleAfter(samples []sample, t int64) int {
	k, _ := slices.BinarySearchFunc(samples, t, func(smp sample, t int64) int {
		if smp.T <= t {
			return -1
		}
		return 1
	})
	return k
}

// periodEnd is the last time of t's period of length age, computed from
// t so that no period at either end of int64 overflows.
func periodEnd(t, age int64) int64 {
	mod := t % age
	if mod < 0 {
		mod += age
	}
	rest := age - 1 - mod
	if t > math.MaxInt64-rest {
		return math.MaxInt64
	}
	return t + rest
}

// floorDiv is a / b rounded down, b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// mergeSamples merges two runs rising strictly in time; at a time both
// hold, a's sample is kept.
func mergeSamples(a, b []sample) []sample {
	out := make([]sample, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0].T < b[0].T:
			out, a = append(out, a[0]), a[1:]
		case a[0].T > b[0].T:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// decodeChunk returns a chunk's samples. Chunks in memory were encoded
// here from validated samples, so they decode.
func decodeChunk(mc *memChunk) []sample {
	smps, err := chunks.Chunk{MinTime: mc.minT, MaxTime: mc.maxT, Encoding: mc.c.Encoding(), Data: mc.c.Bytes()}.Samples()
	if err != nil {
		// An out-of-order chunk is only ever built by toChunks.
		panic(err)
	}
	return smps
}

// encodeOOO encodes samples rising strictly in time into completed chunks,
// as few as their types and histogram layouts allow.
func encodeOOO(samples []sample) []*memChunk { return toChunks(samples, 0) }

// toChunks is encodeOOO with at most maxSamples a chunk (0: no limit but
// chunkenc's).
func toChunks(samples []sample, maxSamples int) []*memChunk {
	if len(samples) == 0 {
		return nil
	}
	cs, err := chunks.Encode(samples, maxSamples)
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
