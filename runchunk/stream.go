package runchunk

import (
	"encoding/binary"
	"fmt"
	"math"
)

// stream decodes a run's samples one at a time, holding one packed group
// of each column: memory does not grow with the run, and a reader that
// stops early decodes no more than it read.
type stream struct {
	total, k int   // samples, and the current one's index (-1 before the first)
	t, d     int64 // current time and delta
	dods     packedStream

	mode   byte
	scale  float64 // decimal: value = x / scale
	x      int64
	o, vd  uint64       // bits: ordered bits, and (delta-of-delta form) delta
	deltas packedStream // of x, of o, or of vd

	vk      int    // the index of the next value to decode
	exc     []byte // decimal exceptions not yet reached
	excLeft int
	excAt   int // the next exception's position; total when none is left
	excBits uint64
}

// open reads the run's header and first time, and checks the structure of
// both columns and that nothing follows them, so that afterwards only a
// time that does not rise can fail. counts, unless nil, gets the chunks'
// sample counts.
func (s *stream) open(run []byte, budget int, counts *[]int) error {
	_, src, total, err := header(run, budget, false, counts)
	if err != nil {
		return err
	}
	t0, n := binary.Varint(src)
	if n <= 0 {
		return fmt.Errorf("run times: %w", ErrCorrupt)
	}
	src = src[n:]
	*s = stream{total: total, k: -1, t: t0, excAt: total}
	dods := 0
	if total > 1 {
		d, n := binary.Varint(src)
		if n <= 0 || d <= 0 {
			return fmt.Errorf("run times: %w", ErrCorrupt)
		}
		src, s.d, dods = src[n:], d, total-2
	}
	values, err := skipPacked(src, dods)
	if err != nil {
		return err
	}
	s.dods.init(src, dods)
	rest, err := skipValues(values, total)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("run with %d bytes after it: %w", len(rest), ErrCorrupt)
	}
	// skipValues checked every length and bound read below.
	s.mode, values = values[0], values[1:]
	switch s.mode {
	case valuesDecimal:
		s.scale = pow10s[values[0]]
		x, n := binary.Varint(values[1:])
		s.x, values = x, values[1+n:]
		s.deltas.init(values, total-1)
		exc, _ := skipPacked(values, total-1)
		count, n := binary.Uvarint(exc)
		s.exc, s.excLeft, s.excAt = exc[n:], int(count), 0
		s.nextException()
	case valuesBitsDiff:
		s.o = binary.BigEndian.Uint64(values)
		s.deltas.init(values[8:], total-1)
	case valuesBitsDoD:
		s.o = binary.BigEndian.Uint64(values)
		if total > 1 {
			z, n := binary.Uvarint(values[8:])
			s.vd = uint64(unzigzag(z))
			s.deltas.init(values[8+n:], total-2)
		}
	}
	return nil
}

// nextException moves to the next decimal exception, whose position is
// the previous one's plus its gap.
func (s *stream) nextException() {
	if s.excLeft == 0 {
		s.excAt = s.total
		return
	}
	gap, n := binary.Uvarint(s.exc)
	s.excAt += int(gap)
	s.excBits = binary.BigEndian.Uint64(s.exc[n:])
	s.exc, s.excLeft = s.exc[n+8:], s.excLeft-1
}

// errTimesFall is a run whose times do not rise: wrapping arithmetic on
// damaged bytes must not yield a chunk whose times fall.
var errTimesFall = fmt.Errorf("run times do not rise: %w", ErrCorrupt)

// left returns the samples not yet decoded.
func (s *stream) left() int { return s.total - s.k - 1 }

// fillTimes decodes the next len(ts) times into ts; the caller asks for
// at most left(). Columns are read in tight loops over a packed group
// rather than a call per sample: a query decodes millions of samples.
func (s *stream) fillTimes(ts []int64) error {
	i := 0
	// The first two samples have no delta-of-delta.
	for ; i < len(ts) && s.k < 1; i++ {
		if s.k++; s.k == 1 {
			t := s.t + s.d
			if t <= s.t {
				return errTimesFall
			}
			s.t = t
		}
		ts[i] = s.t
	}
	p := &s.dods
	for i < len(ts) {
		if p.at == p.n {
			if err := p.load(); err != nil {
				return err
			}
		}
		m := min(len(ts)-i, p.n-p.at)
		d, t := s.d, s.t
		for _, dod := range p.buf[p.at : p.at+m] {
			d += int64(dod)
			next := t + d
			if next <= t {
				return errTimesFall
			}
			t = next
			ts[i] = t
			i++
		}
		s.d, s.t, s.k, p.at = d, t, s.k+m, p.at+m
	}
	return nil
}

// fillValues decodes the values of the samples fillTimes decoded last
// into vs, of the same length.
func (s *stream) fillValues(vs []float64) error {
	p := &s.deltas
	i := 0
	switch s.mode {
	case valuesDecimal:
		if s.vk == 0 && len(vs) > 0 {
			vs[0], i = float64(s.x)/s.scale, 1
		}
		for i < len(vs) {
			if p.at == p.n {
				if err := p.load(); err != nil {
					return err
				}
			}
			m := min(len(vs)-i, p.n-p.at)
			x := s.x
			for _, dx := range p.buf[p.at : p.at+m] {
				x += int64(dx)
				vs[i] = float64(x) / s.scale
				i++
			}
			s.x, p.at = x, p.at+m
		}
		// Several exceptions at one position: the last is the value, as
		// the encoder writes one per position.
		for s.excAt < s.vk+len(vs) {
			vs[s.excAt-s.vk] = math.Float64frombits(s.excBits)
			s.nextException()
		}
	case valuesBitsDiff:
		if s.vk == 0 && len(vs) > 0 {
			vs[0], i = fromOrderedBits(s.o), 1
		}
		for i < len(vs) {
			if p.at == p.n {
				if err := p.load(); err != nil {
					return err
				}
			}
			m := min(len(vs)-i, p.n-p.at)
			o := s.o
			for _, d := range p.buf[p.at : p.at+m] {
				o += d
				vs[i] = fromOrderedBits(o)
				i++
			}
			s.o, p.at = o, p.at+m
		}
	default:
		// The first value, then the first delta, have no delta-of-delta.
		for ; i < len(vs) && s.vk+i < 2; i++ {
			if s.vk+i == 1 {
				s.o += s.vd
			}
			vs[i] = fromOrderedBits(s.o)
		}
		for i < len(vs) {
			if p.at == p.n {
				if err := p.load(); err != nil {
					return err
				}
			}
			m := min(len(vs)-i, p.n-p.at)
			o, vd := s.o, s.vd
			for _, dd := range p.buf[p.at : p.at+m] {
				vd += dd
				o += vd
				vs[i] = fromOrderedBits(o)
				i++
			}
			s.o, s.vd, p.at = o, vd, p.at+m
		}
	}
	s.vk += len(vs)
	return nil
}
