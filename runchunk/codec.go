package runchunk

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// AppendXOR appends the XOR chunk (chunkenc's format, the bytes its
// appender writes for these samples) of ts and vs, at most 65535 samples
// in rising time. chunkenc's appender writes a bit at a time, which made
// rebuilding chunks cost more than reading them; this writes whole words.
// The store's compaction checks its output against the stored chunks, so
// a difference from chunkenc's bytes would keep a series as chunks, never
// change a read.
func AppendXOR(out []byte, ts []int64, vs []float64) []byte {
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

// unpackGroup reads a group appendPacked wrote, of len(dst) (1 to
// runGroup) values, into dst, and returns the rest of src.
func unpackGroup(dst []uint64, src []byte) ([]byte, error) {
	g := len(dst)
	lo, k := binary.Varint(src)
	if k <= 0 || len(src) == k || src[k] > 64 {
		return nil, fmt.Errorf("packed group: %w", ErrCorrupt)
	}
	w := int(src[k])
	src = src[k+1:]
	size := (g*w + 7) / 8
	if len(src) < size {
		return nil, fmt.Errorf("packed group of %d bytes, %d left: %w", size, len(src), ErrCorrupt)
	}
	// Each value is read from the 8 bytes at its first bit; the copy pads
	// the group so the last one's read stays inside.
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
			dst[i] = base + (high<<32 | low)
		}
		return src, nil
	}
	m := mask(w)
	for i := range g {
		pos := i * w
		dst[i] = base + binary.LittleEndian.Uint64(buf[pos/8:])>>(pos%8)&m
	}
	return src, nil
}

// packedStream reads the values appendPacked wrote a group at a time: a
// reader of a run holds one group of each column, not the column.
type packedStream struct {
	src   []byte
	left  int // values not yet unpacked
	buf   [runGroup]uint64
	n, at int // values in buf, and the next one's index
}

func (p *packedStream) init(src []byte, n int) { p.src, p.left, p.n, p.at = src, n, 0, 0 }

// load unpacks the next group into buf.
func (p *packedStream) load() error {
	if p.left == 0 {
		return fmt.Errorf("packed column ended: %w", ErrCorrupt)
	}
	g := min(p.left, runGroup)
	rest, err := unpackGroup(p.buf[:g], p.src)
	if err != nil {
		return err
	}
	p.src, p.left, p.n, p.at = rest, p.left-g, g, 0
	return nil
}

// skipPacked returns src past n values appendPacked wrote, with the
// checks readPacked makes of each group's header and size.
func skipPacked(src []byte, n int) ([]byte, error) {
	for ; n > 0; n -= min(n, runGroup) {
		_, k := binary.Varint(src)
		if k <= 0 || len(src) == k || src[k] > 64 {
			return nil, fmt.Errorf("packed group: %w", ErrCorrupt)
		}
		size := (min(n, runGroup)*int(src[k]) + 7) / 8
		src = src[k+1:]
		if len(src) < size {
			return nil, fmt.Errorf("packed group of %d bytes, %d left: %w", size, len(src), ErrCorrupt)
		}
		src = src[size:]
	}
	return src, nil
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

// skipValues returns src past the values column of total samples, with
// every check readValues makes: what it passes, readValues decodes.
func skipValues(src []byte, total int) ([]byte, error) {
	if len(src) == 0 {
		return nil, fmt.Errorf("run values: %w", ErrCorrupt)
	}
	mode, src := src[0], src[1:]
	switch mode {
	case valuesDecimal:
		if len(src) == 0 || src[0] > decimalMaxExp {
			return nil, fmt.Errorf("run decimal values: %w", ErrCorrupt)
		}
		_, n := binary.Varint(src[1:])
		if n <= 0 {
			return nil, fmt.Errorf("run decimal values: %w", ErrCorrupt)
		}
		src, err := skipPacked(src[1+n:], total-1)
		if err != nil {
			return nil, err
		}
		count, n := binary.Uvarint(src)
		if n <= 0 || count > uint64(total) {
			return nil, fmt.Errorf("run decimal exceptions: %w", ErrCorrupt)
		}
		src = src[n:]
		at := uint64(0)
		for range count {
			d, n := binary.Uvarint(src)
			if n <= 0 || len(src) < n+8 || d > uint64(total) || at+d >= uint64(total) {
				return nil, fmt.Errorf("run decimal exception: %w", ErrCorrupt)
			}
			at += d
			src = src[n+8:]
		}
		return src, nil
	case valuesBitsDiff, valuesBitsDoD:
		if len(src) < 8 {
			return nil, fmt.Errorf("run values: %w", ErrCorrupt)
		}
		src = src[8:]
		if total == 1 {
			return src, nil
		}
		want := total - 1
		if mode == valuesBitsDoD {
			_, n := binary.Uvarint(src)
			if n <= 0 {
				return nil, fmt.Errorf("run values: %w", ErrCorrupt)
			}
			src, want = src[n:], want-1
		}
		return skipPacked(src, want)
	default:
		return nil, fmt.Errorf("run values of form %d: %w", mode, ErrCorrupt)
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
