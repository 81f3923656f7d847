package ingester

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/orrery/orrery/ingester/chunks"
)

// sample is a float or histogram sample.
type sample = chunks.Sample

// memChunk is one chunk held in memory: XOR for floats, Prometheus's
// histogram or float histogram encoding for histograms.
type memChunk struct {
	c          chunkenc.Chunk
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

	// hasLast and last are the newest sample the series ever had, in
	// memory or in the store: a series created in memory restores it from
	// the store, and checkpoints keep it once its chunks are flushed, so
	// order and duplicate checks survive both.
	hasLast bool
	last    sample
	// pendingPush and pending are the newest sample the push numbered
	// pendingPush accepted for this series and has not appended yet: a
	// series may come several times in one push (Prometheus sends a sample
	// per time series entry), and each later occurrence is judged against
	// what the earlier ones accepted. Only the appender, under appendMu,
	// reads or writes them; a push that fails before appending leaves them
	// behind under a number no later push uses.
	pendingPush uint64
	pending     sample
	// ooo are the series' out-of-order samples not yet encoded, sorted by
	// time (at most oooCapMax), and oooChunks the completed chunks they
	// were encoded into, not yet flushed. Their times overlap the in-order
	// chunks'; queries merge both, as Prometheus's head merges its
	// out-of-order chunks.
	ooo       []sample
	oooChunks []*memChunk
	// storeMaxT bounds the timestamps the store may hold of this series
	// once storeKnown: a sample not in memory at a later time was never
	// accepted, and no store read is needed to tell. Flushes and
	// transfers raise it after writing the store; it is learned from the
	// store when a series is created in memory, or at its first old sample
	// not found in memory. Guarded by mu.
	storeMaxT  int64
	storeKnown bool
	// recent are in-order chunks stored already and kept for queries
	// (Config.RetainPeriod), oldest first, all older than chunks'.
	// storeOnlyMaxT bounds, once storeKnown, the timestamps of the samples
	// the store may hold and memory not: those of the chunks released, and
	// whatever the store held when storeMaxT was learned. A query starting
	// after it reads memory alone. Both guarded by mu.
	recent        []*memChunk
	storeOnlyMaxT int64
	// storeID is the ID the store gave the series in a query's Refs (0:
	// not learned yet), so the next query's Refs passes over it unread.
	// It may be stale, the series deleted by retention and stored again
	// under another ID: store IDs are never reused, so a stale one names
	// no series, and Refs finds the new one by its labels.
	storeID atomic.Uint64
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
	// acceptOutOfOrder is older than the last sample, not stored, and
	// within the tenant's out-of-order window: stored out of order.
	acceptOutOfOrder
	// conflicting has the timestamp of a stored sample but another value:
	// rejected.
	conflicting
)

// check decides a sample against the series' last accepted one. A sample
// it calls outOfOrder may still be an exact repeat of an older stored
// sample, or fit the tenant's out-of-order window: push looks that up
// (Ingester.judgeOld) before rejecting it. A
// histogram where the last sample was a float (or the reverse) at the same
// timestamp conflicts, as in Prometheus.
func check(hasLast bool, last, s sample) verdict {
	switch {
	case !hasLast || s.T > last.T:
		return accept
	case s.T < last.T:
		return outOfOrder
	case chunks.Same(last, s):
		return duplicate
	default:
		return conflicting
	}
}

// sampleAt returns the sample the series holds in memory at t, and
// whether the store may hold one there: every sample accepted is in memory
// until a flush stores it, and the store holds nothing after storeMaxT.
func (s *memSeries) sampleAt(t int64) (smp sample, found, inStore bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inStore = !s.storeKnown || t <= s.storeMaxT
	for _, mc := range s.chunks {
		if smp, ok := chunkSampleAt(mc, t); ok {
			return smp, true, inStore
		}
	}
	if s.head != nil {
		if smp, ok := chunkSampleAt(s.head, t); ok {
			return smp, true, inStore
		}
	}
	if mc := s.oooChunkAt(t); mc != nil {
		if smp, ok := chunkSampleAt(mc, t); ok {
			return smp, true, inStore
		}
	}
	if k, ok := slices.BinarySearchFunc(s.ooo, t, byTime); ok {
		return s.ooo[k], true, inStore
	}
	return sample{}, false, inStore
}

func byTime(smp sample, t int64) int { return cmp.Compare(smp.T, t) }

// learnStoreMaxT records that the store holds nothing of the series after
// t (math.MinInt64: nothing at all), as read from it. A flush or transfer
// that stored later chunks since the read has raised storeMaxT already.
func (s *memSeries) learnStoreMaxT(t int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.storeMaxT, s.storeKnown = max(s.storeMaxT, t), true
	s.storeOnlyMaxT = max(s.storeOnlyMaxT, t)
}

// stored records that chunks up to t were just written to the store and
// are not in memory. The caller holds s.mu.
func (s *memSeries) stored(t int64) {
	s.storeMaxT = max(s.storeMaxT, t)
	s.storeOnlyMaxT = max(s.storeOnlyMaxT, t)
}

// keepRecent moves mc, just stored, to the recent chunks. The caller
// holds s.mu, has removed mc from chunks, and prunes once it has stored or
// kept every chunk of its batch.
func (s *memSeries) keepRecent(mc *memChunk) {
	s.storeMaxT = max(s.storeMaxT, mc.maxT)
	k, _ := slices.BinarySearchFunc(s.recent, mc.minT, func(r *memChunk, t int64) int { return cmp.Compare(r.minT, t) })
	s.recent = slices.Insert(s.recent, k, mc)
}

// releaseRecent drops the recent chunks whose newest sample is outside
// [from, to], or all of them. The caller holds s.mu.
func (s *memSeries) releaseRecent(from, to int64, all bool) {
	n := 0
	for _, mc := range s.recent {
		if !all && mc.maxT >= from && mc.maxT <= to {
			s.recent[n] = mc
			n++
			continue
		}
		s.storeOnlyMaxT = max(s.storeOnlyMaxT, mc.maxT)
	}
	clear(s.recent[n:])
	s.recent = s.recent[:n]
	s.pruneRecent()
}

// pruneRecent drops the recent chunks that end at or before storeOnlyMaxT,
// such as those older than a chunk released meanwhile: a query from their
// times reads the store, which holds them, so memory would keep them for
// nothing. The caller holds s.mu.
func (s *memSeries) pruneRecent() {
	n := 0
	for _, mc := range s.recent {
		if mc.maxT > s.storeOnlyMaxT {
			s.recent[n] = mc
			n++
		}
	}
	clear(s.recent[n:])
	s.recent = s.recent[:n]
}

func chunkSampleAt(mc *memChunk, t int64) (sample, bool) {
	if t < mc.minT || t > mc.maxT {
		return sample{}, false
	}
	it := mc.c.Iterator(nil)
	var smp sample
	switch it.Seek(t) {
	case chunkenc.ValFloat:
		smp.T, smp.V = it.At()
	case chunkenc.ValHistogram:
		smp.T, smp.H = it.AtHistogram(nil)
	case chunkenc.ValFloatHistogram:
		smp.T, smp.FH = it.AtFloatHistogram(nil)
	default:
		return sample{}, false
	}
	return smp, smp.T == t
}

// restoreLast makes smp the series' last sample unless it has a newer one:
// what a checkpoint or the store remembers of a series whose chunks left
// memory.
func (s *memSeries) restoreLast(smp sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasLast || smp.T > s.last.T {
		s.hasLast, s.last = true, smp
	}
}

// lastSample returns the series' last sample.
func (s *memSeries) lastSample() (sample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.hasLast
}

// histogramChunkBytes is the size past which a histogram chunk is cut once
// it has chunkenc.MinSamplesPerHistogramChunk samples: twice Prometheus's
// target, the size at which its head cuts one whatever its prediction.
const histogramChunkBytes = 2 * chunkenc.TargetBytesPerHistogramChunk

// append adds an accepted sample. The caller holds s.mu.
func (s *memSeries) append(smp sample, cfg *Config, nowNanos int64) {
	enc := smp.Type().ChunkEncoding(false, false)
	var prev chunkenc.Appender
	if s.head == nil || s.head.c.Encoding() != enc || s.head.c.NumSamples() >= cfg.MaxChunkSamples ||
		smp.T > chunkPeriodEnd(s.head.minT, max(cfg.MaxChunkAge.Milliseconds(), 1), s.hash) ||
		(enc != chunkenc.EncXOR && len(s.head.c.Bytes()) >= histogramChunkBytes && s.head.c.NumSamples() >= chunkenc.MinSamplesPerHistogramChunk) {
		if s.head != nil && s.head.c.Encoding() == enc {
			// It tells the new chunk's first histogram whether a counter
			// reset lies between the chunks.
			prev = s.app
		}
		s.cut(smp.T, enc)
	}
	var (
		next    chunkenc.Chunk
		recoded bool
		app     = s.app
	)
	switch smp.Type() {
	case chunkenc.ValFloat:
		app.Append(0, smp.T, smp.V)
	case chunkenc.ValHistogram:
		// The histogram was validated; with appendOnly false the appender
		// cuts or recodes rather than fail.
		next, recoded, app, _ = app.AppendHistogram(prev, 0, smp.T, smp.H, false)
	case chunkenc.ValFloatHistogram:
		next, recoded, app, _ = app.AppendFloatHistogram(prev, 0, smp.T, smp.FH, false)
	}
	switch {
	case next == nil:
	case recoded:
		s.head.c = next
	default:
		// A counter reset or a layout the chunk cannot take: the head is
		// complete and the appender's new chunk is the head.
		s.completeHead()
		s.head = &memChunk{c: next, minT: smp.T}
	}
	s.app = app
	s.head.maxT = smp.T
	s.hasLast, s.last = true, smp
	s.lastAppend = nowNanos
}

// chunkPeriodEnd is the last time of the max-chunk-age period holding t
// for the series whose label hash is hash: a chunk is cut when a sample
// leaves its head's period, not max-chunk-age after the head's first
// sample. Replicas that missed different samples cut chunks at other
// counts, and the shared boundaries bring them back to identical chunks,
// which queriers decode once instead of merging sample by sample. The
// periods are offset by the label hash, the same on every replica, so
// that series do not all complete their chunks in the same flush.
func chunkPeriodEnd(t, age int64, hash uint64) int64 {
	off := int64(hash % uint64(age))
	if t < math.MinInt64+off {
		// t - off would wrap: the series' first period, unshifted.
		return periodEnd(t, age)
	}
	e := periodEnd(t-off, age)
	if e > math.MaxInt64-off {
		return math.MaxInt64
	}
	return e + off
}

// cut completes the head chunk and opens a new one of encoding enc
// starting at t. The caller holds s.mu.
func (s *memSeries) cut(t int64, enc chunkenc.Encoding) {
	s.completeHead()
	c, err := chunkenc.NewEmptyChunk(enc)
	if err != nil {
		// append asks only for the encodings of the sample types.
		panic(err)
	}
	app, err := c.Appender()
	if err != nil {
		// A fresh chunk's appender cannot fail.
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
// chunk: an appender cannot resume from bytes alone, since how many bits
// of the last byte are used is not recorded in them. A histogram chunk
// keeps a counter reset or gauge header, which its first sample's hint
// carries; a header saying no reset becomes unknown, which queries detect
// for themselves.
func (s *memSeries) restoreChunk(mc *memChunk) error {
	s.completeHead()
	c, err := chunkenc.NewEmptyChunk(mc.c.Encoding())
	if err != nil {
		return err
	}
	app, err := c.Appender()
	if err != nil {
		return err
	}
	it := mc.c.Iterator(nil)
	for {
		var smp sample
		switch it.Next() {
		case chunkenc.ValNone:
			s.head, s.app = &memChunk{c: c, minT: mc.minT, maxT: mc.maxT}, app
			return it.Err()
		case chunkenc.ValFloat:
			smp.T, smp.V = it.At()
			app.Append(0, smp.T, smp.V)
		case chunkenc.ValHistogram:
			smp.T, smp.H = it.AtHistogram(nil)
			if err := appendOnly(app.AppendHistogram(nil, 0, smp.T, smp.H, true)); err != nil {
				return fmt.Errorf("histogram at %d: %w", smp.T, err)
			}
		case chunkenc.ValFloatHistogram:
			smp.T, smp.FH = it.AtFloatHistogram(nil)
			if err := appendOnly(app.AppendFloatHistogram(nil, 0, smp.T, smp.FH, true)); err != nil {
				return fmt.Errorf("histogram at %d: %w", smp.T, err)
			}
		}
		// Never lower the last sample a last-samples record restored.
		if !s.hasLast || smp.T > s.last.T {
			s.hasLast, s.last = true, smp
		}
	}
}

// appendOnly is the error of an append that must not cut or recode.
func appendOnly(_ chunkenc.Chunk, _ bool, _ chunkenc.Appender, err error) error { return err }

// chunkCopy is an immutable copy of a chunk, safe to use without locks.
type chunkCopy struct {
	minT, maxT int64
	enc        chunkenc.Encoding
	data       []byte
}

// copyChunks returns copies of the chunks overlapping [mint, maxt], in
// order and out of order, the latter's unencoded samples encoded, and
// whether the store may hold samples of the series at or after mint that
// the copies lack. The recent chunks, which the store holds, are copied
// only when it does not: a query then reads memory alone. A flush raises
// storeOnlyMaxT in the critical section that releases the chunks it
// stored, and this reads it in the one that copies, so a chunk missing
// from the copy is one the answer sends the query to the store for. The
// head chunk's bytes change as samples are appended, hence the copy.
func (s *memSeries) copyChunks(mint, maxt int64) (out []chunkCopy, storeMayHold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	storeMayHold = !s.storeKnown || s.storeOnlyMaxT >= mint
	if !storeMayHold {
		out = copyOverlapping(out, s.recent, nil, mint, maxt)
	}
	out = copyOverlapping(out, s.chunks, s.head, mint, maxt)
	out = copyOverlapping(out, s.oooChunks, nil, mint, maxt)
	if len(s.ooo) > 0 && s.ooo[0].T <= maxt && s.ooo[len(s.ooo)-1].T >= mint {
		for _, mc := range encodeOOO(s.ooo) {
			out = append(out, chunkCopy{minT: mc.minT, maxT: mc.maxT, enc: mc.c.Encoding(), data: mc.c.Bytes()})
		}
	}
	return out, storeMayHold
}

// checkpointChunks returns copies of every chunk in memory: the in-order
// ones, whose last becomes the head again on replay, and the out-of-order
// ones, the unencoded samples encoded.
func (s *memSeries) checkpointChunks() (inOrder, outOfOrder []chunkCopy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inOrder = copyOverlapping(nil, s.chunks, s.head, math.MinInt64, math.MaxInt64)
	outOfOrder = copyOverlapping(nil, s.oooChunks, nil, math.MinInt64, math.MaxInt64)
	return inOrder, copyOverlapping(outOfOrder, encodeOOO(s.ooo), nil, math.MinInt64, math.MaxInt64)
}

// copyOverlapping appends to out the chunks of cs and head overlapping
// [mint, maxt]. Only the head's bytes are copied: a completed chunk is
// immutable (a merge replaces an out-of-order one), so its bytes are
// shared, as a flush shares them with the store.
func copyOverlapping(out []chunkCopy, cs []*memChunk, head *memChunk, mint, maxt int64) []chunkCopy {
	add := func(mc *memChunk, data []byte) {
		out = append(out, chunkCopy{minT: mc.minT, maxT: mc.maxT, enc: mc.c.Encoding(), data: data})
	}
	for _, mc := range cs {
		if mc.maxT >= mint && mc.minT <= maxt {
			add(mc, mc.c.Bytes())
		}
	}
	if head != nil && head.maxT >= mint && head.minT <= maxt {
		add(head, append([]byte(nil), head.c.Bytes()...))
	}
	return out
}

// overlaps reports whether the series has in-memory data in [mint, maxt].
func (s *memSeries) overlaps(mint, maxt int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := func(mc *memChunk) bool { return mc.maxT >= mint && mc.minT <= maxt }
	if slices.ContainsFunc(s.recent, in) || slices.ContainsFunc(s.chunks, in) || slices.ContainsFunc(s.oooChunks, in) || (s.head != nil && in(s.head)) {
		return true
	}
	return len(s.ooo) > 0 && s.ooo[0].T <= maxt && s.ooo[len(s.ooo)-1].T >= mint
}

// oldest returns the oldest sample time the series holds in memory.
func (s *memSeries) oldest() (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, found := int64(math.MaxInt64), false
	if len(s.recent) > 0 {
		t, found = s.recent[0].minT, true
	}
	for _, mc := range s.chunks {
		t, found = min(t, mc.minT), true
	}
	for _, mc := range s.oooChunks {
		t, found = min(t, mc.minT), true
	}
	if s.head != nil {
		t, found = min(t, s.head.minT), true
	}
	if len(s.ooo) > 0 {
		t, found = min(t, s.ooo[0].T), true
	}
	return t, found
}

// empty reports whether the series holds nothing in memory that the store
// lacks: its recent chunks, stored, go with it. The caller holds s.mu.
func (s *memSeries) empty() bool {
	return s.head == nil && len(s.chunks) == 0 && len(s.oooChunks) == 0 && len(s.ooo) == 0
}
