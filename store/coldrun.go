package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Runs (cold block version 2). A series' float chunks in a partition are
// stored as one run of samples in two columns rather than as XOR chunks:
// timestamps as delta-of-deltas, values as the deltas of x where every
// value is x / 10^e ("decimal", most counters and gauges that were
// counted or rounded), else as deltas or delta-of-deltas of the values'
// bits mapped to ordered integers ("bits", noisy floats). Each column is
// bit-packed in groups of runGroup, less the group's least value, at the
// group's width, and the block's
// zstd takes what regularity is left. The encoding study (DESIGN.md) found
// decimal runs a quarter smaller than XOR under zstd; packed deltas of a
// noisy float's bits save what XOR spends on its leading-zero and length
// fields.
//
// Exact by check, not by argument: a series is written as a run only if
// decoding the run rebuilds every one of its chunks bit for bit (the XOR
// appender is deterministic, so a chunk cut from the same samples at the
// same places is the same bytes); any other series (histograms, chunks that
// overlap, a chunk another encoder wrote) keeps its chunks as they were.
// So reads, replicas' identical chunks and handovers see exactly what the
// chunks bucket held.
const (
	runGroup = 128
	// runBlockSamples bounds the cost (runCost: samples and chunks) of a
	// block's runs, so that a damaged block that claims many samples in
	// few bytes (a zero-width group of 128 costs 2) cannot make a read
	// rebuild more than this. The encoder keeps a series whose run would
	// pass it as chunks.
	runBlockSamples = 1 << 21
	// xorMaxSamples is the most an XOR chunk holds (its 16-bit count).
	xorMaxSamples = math.MaxUint16

	entryChunks byte = 0
	entryRun    byte = 1

	valuesDecimal  byte = 0
	valuesBitsDiff byte = 1
	valuesBitsDoD  byte = 2

	// decimalMaxExp is the largest power of ten a decimal run divides by.
	decimalMaxExp = 15
)

// appendSeriesEntry appends series recs (one series' records of a block,
// in MaxTime order) as a run if that rebuilds them exactly and its cost
// (runCost) fits in budget, else as its chunks, and returns the cost it
// used. A carried run (coldRecord.run) is written as it is, its cost
// reserved by the caller.
func appendSeriesEntry(raw []byte, recs []coldRecord, budget int) ([]byte, int) {
	if recs[0].run != nil {
		// Carried as it was (coldRecord.run); reserved by the caller.
		raw = binary.AppendUvarint(append(raw, entryRun), uint64(len(recs[0].run)))
		return append(raw, recs[0].run...), 0
	}
	if run, n, ok := encodeRun(recs, budget); ok {
		raw = binary.AppendUvarint(append(raw, entryRun), uint64(len(run)))
		return append(raw, run...), n
	}
	raw = append(raw, entryChunks)
	raw = binary.AppendUvarint(raw, uint64(len(recs)))
	for _, r := range recs {
		raw = binary.BigEndian.AppendUint64(raw, sortableTime(r.maxTime))
		raw = binary.AppendUvarint(raw, uint64(len(r.value)))
		raw = append(raw, r.value...)
	}
	return raw, 0
}

// encodeRun returns recs as a run and its cost (runCost), or false when
// they are not float XOR chunks in strictly rising time, the run would
// cost more than budget, or it would not rebuild them bit for bit.
func encodeRun(recs []coldRecord, budget int) ([]byte, int, bool) {
	var ts []int64
	var vs []float64
	counts := make([]int, len(recs))
	for i, r := range recs {
		if len(r.value) < chunkHeaderLen || chunkenc.Encoding(r.value[8]) != chunkenc.EncXOR {
			return nil, 0, false
		}
		minTime, _ := chunkValueMinTime(r.value)
		// Samples checks the order and bounds, and survives damaged bytes.
		samples, err := Chunk{MinTime: minTime, MaxTime: r.maxTime, Encoding: chunkenc.EncXOR, Data: r.value[chunkHeaderLen:]}.Samples()
		if err != nil || len(samples) == 0 || len(ts)+len(samples) > budget {
			return nil, 0, false
		}
		for _, smp := range samples {
			if (len(ts) > 0 && smp.T <= ts[len(ts)-1]) || smp.H != nil || smp.FH != nil {
				return nil, 0, false
			}
			ts = append(ts, smp.T)
			vs = append(vs, smp.V)
		}
		counts[i] = len(samples)
	}
	out := binary.AppendUvarint(nil, uint64(len(recs)))
	for _, n := range counts {
		out = binary.AppendUvarint(out, uint64(n))
	}
	out = appendTimes(out, ts)
	out = appendValues(out, vs)
	got, rest, _, err := decodeRun(out, recs[0].id, nil, len(ts))
	if err != nil || len(rest) != 0 || len(got) != len(recs) {
		return nil, 0, false
	}
	for i, r := range recs {
		if got[i].maxTime != r.maxTime || !bytes.Equal(got[i].value, r.value) {
			return nil, 0, false
		}
	}
	if runCost(len(recs), len(ts)) > budget {
		return nil, 0, false
	}
	return out, runCost(len(recs), len(ts)), true
}

// runCost is what a run takes of its block's budget: its samples, and 64
// for each chunk, since a rebuilt chunk costs its record beside its bytes
// (a run of many one-sample chunks must not pass for a few samples).
func runCost(chunks, samples int) int { return samples + 64*chunks }

// runSize returns the chunks and samples of a run from its header, without
// decoding it, and errCorrupt for a run that costs more than budget
// (runCost).
func runSize(run []byte, budget int) (chunks, samples int, err error) {
	nChunks, n := binary.Uvarint(run)
	if n <= 0 || nChunks == 0 || nChunks > uint64(len(run)) || nChunks > uint64(budget) {
		return 0, 0, fmt.Errorf("run of %d chunks: %w", nChunks, errCorrupt)
	}
	run = run[n:]
	for range nChunks {
		c, n := binary.Uvarint(run)
		if n <= 0 || c == 0 || c > xorMaxSamples {
			return 0, 0, fmt.Errorf("run chunk of %d samples: %w", c, errCorrupt)
		}
		run = run[n:]
		samples += int(c)
		if runCost(int(nChunks), samples) > budget {
			return 0, 0, fmt.Errorf("run over its block's budget of %d: %w", budget, errCorrupt)
		}
	}
	return int(nChunks), samples, nil
}

// decodeRun rebuilds the records of series id from the run at the start
// of src, appended to out, and returns them with the rest of src and the
// run's samples. A run of more than budget samples (callers pass what
// runSize found, or the samples they expect), or one whose times do not
// rise, is errCorrupt.
func decodeRun(src []byte, id uint64, out []coldRecord, budget int) ([]coldRecord, []byte, int, error) {
	nChunks, n := binary.Uvarint(src)
	if n <= 0 || nChunks == 0 || nChunks > uint64(len(src)) || nChunks > uint64(budget) {
		return nil, nil, 0, fmt.Errorf("run of %d chunks: %w", nChunks, errCorrupt)
	}
	src = src[n:]
	counts := make([]int, nChunks)
	total := 0
	for i := range counts {
		c, n := binary.Uvarint(src)
		if n <= 0 || c == 0 || c > xorMaxSamples {
			return nil, nil, 0, fmt.Errorf("run chunk of %d samples: %w", c, errCorrupt)
		}
		src = src[n:]
		counts[i] = int(c)
		total += int(c)
		if total > budget {
			return nil, nil, 0, fmt.Errorf("run of more than %d samples: %w", budget, errCorrupt)
		}
	}
	sc := runScratchPool.Get().(*runScratch)
	defer sc.release()
	ts, src, err := readTimes(src, total, sc)
	if err != nil {
		return nil, nil, 0, err
	}
	vs, src, err := readValues(src, total, sc)
	if err != nil {
		return nil, nil, 0, err
	}
	// The chunks are written one after another, then copied into one
	// buffer of their exact size: a cached block holds what it is
	// charged for, not append's spare capacity.
	scratch := sc.out[:0]
	defer func() { sc.out = scratch }()
	ends := make([]int, len(counts))
	at := 0
	for i, n := range counts {
		scratch = binary.BigEndian.AppendUint64(scratch, sortableTime(ts[at]))
		scratch = append(scratch, byte(chunkenc.EncXOR))
		scratch = appendXOR(scratch, ts[at:at+n], vs[at:at+n])
		ends[i] = len(scratch)
		at += n
	}
	slab := bytes.Clone(scratch)
	at, from := 0, 0
	for i, n := range counts {
		out = append(out, coldRecord{id: id, maxTime: ts[at+n-1], value: slab[from:ends[i]:ends[i]]})
		at, from = at+n, ends[i]
	}
	return out, src, total, nil
}

// appendXOR appends the XOR chunk (chunkenc's format, the bytes its
// appender writes for these samples) of ts and vs, at most 65535 samples
// in rising time. chunkenc's appender writes a bit at a time, which made
// rebuilding chunks cost more than reading them; this writes whole words.
// The compaction check compares its output with the stored chunks, so a
// difference from chunkenc's bytes would keep a series as chunks, never
// change a read.
func appendXOR(out []byte, ts []int64, vs []float64) []byte {
	out = binary.BigEndian.AppendUint16(out, uint16(len(ts)))
	// The header is whole bytes: the first time as a varint, then the
	// first value's 64 bits.
	out = binary.AppendVarint(out, ts[0])
	out = binary.BigEndian.AppendUint64(out, math.Float64bits(vs[0]))
	if len(ts) == 1 {
		return out
	}
	w := bitWriter{out: out}
	tDelta := uint64(ts[1] - ts[0])
	for _, b := range binary.AppendUvarint(nil, tDelta) {
		w.write(uint64(b), 8)
	}
	leading, trailing := uint8(0xff), uint8(0)
	prev := math.Float64bits(vs[0])
	for k := 1; k < len(ts); k++ {
		if k > 1 {
			d := uint64(ts[k] - ts[k-1])
			dod := int64(d - tDelta)
			tDelta = d
			switch {
			case dod == 0:
				w.write(0, 1)
			case xorBitRange(dod, 14):
				w.write(0b10<<14|uint64(dod)&(1<<14-1), 16)
			case xorBitRange(dod, 17):
				w.write(0b110<<17|uint64(dod)&(1<<17-1), 20)
			case xorBitRange(dod, 20):
				w.write(0b1110<<20|uint64(dod)&(1<<20-1), 24)
			default:
				w.write(0b1111, 4)
				w.write(uint64(dod), 64)
			}
		}
		cur := math.Float64bits(vs[k])
		delta := cur ^ prev
		prev = cur
		if delta == 0 {
			w.write(0, 1)
			continue
		}
		lead := min(uint8(bits.LeadingZeros64(delta)), 31)
		trail := uint8(bits.TrailingZeros64(delta))
		if leading != 0xff && lead >= leading && trail >= trailing {
			if sig := 64 - int(leading) - int(trailing); sig <= 62 {
				w.write(0b10<<sig|delta>>trailing, sig+2)
			} else {
				w.write(0b10, 2)
				w.write(delta>>trailing, sig)
			}
			continue
		}
		leading, trailing = lead, trail
		sig := 64 - lead - trail
		// 64 significant bits wrap to 0 in six bits, as chunkenc writes it.
		if sig <= 51 {
			w.write(0b11<<(11+sig)|uint64(lead)<<(6+sig)|uint64(sig&63)<<sig|delta>>trail, int(sig)+13)
		} else {
			w.write(0b11<<11|uint64(lead)<<6|uint64(sig&63), 13)
			w.write(delta>>trail, int(sig))
		}
	}
	return w.finish()
}

func xorBitRange(x int64, nbits uint8) bool {
	return -((1<<(nbits-1))-1) <= x && x <= 1<<(nbits-1)
}

// bitWriter writes bits most significant first, as chunkenc's bstream,
// a 64-bit word at a time: acc holds the n < 64 bits not yet written,
// from its top bit down.
type bitWriter struct {
	out []byte
	acc uint64
	n   int
}

// write appends the low nbits (1 to 64) of u; higher bits are ignored.
func (w *bitWriter) write(u uint64, nbits int) {
	u <<= 64 - nbits
	w.acc |= u >> w.n
	if w.n+nbits < 64 {
		w.n += nbits
		return
	}
	w.out = binary.BigEndian.AppendUint64(w.out, w.acc)
	spill := w.n + nbits - 64
	// The bits of u the word had no room for; none leaves 0 (a shift by
	// 64 or more is 0 in Go).
	w.acc, w.n = u<<(nbits-spill), spill
}

// finish writes what is left, the last byte padded with zeros.
func (w *bitWriter) finish() []byte {
	for ; w.n > 0; w.n -= min(w.n, 8) {
		w.out = append(w.out, byte(w.acc>>56))
		w.acc <<= 8
	}
	return w.out
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// appendPacked writes vs, signed values as uint64, in groups of runGroup:
// each as its least value (varint), its width in bits (one byte) and the
// values less the least in that width, low bits first. Taking the least
// out (frame of reference) packs a counter's increments, which sit around
// its rate, in the bits of their spread rather than of their size.
func appendPacked(out []byte, vs []uint64) []byte {
	for len(vs) > 0 {
		g := vs[:min(len(vs), runGroup)]
		vs = vs[len(g):]
		lo := int64(g[0])
		for _, v := range g {
			lo = min(lo, int64(v))
		}
		w := 0
		for _, v := range g {
			w = max(w, bits.Len64(v-uint64(lo)))
		}
		out = binary.AppendVarint(out, lo)
		out = append(out, byte(w))
		var acc uint64
		have := 0
		for _, v := range g {
			v -= uint64(lo)
			// Write v in up to two pieces so acc never holds more than 64 bits.
			left := w
			for left > 0 {
				take := min(left, 64-have)
				acc |= (v & mask(take)) << have
				v >>= take % 64
				have += take
				left -= take
				if have == 64 {
					out = binary.LittleEndian.AppendUint64(out, acc)
					acc, have = 0, 0
				}
			}
		}
		for ; have > 0; have -= min(have, 8) {
			out = append(out, byte(acc))
			acc >>= 8
		}
	}
	return out
}

func mask(n int) uint64 {
	if n >= 64 {
		return math.MaxUint64
	}
	return 1<<n - 1
}

// readPacked reads n values appendPacked wrote, into sc's buffer.
func (sc *runScratch) readPacked(src []byte, n int) ([]uint64, []byte, error) {
	out := slices.Grow(sc.packed[:0], n)
	defer func() { sc.packed = out }()
	for len(out) < n {
		g := min(n-len(out), runGroup)
		lo, k := binary.Varint(src)
		if k <= 0 || len(src) == k || src[k] > 64 {
			return nil, nil, fmt.Errorf("packed group: %w", errCorrupt)
		}
		w := int(src[k])
		src = src[k+1:]
		size := (g*w + 7) / 8
		if len(src) < size {
			return nil, nil, fmt.Errorf("packed group of %d bytes, %d left: %w", size, len(src), errCorrupt)
		}
		// Each value is read from the 8 bytes at its first bit; the
		// copy pads the group so the last one's read stays inside.
		var buf [runGroup*8 + 8]byte
		copy(buf[:], src[:size])
		src = src[size:]
		base := uint64(lo)
		if w > 56 {
			// Too wide for one read at any bit offset: two halves.
			for i := range g {
				pos := i * w
				low := binary.LittleEndian.Uint64(buf[pos/8:]) >> (pos % 8) & mask(32)
				high := binary.LittleEndian.Uint64(buf[(pos+32)/8:]) >> ((pos + 32) % 8) & mask(w-32)
				out = append(out, base+(high<<32|low))
			}
			continue
		}
		m := mask(w)
		for i := range g {
			pos := i * w
			out = append(out, base+binary.LittleEndian.Uint64(buf[pos/8:])>>(pos%8)&m)
		}
	}
	return out, src, nil
}

// runScratch holds a run's decoded columns and rebuilt chunks while
// decodeRun works; none of it outlives the call (the records get a copy),
// so it is pooled rather than allocated for every series read.
type runScratch struct {
	ts     []int64
	vs     []float64
	packed []uint64
	out    []byte
}

var runScratchPool = sync.Pool{New: func() any { return new(runScratch) }}

// release returns sc to the pool, unless a large run grew it: a damaged
// block's claim of millions of samples is not kept.
func (sc *runScratch) release() {
	if cap(sc.ts) > 1<<16 || cap(sc.out) > 1<<20 {
		return
	}
	runScratchPool.Put(sc)
}

// appendTimes writes the first time, the first delta, then the
// delta-of-deltas packed: regular scrapes pack to nothing.
func appendTimes(out []byte, ts []int64) []byte {
	out = binary.AppendVarint(out, ts[0])
	if len(ts) == 1 {
		return out
	}
	out = binary.AppendVarint(out, ts[1]-ts[0])
	dods := make([]uint64, 0, len(ts))
	for k := 2; k < len(ts); k++ {
		dods = append(dods, uint64((ts[k]-ts[k-1])-(ts[k-1]-ts[k-2])))
	}
	return appendPacked(out, dods)
}

func readTimes(src []byte, total int, sc *runScratch) ([]int64, []byte, error) {
	sc.ts = slices.Grow(sc.ts[:0], total)[:total]
	ts := sc.ts
	t0, n := binary.Varint(src)
	if n <= 0 {
		return nil, nil, fmt.Errorf("run times: %w", errCorrupt)
	}
	src, ts[0] = src[n:], t0
	if total == 1 {
		return ts, src, nil
	}
	d, n := binary.Varint(src)
	if n <= 0 || d <= 0 {
		return nil, nil, fmt.Errorf("run times: %w", errCorrupt)
	}
	src = src[n:]
	dods, src, err := sc.readPacked(src, total-2)
	if err != nil {
		return nil, nil, err
	}
	ts[1] = t0 + d
	for k := 2; k < total; k++ {
		d += int64(dods[k-2])
		ts[k] = ts[k-1] + d
	}
	for k := 1; k < total; k++ {
		// Wrapping arithmetic on damaged bytes must not yield a chunk
		// whose times fall.
		if ts[k] <= ts[k-1] {
			return nil, nil, fmt.Errorf("run times do not rise: %w", errCorrupt)
		}
	}
	return ts, src, nil
}

// appendValues writes the values in whichever of the decimal and bits
// forms packs smallest.
func appendValues(out []byte, vs []float64) []byte {
	best := appendBits(append(out, valuesBitsDiff), vs, false)
	if dod := appendBits(append(out[:len(out):len(out)], valuesBitsDoD), vs, true); len(dod) < len(best) {
		best = dod
	}
	if dec, ok := appendDecimal(append(out[:len(out):len(out)], valuesDecimal), vs); ok && len(dec) < len(best) {
		best = dec
	}
	return best
}

func readValues(src []byte, total int, sc *runScratch) ([]float64, []byte, error) {
	if len(src) == 0 {
		return nil, nil, fmt.Errorf("run values: %w", errCorrupt)
	}
	switch mode := src[0]; mode {
	case valuesDecimal:
		return readDecimal(src[1:], total, sc)
	case valuesBitsDiff, valuesBitsDoD:
		return readBits(src[1:], total, mode == valuesBitsDoD, sc)
	default:
		return nil, nil, fmt.Errorf("run values of form %d: %w", mode, errCorrupt)
	}
}

// orderedBits maps a float's bits to an integer that rises with the
// float, so that a slowly changing value has small deltas; any bijection
// would be exact, this one is also small.
func orderedBits(v float64) uint64 {
	b := math.Float64bits(v)
	if b>>63 == 1 {
		return ^b
	}
	return b | 1<<63
}

func fromOrderedBits(o uint64) float64 {
	if o>>63 == 1 {
		return math.Float64frombits(o &^ (1 << 63))
	}
	return math.Float64frombits(^o)
}

// appendBits writes the first value's bits, then the (wrapping) deltas of
// the ordered bits, or with dod the first delta and then delta-of-deltas
// (a counter's steady rate packs away).
func appendBits(out []byte, vs []float64, dod bool) []byte {
	out = binary.BigEndian.AppendUint64(out, orderedBits(vs[0]))
	res := make([]uint64, 0, len(vs))
	var prevD uint64
	for k := 1; k < len(vs); k++ {
		d := orderedBits(vs[k]) - orderedBits(vs[k-1])
		switch {
		case !dod:
			res = append(res, d)
		case k == 1:
			out = binary.AppendUvarint(out, zigzag(int64(d)))
		default:
			res = append(res, d-prevD)
		}
		prevD = d
	}
	return appendPacked(out, res)
}

func readBits(src []byte, total int, dod bool, sc *runScratch) ([]float64, []byte, error) {
	if len(src) < 8 {
		return nil, nil, fmt.Errorf("run values: %w", errCorrupt)
	}
	sc.vs = slices.Grow(sc.vs[:0], total)[:total]
	vs := sc.vs
	o := binary.BigEndian.Uint64(src)
	src, vs[0] = src[8:], fromOrderedBits(o)
	if total == 1 {
		return vs, src, nil
	}
	var d uint64
	want := total - 1
	if dod {
		z, n := binary.Uvarint(src)
		if n <= 0 {
			return nil, nil, fmt.Errorf("run values: %w", errCorrupt)
		}
		src, d = src[n:], uint64(unzigzag(z))
		want--
	}
	res, src, err := sc.readPacked(src, want)
	if err != nil {
		return nil, nil, err
	}
	for k := 1; k < total; k++ {
		switch {
		case !dod:
			d = res[k-1]
		case k > 1:
			d += res[k-2]
		}
		o += d
		vs[k] = fromOrderedBits(o)
	}
	return vs, src, nil
}

var pow10s = func() (p [decimalMaxExp + 1]float64) {
	p[0] = 1
	for e := 1; e < len(p); e++ {
		p[e] = p[e-1] * 10
	}
	return p
}()

// decimalAt returns x with v == x / 10^e exactly, if there is one.
func decimalAt(v float64, e int) (int64, bool) {
	x := math.Round(v * pow10s[e])
	if math.IsNaN(x) || math.Abs(x) >= 1<<53 {
		return 0, false
	}
	// Checked as readDecimal computes it, from the integer: -0 is not 0.
	if math.Float64bits(float64(int64(x))/pow10s[e]) != math.Float64bits(v) {
		return 0, false
	}
	return int64(x), true
}

// appendDecimal writes e, the first x, the deltas of x packed, and the
// values that are not x / 10^e (stale markers, a stray float) as
// exceptions by position, where x repeats. It declines when more than one
// value in 16 would be an exception.
func appendDecimal(out []byte, vs []float64) ([]byte, bool) {
	e := -1
	for _, v := range vs {
		for k := max(e, 0); k <= decimalMaxExp; k++ {
			if _, ok := decimalAt(v, k); ok {
				e = max(e, k)
				break
			}
		}
	}
	if e < 0 {
		return nil, false
	}
	xs := make([]int64, len(vs))
	var exceptions []int
	for k, v := range vs {
		x, ok := decimalAt(v, e)
		if !ok {
			exceptions = append(exceptions, k)
			if len(exceptions) > len(vs)/16 {
				return nil, false
			}
			if k > 0 {
				x = xs[k-1]
			}
		}
		xs[k] = x
	}
	out = append(out, byte(e))
	out = binary.AppendVarint(out, xs[0])
	res := make([]uint64, 0, len(xs))
	for k := 1; k < len(xs); k++ {
		res = append(res, uint64(xs[k]-xs[k-1]))
	}
	out = appendPacked(out, res)
	out = binary.AppendUvarint(out, uint64(len(exceptions)))
	prev := 0
	for _, k := range exceptions {
		out = binary.AppendUvarint(out, uint64(k-prev))
		out = binary.BigEndian.AppendUint64(out, math.Float64bits(vs[k]))
		prev = k
	}
	return out, true
}

func readDecimal(src []byte, total int, sc *runScratch) ([]float64, []byte, error) {
	if len(src) == 0 || src[0] > decimalMaxExp {
		return nil, nil, fmt.Errorf("run decimal values: %w", errCorrupt)
	}
	scale := pow10s[src[0]]
	x, n := binary.Varint(src[1:])
	if n <= 0 {
		return nil, nil, fmt.Errorf("run decimal values: %w", errCorrupt)
	}
	res, src, err := sc.readPacked(src[1+n:], total-1)
	if err != nil {
		return nil, nil, err
	}
	sc.vs = slices.Grow(sc.vs[:0], total)[:total]
	vs := sc.vs
	vs[0] = float64(x) / scale
	for k := 1; k < total; k++ {
		x += int64(res[k-1])
		vs[k] = float64(x) / scale
	}
	count, n := binary.Uvarint(src)
	if n <= 0 || count > uint64(total) {
		return nil, nil, fmt.Errorf("run decimal exceptions: %w", errCorrupt)
	}
	src = src[n:]
	at := uint64(0)
	for range count {
		d, n := binary.Uvarint(src)
		if n <= 0 || len(src) < n+8 || d > uint64(total) || at+d >= uint64(total) {
			return nil, nil, fmt.Errorf("run decimal exception: %w", errCorrupt)
		}
		at += d
		vs[at] = math.Float64frombits(binary.BigEndian.Uint64(src[n:]))
		src = src[n+8:]
	}
	return vs, src, nil
}
