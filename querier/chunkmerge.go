package querier

import (
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// chunkMerge reads one series' distinct chunks as one sample stream in time
// order, one sample per timestamp.
//
// Upstream's chain iterator keeps every chunk in a heap and, where two
// chunks overlap, pushes and pops for every sample. At RF>1 overlapping
// chunks are the normal case, not the exception: a replica that missed one
// sample (its push arrived after the next one and was refused as out of
// order, or it was down) cuts every later chunk one sample off from its
// peers', so no chunk after that is byte-identical to a replica's and each
// pair is merged sample by sample. Measured on the dashboard benchmark, the
// heap was 59% of the querier's CPU. Here only the chunks that reach the
// current time are compared, usually one or two, with a linear scan.
type chunkMerge struct {
	chunks []chunkenc.Chunk

	its     []chunkenc.Iterator // per chunk, reused by later Iterator calls
	pending []mergeSource       // by first timestamp; pending[next:] not yet reached
	next    int
	active  []mergeSource // positioned at a sample not yet passed
	cur     int           // index in active of the current sample, -1 before
	lastT   int64
	done    bool
	// consecutive says the current sample follows the previous one in the
	// same chunk, so a histogram's counter reset hint still holds.
	consecutive bool
	err         error
}

type mergeSource struct {
	it  chunkenc.Iterator
	typ chunkenc.ValueType
	t   int64
	id  int // index in chunks
}

// newChunkMerge returns a merge over chunks, reusing old's allocations.
func newChunkMerge(old chunkenc.Iterator, chunks []chunkenc.Chunk) *chunkMerge {
	m, _ := old.(*chunkMerge)
	if m == nil {
		m = &chunkMerge{}
	}
	m.chunks = chunks
	m.its = slices.Grow(m.its[:0], len(chunks))[:len(chunks)]
	m.pending, m.next, m.active = m.pending[:0], 0, m.active[:0]
	m.cur, m.lastT, m.done, m.consecutive, m.err = -1, math.MinInt64, false, false, nil
	for k, c := range chunks {
		it := c.Iterator(m.its[k])
		m.its[k] = it
		// The first sample orders the chunk, not its declared start:
		// reading it costs what upstream's chain pays to fill its heap.
		typ := it.Next()
		if typ == chunkenc.ValNone {
			if err := it.Err(); err != nil {
				m.err, m.done = err, true
				return m
			}
			continue
		}
		m.pending = append(m.pending, mergeSource{it: it, typ: typ, t: it.AtT(), id: k})
	}
	slices.SortStableFunc(m.pending, func(a, b mergeSource) int {
		switch {
		case a.t < b.t:
			return -1
		case a.t > b.t:
			return 1
		}
		return 0
	})
	return m
}

// Next moves to the next timestamp held by any chunk.
func (m *chunkMerge) Next() chunkenc.ValueType {
	if m.done {
		return chunkenc.ValNone
	}
	prev := -1
	if m.cur >= 0 {
		prev = m.active[m.cur].id
		// The common case, one chunk read alone until the next begins,
		// costs one comparison more than reading the chunk.
		if s := &m.active[0]; len(m.active) == 1 {
			if s.typ = s.it.Next(); s.typ != chunkenc.ValNone {
				s.t = s.it.AtT()
				if m.next == len(m.pending) || s.t < m.pending[m.next].t {
					m.lastT, m.consecutive = s.t, true
					return s.typ
				}
			}
		}
	}
	// Pass the current timestamp in every chunk holding it.
	if err := m.advance(m.lastT, false); err != nil {
		return m.fail(err)
	}
	return m.pick(prev, true)
}

// advance moves every active chunk past t (seek false: by Next, a sample
// or two) or to its first sample at or after t (seek true), and drops the
// chunks that end.
func (m *chunkMerge) advance(t int64, seek bool) error {
	for i := 0; i < len(m.active); {
		s := &m.active[i]
		switch {
		case seek && s.t < t:
			if s.typ = s.it.Seek(t); s.typ != chunkenc.ValNone {
				s.t = s.it.AtT()
			}
		case !seek:
			for s.typ != chunkenc.ValNone && s.t <= t {
				if s.typ = s.it.Next(); s.typ != chunkenc.ValNone {
					s.t = s.it.AtT()
				}
			}
		}
		if s.typ == chunkenc.ValNone {
			if err := s.it.Err(); err != nil {
				return err
			}
			m.active = slices.Delete(m.active, i, i+1)
			continue
		}
		i++
	}
	return nil
}

// Seek moves to the first sample at or after t. It reads through the
// chunks it passes, as upstream's chain does: a chunk's declared end is
// not trusted to skip one unread, since a wrong one would make Seek and
// Next disagree.
func (m *chunkMerge) Seek(t int64) chunkenc.ValueType {
	if m.done {
		return chunkenc.ValNone
	}
	if m.cur >= 0 && m.lastT >= t {
		return m.active[m.cur].typ
	}
	if err := m.advance(t, true); err != nil {
		return m.fail(err)
	}
	// Pending chunks starting before t: seek into them.
	keep := m.pending[:m.next]
	for _, s := range m.pending[m.next:] {
		if s.t >= t {
			keep = append(keep, s)
			continue
		}
		if s.typ = s.it.Seek(t); s.typ == chunkenc.ValNone {
			if err := s.it.Err(); err != nil {
				return m.fail(err)
			}
			continue
		}
		s.t = s.it.AtT()
		m.active = append(m.active, s)
	}
	m.pending = keep
	// After a seek the previous sample returned is not the one before in
	// its chunk, as upstream's chain also assumes.
	return m.pick(-1, false)
}

// pick admits the pending chunks that reach the earliest timestamp held and
// makes that timestamp current, preferring the chunk the previous sample
// came from (prev) where several hold it.
func (m *chunkMerge) pick(prev int, stepped bool) chunkenc.ValueType {
	lo := int64(math.MaxInt64)
	for i := range m.active {
		lo = min(lo, m.active[i].t)
	}
	for m.next < len(m.pending) && m.pending[m.next].t <= lo {
		s := m.pending[m.next]
		m.next++
		// A chunk reaching back before the last sample returned repeats
		// or conflicts with what was already returned: skip past it.
		for s.typ != chunkenc.ValNone && s.t <= m.lastT {
			if s.typ = s.it.Next(); s.typ != chunkenc.ValNone {
				s.t = s.it.AtT()
			}
		}
		if s.typ == chunkenc.ValNone {
			if err := s.it.Err(); err != nil {
				return m.fail(err)
			}
			continue
		}
		m.active = append(m.active, s)
		lo = min(lo, s.t)
	}
	if len(m.active) == 0 {
		m.done, m.cur = true, -1
		return chunkenc.ValNone
	}
	best := -1
	for i := range m.active {
		if m.active[i].t == lo && (best < 0 || m.active[i].id == prev) {
			best = i
		}
	}
	m.cur = best
	m.lastT = lo
	m.consecutive = stepped && m.active[best].id == prev
	return m.active[best].typ
}

func (m *chunkMerge) fail(err error) chunkenc.ValueType {
	m.err, m.done, m.cur = err, true, -1
	return chunkenc.ValNone
}

func (m *chunkMerge) At() (int64, float64) { return m.active[m.cur].it.At() }

func (m *chunkMerge) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	t, h := m.active[m.cur].it.AtHistogram(h)
	// A counter reset hint describes the sample before in the same chunk;
	// after a sample from another chunk it no longer holds.
	if !m.consecutive && h.CounterResetHint != histogram.GaugeType {
		h.CounterResetHint = histogram.UnknownCounterReset
	}
	return t, h
}

func (m *chunkMerge) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	t, fh := m.active[m.cur].it.AtFloatHistogram(fh)
	if !m.consecutive && fh.CounterResetHint != histogram.GaugeType {
		fh.CounterResetHint = histogram.UnknownCounterReset
	}
	return t, fh
}

func (m *chunkMerge) AtT() int64  { return m.lastT }
func (m *chunkMerge) AtST() int64 { return m.active[m.cur].it.AtST() }
func (m *chunkMerge) Err() error  { return m.err }
