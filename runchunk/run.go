package runchunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// A run is a series' float samples, in strictly rising time, as two
// columns: timestamps as delta-of-deltas, values as the deltas of x where
// every value is x / 10^e ("decimal", most counters and gauges that were
// counted or rounded), else as deltas or delta-of-deltas of the values'
// bits mapped to ordered integers ("bits", noisy floats). Each column is
// bit-packed in groups of runGroup, less the group's least value, at the
// group's width. Before the columns, the run records how many samples
// each of the XOR chunks it was made from held, so that XORChunks gives
// back those chunks byte for byte.
//
//	run     = uvarint(chunks) uvarint(samples of each chunk)... times values
//	times   = varint(t0) [varint(t1-t0) packed(delta-of-deltas)]
//	values  = 0 byte(e) varint(x0) packed(x deltas) uvarint(n) (uvarint(gap) bits64)...
//	        | 1 bits64(first) packed(deltas of ordered bits)
//	        | 2 bits64(first) uvarint(zigzag(first delta)) packed(delta-of-deltas)
//	packed  = per group of up to 128: varint(least) byte(width) bits, low first
const (
	runGroup = 128
	// xorMaxSamples is the most an XOR chunk holds (its 16-bit count).
	xorMaxSamples = math.MaxUint16

	valuesDecimal  byte = 0
	valuesBitsDiff byte = 1
	valuesBitsDoD  byte = 2

	// decimalMaxExp is the largest power of ten a decimal run divides by.
	decimalMaxExp = 15
)

// Encoding is the chunk encoding of a run where chunks travel between
// Orrery's own processes (chunkenc.Encoding values upstream uses are
// small; this one is far from them). It never leaves Orrery: a reader
// that did not ask for runs gets XOR chunks (XORChunks).
const Encoding chunkenc.Encoding = 0x80

// MaxSamples bounds the samples one run may claim when read as a chunk,
// so that a damaged or crafted run of a few bytes cannot make a reader
// decode more than this (16 bytes a sample). The store writes runs of at
// most one partition of one series, far fewer.
const MaxSamples = 1 << 21

// ErrCorrupt marks bytes that do not decode as a run.
var ErrCorrupt = errors.New("corrupt run")

// Decoded holds a run's columns; reusing one across Decode calls reuses
// its memory.
type Decoded struct {
	Counts []int     // samples of each chunk the run was made from
	T      []int64   // timestamps, strictly rising
	V      []float64 // values
}

// Append appends the run of ts and vs, cut into chunks of counts samples
// (each 1 to 65535, summing to len(ts)); ts must rise strictly.
func Append(out []byte, counts []int, ts []int64, vs []float64) []byte {
	out = binary.AppendUvarint(out, uint64(len(counts)))
	for _, n := range counts {
		out = binary.AppendUvarint(out, uint64(n))
	}
	out = appendTimes(out, ts)
	return appendValues(out, vs)
}

// Cost is what a run takes of a budget: its samples, and 64 for each
// chunk, since a chunk rebuilt from it costs a record beside its bytes (a
// run of many one-sample chunks must not pass for a few samples).
func Cost(chunks, samples int) int { return samples + 64*chunks }

// header reads the chunk counts, into counts unless it is nil, failing
// past budget samples or, when cost is set, a budget (Cost) of chunks and
// samples. It returns the number of chunks, the rest and the samples.
func header(run []byte, budget int, cost bool, counts *[]int) (int, []byte, int, error) {
	nChunks, n := binary.Uvarint(run)
	if n <= 0 || nChunks == 0 || nChunks > uint64(len(run)) || nChunks > uint64(budget) {
		return 0, nil, 0, fmt.Errorf("run of %d chunks: %w", nChunks, ErrCorrupt)
	}
	run = run[n:]
	total := 0
	for range nChunks {
		c, n := binary.Uvarint(run)
		if n <= 0 || c == 0 || c > xorMaxSamples {
			return 0, nil, 0, fmt.Errorf("run chunk of %d samples: %w", c, ErrCorrupt)
		}
		run = run[n:]
		total += int(c)
		if total > budget || (cost && Cost(int(nChunks), total) > budget) {
			return 0, nil, 0, fmt.Errorf("run over its budget of %d: %w", budget, ErrCorrupt)
		}
		if counts != nil {
			*counts = append(*counts, int(c))
		}
	}
	return int(nChunks), run, total, nil
}

// Size returns the chunks and samples of a run from its header, without
// decoding it; a run that costs more than budget (Cost) is ErrCorrupt.
func Size(run []byte, budget int) (chunks, samples int, err error) {
	chunks, _, samples, err = header(run, budget, true, nil)
	return chunks, samples, err
}

// Decode reads the run in src, which must hold exactly one run, into d.
// A run of more than budget samples, one whose times do not rise, or
// bytes after it are ErrCorrupt.
func Decode(src []byte, budget int, d *Decoded) error {
	var s stream
	d.Counts = d.Counts[:0]
	if err := s.open(src, budget, &d.Counts); err != nil {
		return err
	}
	d.T = slices.Grow(d.T[:0], s.total)[:s.total]
	d.V = slices.Grow(d.V[:0], s.total)[:s.total]
	if err := s.fillTimes(d.T); err != nil {
		return err
	}
	return s.fillValues(d.V)
}

// DecodeTimes reads the run's counts and timestamps into d (d.V is left
// as it was), enough to know where its chunks start and end, and checks
// the rest of it as Decode would without decoding the values: a run it
// passes, Decode decodes.
func DecodeTimes(src []byte, budget int, d *Decoded) error {
	var s stream
	d.Counts = d.Counts[:0]
	if err := s.open(src, budget, &d.Counts); err != nil {
		return err
	}
	d.T = slices.Grow(d.T[:0], s.total)[:s.total]
	return s.fillTimes(d.T)
}

// decodedPool keeps XORChunks' columns between calls: an ingester expands
// every run it sends to a querier that did not ask for runs.
var decodedPool = sync.Pool{New: func() any { return new(Decoded) }}

// XORChunk is one chunk a run was made from.
type XORChunk struct {
	MinTime, MaxTime int64
	Data             []byte // chunkenc.EncXOR
}

// XORChunks rebuilds the XOR chunks the run was made from, byte for byte,
// in one allocation; a run that is not exactly one whole run is
// ErrCorrupt.
func XORChunks(run []byte, budget int) ([]XORChunk, error) {
	d := decodedPool.Get().(*Decoded)
	defer func() {
		// A large run's columns (a crafted one's, up to MaxSamples) are not kept.
		if cap(d.T) <= 1<<16 {
			decodedPool.Put(d)
		}
	}()
	if err := Decode(run, budget, d); err != nil {
		return nil, err
	}
	var buf []byte
	ends := make([]int, len(d.Counts))
	at := 0
	for i, n := range d.Counts {
		buf = AppendXOR(buf, d.T[at:at+n], d.V[at:at+n])
		ends[i], at = len(buf), at+n
	}
	out := make([]XORChunk, len(d.Counts))
	at, from := 0, 0
	for i, n := range d.Counts {
		out[i] = XORChunk{MinTime: d.T[at], MaxTime: d.T[at+n-1], Data: buf[from:ends[i]:ends[i]]}
		at, from = at+n, ends[i]
	}
	return out, nil
}
