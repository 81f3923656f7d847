package ingester

import (
	"math"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// memChunk is one XOR chunk held in memory.
type memChunk struct {
	c          *chunkenc.XORChunk
	minT, maxT int64
}

// memSeries is one series in memory: completed chunks not yet flushed, and
// the head chunk being appended to.
//
// Locking: mu guards chunks, head and app. The last-sample fields are only
// written by the tenant's single appender (under tenantHead.appendMu) and by
// replay, and are read by that same appender, so they need no lock of their
// own; snapshots that read them take mu, which every writer also holds.
type memSeries struct {
	ref  uint64
	lset labels.Labels
	// hash is seriesHash of the encoded labels, the key in tenantHead.byHash.
	hash uint64

	mu     sync.Mutex
	chunks []*memChunk
	head   *memChunk
	app    chunkenc.Appender

	// hasLast, lastT and lastV are the newest sample the series ever had,
	// in memory or in the store: a series created in memory restores them
	// from the store, and checkpoints keep them once its chunks are
	// flushed, so order and duplicate checks survive both.
	hasLast bool
	lastT   int64
	lastV   float64
	// pendingPush, pendingT and pendingV are the newest sample the push
	// numbered pendingPush accepted for this series and has not appended
	// yet: a series may come several times in one push (Prometheus sends a
	// sample per time series entry), and each later occurrence is judged
	// against what the earlier ones accepted. Only the appender, under
	// appendMu, reads or writes them; a push that fails before appending
	// leaves them behind under a number no later push uses.
	pendingPush uint64
	pendingT    int64
	pendingV    float64
	// lastAppend is the wall-clock unix nanoseconds of the last append.
	lastAppend int64
	// logged is set once the series record is in the WAL.
	logged bool
}

// verdict is what happens to a sample offered to a series.
type verdict int

const (
	accept verdict = iota
	// duplicate is an exact repeat of a stored sample: dropped silently, so
	// that a retried request is idempotent.
	duplicate
	// outOfOrder is older than the last sample and not stored: rejected.
	outOfOrder
	// conflicting has the timestamp of a stored sample but another value:
	// rejected.
	conflicting
)

// check decides a sample against the series' last accepted one. A sample
// it calls outOfOrder may still be an exact repeat of an older stored
// sample: push looks that up (Ingester.judgeOld) before rejecting it.
func check(hasLast bool, lastT int64, lastV float64, t int64, v float64) verdict {
	switch {
	case !hasLast || t > lastT:
		return accept
	case t < lastT:
		return outOfOrder
	case math.Float64bits(v) == math.Float64bits(lastV):
		return duplicate
	default:
		return conflicting
	}
}

// valueAt returns the value the series holds in memory at t, and whether
// memory covers t at all: every sample this ingester accepted from its
// oldest chunk in memory on is in memory, so a t it covers that is not
// there was never accepted, and the store need not be asked.
func (s *memSeries) valueAt(t int64) (v float64, found, covered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case len(s.chunks) > 0:
		covered = t >= s.chunks[0].minT
	case s.head != nil:
		covered = t >= s.head.minT
	}
	for _, mc := range s.chunks {
		if v, ok := chunkValueAt(mc, t); ok {
			return v, true, true
		}
	}
	if s.head != nil {
		v, found = chunkValueAt(s.head, t)
	}
	return v, found, covered
}

func chunkValueAt(mc *memChunk, t int64) (float64, bool) {
	if t < mc.minT || t > mc.maxT {
		return 0, false
	}
	it := mc.c.Iterator(nil)
	if it.Seek(t) != chunkenc.ValFloat {
		return 0, false
	}
	ct, v := it.At()
	return v, ct == t
}

// restoreLast makes (t, v) the series' last sample unless it has a newer
// one: what a checkpoint or the store remembers of a series whose chunks
// left memory.
func (s *memSeries) restoreLast(t int64, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasLast || t > s.lastT {
		s.hasLast, s.lastT, s.lastV = true, t, v
	}
}

// last returns the series' last sample.
func (s *memSeries) last() (t int64, v float64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastT, s.lastV, s.hasLast
}

// append adds an accepted sample. The caller holds s.mu.
func (s *memSeries) append(t int64, v float64, cfg *Config, nowNanos int64) {
	if s.head == nil || s.head.c.NumSamples() >= cfg.MaxChunkSamples || t-s.head.minT >= cfg.MaxChunkAge.Milliseconds() {
		s.cut(t)
	}
	s.app.Append(0, t, v)
	s.head.maxT = t
	s.hasLast, s.lastT, s.lastV = true, t, v
	s.lastAppend = nowNanos
}

// cut completes the head chunk and opens a new one starting at t. The caller
// holds s.mu.
func (s *memSeries) cut(t int64) {
	s.completeHead()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		// A fresh XOR chunk's appender cannot fail.
		panic(err)
	}
	s.head = &memChunk{c: c, minT: t, maxT: t}
	s.app = app
}

// completeHead moves the head chunk, if any, to the completed chunks. The
// caller holds s.mu.
func (s *memSeries) completeHead() {
	if s.head == nil {
		return
	}
	s.head.c.Compact()
	s.chunks = append(s.chunks, s.head)
	s.head, s.app = nil, nil
}

// restoreChunk adds a chunk read back from a checkpoint. The last one
// restored becomes the head. Its samples are appended again into a fresh
// chunk: an XOR appender cannot resume from bytes alone, since how many bits
// of the last byte are used is not recorded in them.
func (s *memSeries) restoreChunk(mc *memChunk) error {
	s.completeHead()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		return err
	}
	it := mc.c.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		app.Append(0, t, v)
		// Never lower the last sample a last-samples record restored.
		if !s.hasLast || t > s.lastT {
			s.hasLast, s.lastT, s.lastV = true, t, v
		}
	}
	s.head, s.app = &memChunk{c: c, minT: mc.minT, maxT: mc.maxT}, app
	return it.Err()
}

// chunkCopy is an immutable copy of a chunk, safe to use without locks.
type chunkCopy struct {
	minT, maxT int64
	data       []byte
}

// copyChunks returns copies of the chunks overlapping [mint, maxt]. The head
// chunk's bytes change as samples are appended, hence the copy.
func (s *memSeries) copyChunks(mint, maxt int64) []chunkCopy {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []chunkCopy
	add := func(mc *memChunk) {
		if mc == nil || mc.maxT < mint || mc.minT > maxt {
			return
		}
		out = append(out, chunkCopy{minT: mc.minT, maxT: mc.maxT, data: append([]byte(nil), mc.c.Bytes()...)})
	}
	for _, mc := range s.chunks {
		add(mc)
	}
	add(s.head)
	return out
}

// overlaps reports whether the series has in-memory data in [mint, maxt].
func (s *memSeries) overlaps(mint, maxt int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, mc := range s.chunks {
		if mc.maxT >= mint && mc.minT <= maxt {
			return true
		}
	}
	return s.head != nil && s.head.maxT >= mint && s.head.minT <= maxt
}
