package ingester

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
)

const checkpointPrefix = "checkpoint."

// Kinds of damage, the kind label of orrery_ingester_wal_corruptions_total.
const (
	damageSegment    = "segment"
	damageCheckpoint = "checkpoint"
	damageRecord     = "record"
)

var damageKinds = []string{damageSegment, damageCheckpoint, damageRecord}

// lastBatchSeries bounds a checkpoint's last-sample records and the store
// lookups of one read transaction at replay.
const lastBatchSeries = 4096

// replayState maps the refs found in the log to series in memory. A series
// may appear under several refs (created again after being forgotten).
type replayState struct {
	refs map[uint64]*memSeries
	// heads names each ref's tenant, for its exemplars.
	heads   map[uint64]*tenantHead
	samples []refSample
	damaged bool
}

// replay loads the newest checkpoint and then every WAL segment from the
// checkpoint's index on, each file on its own: damage ends the reading of
// the file it is in, never of the files after it, and a record that does
// not decode is skipped alone (WAL.md says what each loses and why). Series
// left without a last sample get it from the store. After damage, a
// checkpoint of what was recovered replaces the damaged files, so that the
// next start neither meets nor counts the damage again.
func (i *Ingester) replay() error {
	st := &replayState{refs: map[uint64]*memSeries{}, heads: map[uint64]*tenantHead{}}
	cpDir, cpIndex, err := lastCheckpoint(i.walDir())
	if err != nil {
		return err
	}
	if cpDir != "" {
		// Damage inside the checkpoint's files costs their tails; a file
		// system that refuses to list or open them fails the start, since
		// the checkpoint after a damaged replay would delete them.
		if err := i.replayDir(st, cpDir, 0, damageCheckpoint); err != nil {
			return err
		}
	}
	if err := i.replayDir(st, i.walDir(), cpIndex, damageSegment); err != nil {
		return err
	}
	i.restoreLastAfterReplay()
	if st.damaged {
		if err := i.checkpoint(); err != nil {
			i.logger.Error("checkpoint after wal damage failed; the next start meets the same damage", "err", err)
		}
	}
	return nil
}

// damage counts and logs one damage of kind.
func (i *Ingester) damage(st *replayState, kind, msg string, args ...any) {
	st.damaged = true
	i.m.walCorruptions.WithLabelValues(kind).Inc()
	i.logger.Warn(msg, append([]any{"kind", kind}, args...)...)
}

// replayDir replays the numbered segment files of dir from first on. It
// fails only when dir cannot be listed.
func (i *Ingester) replayDir(st *replayState, dir string, first int, kind string) error {
	segs, err := segmentIndexes(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, k := range segs {
		if k < first {
			continue
		}
		name := wlog.SegmentName(dir, k)
		seg, err := wlog.OpenReadSegment(name)
		if err != nil {
			// Not damage but the file system refusing (permissions, I/O):
			// skipping it would let the checkpoint after replay delete an
			// intact file. The start fails instead, and can be retried.
			return fmt.Errorf("open %s: %w", name, err)
		}
		r := wlog.NewSegmentBufReader(seg)
		i.replayRecords(st, wlog.NewReader(r), name, kind)
		if err := r.Close(); err != nil {
			i.logger.Warn("close wal file", "file", name, "err", err)
		}
	}
	return nil
}

// segmentIndexes returns the indexes of dir's segment files, sorted. Unlike
// wlog's listing it accepts gaps: a missing file loses only itself.
func segmentIndexes(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		if k, err := strconv.Atoi(e.Name()); err == nil && !e.IsDir() {
			out = append(out, k)
		}
	}
	sort.Ints(out)
	return out, nil
}

// fillSegmentGaps replaces each segment file missing from the WAL with an
// empty one, counted as a damaged segment: between the newest checkpoint's
// index (the first segment it does not cover; 0 without one) and the last
// segment. wlog refuses to open a WAL whose segments are not sequential,
// and would start writing below the checkpoint's index if every segment
// from it on were gone (writes replay would then skip): a lost file should
// cost only its own records, not the start-up nor later writes.
func (i *Ingester) fillSegmentGaps() error {
	segs, err := segmentIndexes(i.walDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list wal segments: %w", err)
	}
	cpDir, first, err := lastCheckpoint(i.walDir())
	if err != nil {
		return fmt.Errorf("list wal checkpoints: %w", err)
	}
	if cpDir == "" && len(segs) == 0 {
		return nil
	}
	last := first
	if len(segs) > 0 {
		last = max(last, segs[len(segs)-1])
	}
	filled := 0
	for k := first; k <= last; k++ {
		if _, found := slices.BinarySearch(segs, k); found {
			continue
		}
		name := wlog.SegmentName(i.walDir(), k)
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
		if err != nil {
			return fmt.Errorf("fill missing wal segment: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("fill missing wal segment: %w", err)
		}
		i.m.walCorruptions.WithLabelValues(damageSegment).Inc()
		i.logger.Warn("wal segment missing: replaced by an empty one, its records are lost", "kind", damageSegment, "file", name)
		filled++
	}
	if filled > 0 {
		return syncDir(i.walDir())
	}
	return nil
}

// replayRecords replays one file's records up to its end or its first
// damaged page.
func (i *Ingester) replayRecords(st *replayState, r *wlog.Reader, name, kind string) {
	for r.Next() {
		rec := r.Record()
		if len(rec) == 0 {
			continue
		}
		var err error
		switch rec[0] {
		case recSeries:
			err = i.replaySeries(st, rec)
		case recSamples, recSamplesMixed:
			st.samples, err = decodeSamples(rec, st.samples[:0])
			if err == nil {
				i.replaySamples(st, st.samples, false)
			}
		case recOOOSamples:
			st.samples, err = decodeSamples(rec, st.samples[:0])
			if err == nil {
				i.replaySamples(st, st.samples, true)
			}
		case recChunks, recChunksEnc, recOOOChunks:
			err = i.replayChunks(st, rec)
		case recExemplars:
			err = i.replayExemplars(st, rec)
		case recTenantNewest:
			var tenantID string
			var newest int64
			if tenantID, newest, err = decodeTenantNewest(rec); err == nil {
				i.head(tenantID, true).observe(newest)
			}
		case recLast, recLastMixed:
			st.samples, err = decodeSamples(rec, st.samples[:0])
			if err == nil {
				i.replayLast(st, st.samples)
			}
		default:
			err = fmt.Errorf("unknown record type %d", rec[0])
		}
		if err != nil {
			// The record passed its checksum: it is ours and undecodable
			// (a bug or a newer format), not a damaged disk. Only it is lost.
			i.damage(st, damageRecord, "wal record skipped", "file", name, "offset", r.Offset(), "err", err)
		}
	}
	if err := r.Err(); err != nil {
		i.damage(st, kind, "wal file damaged, the rest of it is lost", "file", name, "err", err)
	}
}

func (i *Ingester) replaySeries(st *replayState, rec []byte) error {
	tenantID, entries, err := decodeSeries(rec)
	if err != nil {
		return err
	}
	h := i.head(tenantID, true)
	var sc scratch
	for _, e := range entries {
		if e.ref >= i.nextRef.Load() {
			i.nextRef.Store(e.ref)
		}
		enc := ingesterpb.AppendLabels(nil, e.lset)
		// No limits: the series was acknowledged before the crash.
		s, _, err := h.getOrCreate(enc, &sc, func() uint64 { return e.ref }, seriesLimits{})
		if err != nil {
			return err
		}
		s.logged = true
		st.refs[e.ref] = s
		st.heads[e.ref] = h
	}
	return nil
}

// replaySamples appends samples; ones at or before a series' last sample are
// already in memory (from the checkpoint) and are skipped. Samples of a
// series whose record was lost are counted and dropped.
//
// With outOfOrder, they are samples a push accepted out of order: one
// memory holds already (a checkpoint cut after the push took it) is
// skipped; one newer than the newest sample replay restored of its series
// (its in-order samples lost to damage) is appended in order. A series
// replay knows no newest sample of (created again after it was forgotten,
// and not in the checkpoint) learns it from the store after replay: its
// out-of-order samples stay out of order.
func (i *Ingester) replaySamples(st *replayState, samples []refSample, outOfOrder bool) {
	now := time.Now().UnixNano()
	dropped := 0
	for _, smp := range samples {
		s := st.refs[smp.ref]
		if s == nil {
			dropped++
			// The lost series' ref is never given to a new series, which
			// would otherwise inherit these samples at the next replay.
			if smp.ref >= i.nextRef.Load() {
				i.nextRef.Store(smp.ref)
			}
			continue
		}
		inOrder := check(s.hasLast, s.last, smp.sample) == accept && (s.hasLast || !outOfOrder)
		if !inOrder && !outOfOrder {
			continue
		}
		if !inOrder {
			if _, held, _ := s.sampleAt(smp.T); held {
				continue
			}
		}
		s.mu.Lock()
		if inOrder {
			s.append(smp.sample, &i.cfg, now)
		} else {
			s.insertOOO(smp.sample, &i.cfg)
			s.lastAppend = now
		}
		s.mu.Unlock()
	}
	i.m.walDropped.Add(float64(dropped))
}

// replayExemplars adds exemplars to their series' tenants, under the
// tenants' limits as they are now. Exemplars of a lost series record are
// dropped with it.
func (i *Ingester) replayExemplars(st *replayState, rec []byte) error {
	exemplars, err := decodeExemplars(rec)
	if err != nil {
		return err
	}
	for _, e := range exemplars {
		s, h := st.refs[e.ref], st.heads[e.ref]
		if s == nil {
			continue
		}
		if store := h.exemplars.storage(i.exemplarLimit(h.id)); store != nil {
			// A refusal is a duplicate (in a checkpoint and the WAL after
			// it), or one the push refused too when it was added.
			if store.AddExemplar(s.lset, e.ex) == nil {
				h.exemplars.added(store, 1)
			}
		}
	}
	return nil
}

// replayLast restores the last samples a checkpoint kept.
func (i *Ingester) replayLast(st *replayState, last []refSample) {
	for _, smp := range last {
		if s := st.refs[smp.ref]; s != nil {
			s.restoreLast(smp.sample)
		}
	}
}

func (i *Ingester) replayChunks(st *replayState, rec []byte) error {
	ref, decoded, err := decodeChunks(rec)
	if err != nil {
		return err
	}
	s := st.refs[ref]
	if s == nil {
		if ref >= i.nextRef.Load() {
			i.nextRef.Store(ref)
		}
		for _, c := range decoded {
			i.m.walDropped.Add(float64(c.c.NumSamples()))
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastAppend = time.Now().UnixNano()
	if rec[0] == recOOOChunks {
		// Merged, as the unencoded samples a checkpoint encoded overlap
		// the chunks: all at once, in one pass over the series' chunks.
		var all []sample
		for _, c := range decoded {
			smps, err := chunks.Chunk{MinTime: c.minT, MaxTime: c.maxT, Encoding: c.c.Encoding(), Data: c.c.Bytes()}.Samples()
			if err != nil {
				return fmt.Errorf("series %d: %w", ref, err)
			}
			all = append(all, smps...)
		}
		slices.SortStableFunc(all, func(a, b sample) int { return cmp.Compare(a.T, b.T) })
		s.mergeOOO(slices.CompactFunc(all, func(a, b sample) bool { return a.T == b.T }), &i.cfg)
		return nil
	}
	for _, c := range decoded {
		if err := s.restoreChunk(c); err != nil {
			return fmt.Errorf("series %d: %w", ref, err)
		}
	}
	return nil
}

// restoreLastAfterReplay gives series that replay left without a last
// sample (every chunk flushed before a checkpoint that did not record it,
// or the record lost to damage) the newest one the store holds, and each
// tenant the newest time it holds, which its out-of-order window is
// measured from.
func (i *Ingester) restoreLastAfterReplay() {
	for _, h := range i.allHeads() {
		i.restoreTenantAfterReplay(h)
	}
}

func (i *Ingester) restoreTenantAfterReplay(h *tenantHead) {
	tl := i.transferLock(h.id)
	tl.RLock()
	defer tl.RUnlock()
	var batch []*memSeries
	for _, s := range h.all() {
		if _, ok := s.lastSample(); !ok {
			batch = append(batch, s)
		}
		if len(batch) == lastBatchSeries {
			i.restoreLastFromStore(h, batch)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		i.restoreLastFromStore(h, batch)
	}
	for _, s := range h.all() {
		// A series whose newer in-order samples were lost to damage
		// may hold out-of-order ones newer than what is left.
		s.mu.Lock()
		if newest, ok := s.newestOOO(); ok && (!s.hasLast || newest.T > s.last.T) {
			s.hasLast, s.last = true, newest
		}
		last, ok := s.last, s.hasLast
		s.mu.Unlock()
		if ok {
			h.observe(last.T)
		}
	}
}

// checkpoint writes every in-memory series and its chunks to a new
// checkpoint and deletes the WAL segments and checkpoints it replaces.
func (i *Ingester) checkpoint() error {
	i.cpMu.Lock()
	defer i.cpMu.Unlock()
	return i.checkpointLocked()
}

// checkpointLocked is checkpoint, with cpMu held.
func (i *Ingester) checkpointLocked() error {
	start := time.Now()
	i.walMu.Lock()
	seg, err := i.wal.NextSegmentSync()
	i.walMu.Unlock()
	if err != nil {
		return fmt.Errorf("ingester: cut wal segment: %w", err)
	}
	final := filepath.Join(i.walDir(), fmt.Sprintf("%s%08d", checkpointPrefix, seg))
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := i.writeCheckpoint(tmp); err != nil {
		return errors.Join(fmt.Errorf("ingester: write checkpoint: %w", err), os.RemoveAll(tmp))
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("ingester: publish checkpoint: %w", err)
	}
	if err := syncDir(i.walDir()); err != nil {
		return err
	}
	if err := i.wal.Truncate(seg); err != nil {
		return fmt.Errorf("ingester: truncate wal: %w", err)
	}
	if err := removeCheckpointsBefore(i.walDir(), seg); err != nil {
		return err
	}
	i.m.checkpointTime.Observe(time.Since(start).Seconds())
	return nil
}

func (i *Ingester) checkpointAndLog() {
	if err := i.checkpoint(); err != nil {
		i.m.checkpointFailed.Inc()
		i.logger.Error("checkpoint failed", "err", err)
	}
}

func (i *Ingester) writeCheckpoint(dir string) error {
	w, err := wlog.NewSize(i.logger, nil, dir, wlog.DefaultSegmentSize, compression.Snappy)
	if err != nil {
		return err
	}
	var buf []byte
	var last []refSample
	for _, h := range i.allHeads() {
		if newest := h.maxT.Load(); newest != math.MinInt64 {
			if err := w.Log(encodeTenantNewest(buf[:0], h.id, newest)); err != nil {
				return errors.Join(err, w.Close())
			}
		}
		series := h.all()
		// Series records first, then last samples, then chunks: damage in
		// the bulky chunks loses only chunks, while every series keeps its
		// ref (samples logged after the cut refer to it, even one whose
		// chunks are all flushed) and its last sample.
		for k := 0; k < len(series); k += lastBatchSeries {
			batch := series[k:min(k+lastBatchSeries, len(series))]
			buf = encodeSeries(buf[:0], h.id, batch)
			last = last[:0]
			mixed := false
			for _, s := range batch {
				if smp, ok := s.lastSample(); ok {
					last = append(last, refSample{ref: s.ref, sample: smp})
					mixed = mixed || smp.Type() != chunkenc.ValFloat
				}
			}
			recs := [][]byte{buf}
			if len(last) > 0 {
				n := len(buf)
				buf = encodeSamples(buf, recLast, last, nil, mixed)
				recs = [][]byte{buf[:n], buf[n:]}
			}
			if err := w.Log(recs...); err != nil {
				return errors.Join(err, w.Close())
			}
		}
		for _, s := range series {
			inOrder, outOfOrder := s.checkpointChunks()
			if len(inOrder) > 0 {
				buf = encodeChunks(buf[:0], recChunksEnc, s.ref, inOrder)
				if err := w.Log(buf); err != nil {
					return errors.Join(err, w.Close())
				}
			}
			if len(outOfOrder) > 0 {
				buf = encodeChunks(buf[:0], recOOOChunks, s.ref, outOfOrder)
				if err := w.Log(buf); err != nil {
					return errors.Join(err, w.Close())
				}
			}
		}
		if err := checkpointExemplars(w, h, i.exemplarLimit(h.id)); err != nil {
			return errors.Join(err, w.Close())
		}
	}
	return w.Close()
}

// checkpointExemplars writes the tenant's exemplars of series in memory,
// oldest first, after their series records: exemplars live only in
// memory, the WAL and checkpoints, as in Prometheus.
func checkpointExemplars(w *wlog.WL, h *tenantHead, limit int64) error {
	st := h.exemplars.storage(limit)
	if st == nil {
		return nil
	}
	var batch []refExemplar
	var enc, scratch []byte
	err := st.IterateExemplars(func(ls labels.Labels, e exemplar.Exemplar) error {
		enc = ingesterpb.AppendLabels(enc[:0], ls)
		h.mu.RLock()
		s := h.lookup(seriesHash(enc), enc, &scratch)
		h.mu.RUnlock()
		if s != nil {
			batch = append(batch, refExemplar{ref: s.ref, ex: e})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for k := 0; k < len(batch); k += lastBatchSeries {
		if err := w.Log(encodeExemplars(nil, batch[k:min(k+lastBatchSeries, len(batch))])); err != nil {
			return err
		}
	}
	return nil
}

// lastCheckpoint returns the newest complete checkpoint and its index, or ""
// and 0 when there is none.
func lastCheckpoint(dir string) (string, int, error) {
	idx, err := checkpointIndexes(dir)
	if err != nil || len(idx) == 0 {
		return "", 0, err
	}
	last := idx[len(idx)-1]
	return filepath.Join(dir, fmt.Sprintf("%s%08d", checkpointPrefix, last)), last, nil
}

func removeCheckpointsBefore(dir string, seg int) error {
	idx, err := checkpointIndexes(dir)
	if err != nil {
		return err
	}
	for _, k := range idx {
		if k < seg {
			if err := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("%s%08d", checkpointPrefix, k))); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkpointIndexes(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), checkpointPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		// Unfinished checkpoints end in .tmp and fail to parse.
		if k, err := strconv.Atoi(name); err == nil {
			out = append(out, k)
		}
	}
	sort.Ints(out)
	return out, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
