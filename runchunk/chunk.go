package runchunk

import (
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Chunk is a run read as a chunkenc.Chunk: read-only, its samples decoded
// all at once by its iterator's first step.
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

type iterator struct {
	data    []byte
	decoded bool
	d       Decoded
	at      int
	err     error
}

func (it *iterator) reset(data []byte) {
	it.data, it.decoded, it.at, it.err = data, false, -1, nil
	it.d.T, it.d.V = it.d.T[:0], it.d.V[:0]
}

// decode reads the whole run on the first step: the columns are packed in
// groups, so reading them at once costs no more than piece by piece.
func (it *iterator) decode() bool {
	if it.decoded {
		return it.err == nil
	}
	it.decoded = true
	rest, err := Decode(it.data, MaxSamples, &it.d)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("run with %d bytes after it: %w", len(rest), ErrCorrupt)
	}
	if err != nil {
		it.err = err
		it.d.T, it.d.V = it.d.T[:0], it.d.V[:0]
		return false
	}
	return true
}

func (it *iterator) Next() chunkenc.ValueType {
	if !it.decode() || it.at >= len(it.d.T) {
		return chunkenc.ValNone
	}
	it.at++
	if it.at >= len(it.d.T) {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

// Seek moves to the first sample at or after t, staying put when the
// current one is (chunkenc.Iterator's contract).
func (it *iterator) Seek(t int64) chunkenc.ValueType {
	if !it.decode() || it.at >= len(it.d.T) {
		return chunkenc.ValNone
	}
	it.at = max(it.at, 0)
	if it.d.T[it.at] < t {
		k, _ := slices.BinarySearch(it.d.T[it.at:], t)
		it.at += k
	}
	if it.at >= len(it.d.T) {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

func (it *iterator) At() (int64, float64) { return it.d.T[it.at], it.d.V[it.at] }
func (it *iterator) AtT() int64           { return it.d.T[it.at] }

// AtST returns 0: runs keep no start timestamps.
func (it *iterator) AtST() int64 { return 0 }

func (it *iterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic("runchunk: a run holds no histograms")
}

func (it *iterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic("runchunk: a run holds no histograms")
}

func (it *iterator) Err() error { return it.err }
