package ingester

import (
	"slices"
	"time"

	"github.com/orrery/orrery/ingester/chunks"
)

// flushBatchSeries bounds one store transaction, so that a flush does not
// hold the store's single writer for long.
const flushBatchSeries = 4096

// flush writes completed chunks to the store and forgets idle series. With
// all set (at shutdown) every head chunk is completed first. One flush runs
// at a time: a shutdown flush racing the periodic one would collect the
// same chunks twice. It returns whether every batch reached the store; a
// failed one is logged and counted, and its chunks stay in memory.
func (i *Ingester) flush(all bool) bool {
	return i.flushAt(time.Now(), all)
}

// flushAt is flush as of the wall-clock time now, which decides what is
// idle and which stored chunks stay in memory.
func (i *Ingester) flushAt(now time.Time, all bool) bool {
	i.flushMu.Lock()
	defer i.flushMu.Unlock()
	ok := true
	var kept keptChunks
	for _, h := range i.allHeads() {
		start := time.Now()
		ok = i.flushTenant(h, now, all) && ok
		i.m.flushDuration.Observe(time.Since(start).Seconds())
		i.forgetIdle(h, now, &kept)
		h.metadata.expire(now.Add(-i.cfg.MetadataRetainPeriod))
		// A lowered exemplar limit frees memory now, not at the tenant's
		// next exemplar, which a limit of 0 never sends.
		h.exemplars.storage(i.exemplarLimit(h.id))
	}
	i.m.recentChunks.Set(float64(kept.chunks))
	i.m.recentBytes.Set(float64(kept.bytes))
	return ok
}

// flushed are the chunks of one series in a batch being stored, and those
// of them kept in memory once stored (memSeries.recent).
type flushed struct {
	s      *memSeries
	chunks []*memChunk
	recent []*memChunk
}

// keptChunks counts the stored chunks memory keeps (memSeries.recent) and
// their encoded bytes, as a flush leaves them.
type keptChunks struct{ chunks, bytes int }

func (k *keptChunks) add(cs []*memChunk) {
	for _, mc := range cs {
		k.chunks++
		k.bytes += len(mc.c.Bytes())
	}
}

func (i *Ingester) flushTenant(h *tenantHead, now time.Time, all bool) bool {
	ok := true
	idleBefore := now.Add(-i.cfg.ChunkIdleTimeout).UnixNano()
	// Out-of-order chunks stay in memory while samples may still join
	// them (their period reaches into the window): merged there, they stay
	// apart in time, and the store, which keeps every chunk it is given, is
	// not filled with chunks that overlap (each one a decode more for every
	// read of their times). The window start only moves on (unless the
	// tenant's window is made longer), and it is read here between pushes,
	// each of which measures it once and appends its late samples before
	// the next: so no push still to append measures an earlier start, and
	// a chunk flushed is not merged into again.
	h.appendMu.Lock()
	oooBefore := oooMin(h.maxT.Load(), now.UnixMilli(), i.limits.For(h.id).OutOfOrderTimeWindow)
	h.appendMu.Unlock()
	age := max(i.cfg.MaxChunkAge.Milliseconds(), 1)
	stones := i.deleted.tombstones(h.id)
	// Stored chunks stay in memory while their newest sample is within
	// the retain period of now, on either side: one ahead of the clock by
	// more (a sender's clock, a tenant without a creation grace period)
	// would otherwise stay until the clock passed it, which may be never.
	retain := i.cfg.RetainPeriod > 0 && !all
	retainFrom, retainTo := now.Add(-i.cfg.RetainPeriod).UnixMilli(), now.Add(i.cfg.RetainPeriod).UnixMilli()
	var batch []chunks.SeriesChunks
	var owners []flushed
	for _, s := range h.all() {
		s.mu.Lock()
		s.releaseRecent(retainFrom, retainTo, !retain)
		idle := all || s.lastAppend < idleBefore
		// Unencoded samples whose period left the window are merged, so
		// that their chunks are flushed too.
		if idle || (len(s.ooo) > 0 && periodEnd(s.ooo[0].T, age) < oooBefore) {
			s.cutOOO(&i.cfg)
		}
		if idle {
			s.completeHead()
		}
		f := flushed{chunks: slices.Clone(s.chunks)}
		for _, mc := range s.oooChunks {
			if idle || periodEnd(mc.minT, age) < oooBefore {
				f.chunks = append(f.chunks, mc)
			}
		}
		if len(f.chunks) > 0 {
			// Completed chunks are immutable (a merge replaces an
			// out-of-order chunk), so their bytes are shared with the
			// store's transaction without a copy. A chunk wholly deleted
			// is released without being stored.
			sc := chunks.SeriesChunks{Labels: s.lset, Chunks: make([]chunks.Chunk, 0, len(f.chunks))}
			ivs := deletedIntervals(stones, s.lset)
			for k, mc := range f.chunks {
				if covered(ivs, mc.minT, mc.maxT) {
					continue
				}
				sc.Chunks = append(sc.Chunks, chunks.Chunk{MinTime: mc.minT, MaxTime: mc.maxT, Encoding: mc.c.Encoding(), Data: mc.c.Bytes()})
				if retain && k < len(s.chunks) && mc.maxT >= retainFrom && mc.maxT <= retainTo {
					f.recent = append(f.recent, mc)
				}
			}
			f.s = s
			if len(sc.Chunks) > 0 {
				batch = append(batch, sc)
			}
			owners = append(owners, f)
		}
		s.mu.Unlock()
		if len(owners) == flushBatchSeries {
			ok = i.putAndRelease(h.id, batch, owners) && ok
			batch, owners = batch[:0], owners[:0]
		}
	}
	if len(owners) > 0 {
		ok = i.putAndRelease(h.id, batch, owners) && ok
	}
	return ok
}

// putAndRelease stores a batch and only then drops its chunks from memory,
// so a query that reads memory before the store never misses them. It drops
// exactly the chunks it stored, by identity: never one cut since.
func (i *Ingester) putAndRelease(tenantID string, batch []chunks.SeriesChunks, owners []flushed) bool {
	// A batch whose every chunk was deleted has nothing to store.
	if len(batch) > 0 {
		if err := i.store.Put(tenantID, batch); err != nil {
			i.m.flushFailures.Inc()
			i.logger.Error("flush failed; chunks stay in memory", "tenant", tenantID, "series", len(batch), "err", err)
			return false
		}
	}
	n := 0
	for _, o := range owners {
		flushed := func(mc *memChunk) bool { return slices.Contains(o.chunks, mc) }
		o.s.mu.Lock()
		o.s.chunks = slices.DeleteFunc(o.s.chunks, flushed)
		o.s.oooChunks = slices.DeleteFunc(o.s.oooChunks, flushed)
		for _, mc := range o.chunks {
			if slices.Contains(o.recent, mc) {
				o.s.keepRecent(mc)
			} else {
				o.s.stored(mc.maxT)
			}
		}
		o.s.pruneRecent()
		o.s.mu.Unlock()
		n += len(o.chunks)
	}
	i.m.chunksFlushed.Add(float64(n))
	return true
}

// forgetIdle removes series with nothing left in memory and no sample for
// SeriesIdleTimeout, and counts the stored chunks the others keep. It takes
// appendMu so no push holds a removed series.
func (i *Ingester) forgetIdle(h *tenantHead, now time.Time, kept *keptChunks) {
	idleBefore := now.Add(-i.cfg.SeriesIdleTimeout).UnixNano()
	h.appendMu.Lock()
	defer h.appendMu.Unlock()
	var idle []*memSeries
	for _, s := range h.all() {
		s.mu.Lock()
		if s.empty() && s.lastAppend < idleBefore {
			idle = append(idle, s)
		} else {
			kept.add(s.recent)
		}
		s.mu.Unlock()
	}
	h.remove(idle)
	i.m.seriesRemoved.Add(float64(len(idle)))
}
