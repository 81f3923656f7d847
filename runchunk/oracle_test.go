package runchunk

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// oracle is the eager decoder runs had before reads streamed them (a
// column at a time, whole): tests hold the stream to what it decodes.
type oracle struct {
	ts     []int64
	vs     []float64
	packed []uint64
}

// oracleDecode decodes run whole, as Decode did before it streamed.
func oracleDecode(run []byte, budget int) (counts []int, ts []int64, vs []float64, err error) {
	_, src, total, err := header(run, budget, false, &counts)
	if err != nil {
		return nil, nil, nil, err
	}
	var sc oracle
	if ts, src, err = readTimes(src, total, &sc); err != nil {
		return nil, nil, nil, err
	}
	if vs, src, err = readValues(src, total, &sc); err != nil {
		return nil, nil, nil, err
	}
	if len(src) != 0 {
		return nil, nil, nil, fmt.Errorf("run with %d bytes after it: %w", len(src), ErrCorrupt)
	}
	return counts, ts, vs, nil
}

// readPacked reads n values appendPacked wrote, all at once.
func (sc *oracle) readPacked(src []byte, n int) ([]uint64, []byte, error) {
	out := slices.Grow(sc.packed[:0], n)
	defer func() { sc.packed = out }()
	for len(out) < n {
		g := min(n-len(out), runGroup)
		lo, k := binary.Varint(src)
		if k <= 0 || len(src) == k || src[k] > 64 {
			return nil, nil, fmt.Errorf("packed group: %w", ErrCorrupt)
		}
		w := int(src[k])
		src = src[k+1:]
		size := (g*w + 7) / 8
		if len(src) < size {
			return nil, nil, fmt.Errorf("packed group of %d bytes, %d left: %w", size, len(src), ErrCorrupt)
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

func readTimes(src []byte, total int, sc *oracle) ([]int64, []byte, error) {
	sc.ts = slices.Grow(sc.ts[:0], total)[:total]
	ts := sc.ts
	t0, n := binary.Varint(src)
	if n <= 0 {
		return nil, nil, fmt.Errorf("run times: %w", ErrCorrupt)
	}
	src, ts[0] = src[n:], t0
	if total == 1 {
		return ts, src, nil
	}
	d, n := binary.Varint(src)
	if n <= 0 || d <= 0 {
		return nil, nil, fmt.Errorf("run times: %w", ErrCorrupt)
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
			return nil, nil, fmt.Errorf("run times do not rise: %w", ErrCorrupt)
		}
	}
	return ts, src, nil
}

func readValues(src []byte, total int, sc *oracle) ([]float64, []byte, error) {
	if len(src) == 0 {
		return nil, nil, fmt.Errorf("run values: %w", ErrCorrupt)
	}
	switch mode := src[0]; mode {
	case valuesDecimal:
		return readDecimal(src[1:], total, sc)
	case valuesBitsDiff, valuesBitsDoD:
		return readBits(src[1:], total, mode == valuesBitsDoD, sc)
	default:
		return nil, nil, fmt.Errorf("run values of form %d: %w", mode, ErrCorrupt)
	}
}

func readBits(src []byte, total int, dod bool, sc *oracle) ([]float64, []byte, error) {
	if len(src) < 8 {
		return nil, nil, fmt.Errorf("run values: %w", ErrCorrupt)
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
			return nil, nil, fmt.Errorf("run values: %w", ErrCorrupt)
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

func readDecimal(src []byte, total int, sc *oracle) ([]float64, []byte, error) {
	if len(src) == 0 || src[0] > decimalMaxExp {
		return nil, nil, fmt.Errorf("run decimal values: %w", ErrCorrupt)
	}
	scale := pow10s[src[0]]
	x, n := binary.Varint(src[1:])
	if n <= 0 {
		return nil, nil, fmt.Errorf("run decimal values: %w", ErrCorrupt)
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
		return nil, nil, fmt.Errorf("run decimal exceptions: %w", ErrCorrupt)
	}
	src = src[n:]
	at := uint64(0)
	for range count {
		d, n := binary.Uvarint(src)
		if n <= 0 || len(src) < n+8 || d > uint64(total) || at+d >= uint64(total) {
			return nil, nil, fmt.Errorf("run decimal exception: %w", ErrCorrupt)
		}
		at += d
		vs[at] = math.Float64frombits(binary.BigEndian.Uint64(src[n:]))
		src = src[n+8:]
	}
	return vs, src, nil
}
