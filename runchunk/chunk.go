package runchunk

import (
	"errors"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Chunk is a run read as a chunkenc.Chunk: read-only, its samples decoded
// as its iterator reaches them.
type Chunk struct {
	data    []byte
	samples int
}

// FromData is chunkenc.FromData that also reads runs: every reader of
// chunks that may hold runs decodes them through it. A run's header must
// claim at most MaxSamples; its columns are checked as they are decoded.
func FromData(e chunkenc.Encoding, data []byte) (chunkenc.Chunk, error) {
	if e != Encoding {
		return chunkenc.FromData(e, data)
	}
	_, samples, err := Size(data, MaxSamples)
	if err != nil {
		return nil, err
	}
	return &Chunk{data: data, samples: samples}, nil
}

// Bytes returns the run.
func (c *Chunk) Bytes() []byte { return c.data }

// Encoding returns Encoding.
func (c *Chunk) Encoding() chunkenc.Encoding { return Encoding }

// NumSamples returns the samples the run's header claims.
func (c *Chunk) NumSamples() int { return c.samples }

// Compact does nothing: a run holds no spare capacity of its own.
func (c *Chunk) Compact() {}

// Reset makes c the run in b; a run whose header does not parse has no
// samples, and its iterator reports the error.
func (c *Chunk) Reset(b []byte) {
	c.data = b
	_, c.samples, _ = Size(b, MaxSamples)
}

var errReadOnly = errors.New("runchunk: a run cannot be appended to")

// Appender fails: runs are written whole, by Append.
func (c *Chunk) Appender() (chunkenc.Appender, error) { return nil, errReadOnly }

// Iterator returns an iterator over the run, reusing it when it is one.
func (c *Chunk) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	r, ok := it.(*iterator)
	if !ok {
		r = &iterator{}
	}
	r.reset(c.data)
	return r
}

// iterator reads a run as it goes (stream), runGroup samples at a time.
type iterator struct {
	data   []byte
	opened bool
	s      stream
	ts     [runGroup]int64
	vs     [runGroup]float64
	n, at  int  // samples in ts and vs, and the current one's index (-1 before the first)
	done   bool // past the last sample, or failed
	err    error
}

func (it *iterator) reset(data []byte) {
	it.data, it.opened, it.n, it.at, it.done, it.err = data, false, 0, -1, false, nil
	it.ts[0], it.vs[0] = 0, 0
}

// load decodes the next samples, opening the run first; at the end or on
// an error it marks the iterator done, leaving the last sample current.
func (it *iterator) load() bool {
	if it.done || !it.fill() {
		it.done = true
		return false
	}
	return true
}

func (it *iterator) fill() bool {
	if !it.opened {
		it.opened = true
		if it.err = it.s.open(it.data, MaxSamples, nil); it.err != nil {
			return false
		}
	}
	m := min(runGroup, it.s.left())
	if m == 0 {
		return false
	}
	// A failure partway overwrites part of the arrays: the current sample
	// is kept in front of them.
	t, v := it.ts[max(it.at, 0)], it.vs[max(it.at, 0)]
	if it.err = it.s.fillTimes(it.ts[:m]); it.err == nil {
		it.err = it.s.fillValues(it.vs[:m])
	}
	if it.err != nil {
		it.ts[0], it.vs[0], it.at, it.n = t, v, min(it.at, 0), min(it.n, 1)
		return false
	}
	it.n, it.at = m, 0
	return true
}

func (it *iterator) Next() chunkenc.ValueType {
	if it.done {
		return chunkenc.ValNone
	}
	if it.at+1 < it.n {
		it.at++
		return chunkenc.ValFloat
	}
	if !it.load() {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

// Seek moves to the first sample at or after t, staying put when the
// current one is (chunkenc.Iterator's contract).
func (it *iterator) Seek(t int64) chunkenc.ValueType {
	if it.done {
		// As chunkenc's XOR iterator: past the end, the last sample still
		// answers a seek to or before it.
		if it.err == nil && it.at >= 0 && it.ts[it.at] >= t {
			return chunkenc.ValFloat
		}
		return chunkenc.ValNone
	}
	if it.at < 0 && it.Next() == chunkenc.ValNone {
		return chunkenc.ValNone
	}
	for it.ts[it.n-1] < t {
		if !it.load() {
			return chunkenc.ValNone
		}
	}
	if it.ts[it.at] < t {
		k, _ := slices.BinarySearch(it.ts[it.at:it.n], t)
		it.at += k
	}
	return chunkenc.ValFloat
}

// At and AtT read the current sample; before the first they read zeros
// rather than panic (chunkenc leaves that case open).
func (it *iterator) At() (int64, float64) { k := max(it.at, 0); return it.ts[k], it.vs[k] }
func (it *iterator) AtT() int64           { return it.ts[max(it.at, 0)] }

func (it *iterator) AtST() int64 { return 0 }

func (it *iterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic("runchunk: a run holds no histograms")
}

func (it *iterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic("runchunk: a run holds no histograms")
}

func (it *iterator) Err() error { return it.err }
