package ingester

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/orrery/orrery/proto/ingesterpb"
)

const checkpointPrefix = "checkpoint."

// replayState maps the refs found in the log to series in memory. A series
// may appear under several refs (created again after being forgotten).
type replayState struct {
	refs map[uint64]*memSeries
}

// replay loads the newest checkpoint and then every WAL segment from the
// checkpoint's index on. A corrupt record ends the replay: the log is cut
// there (wlog.Repair) and everything before it is kept.
func (i *Ingester) replay() error {
	st := &replayState{refs: map[uint64]*memSeries{}}
	cpDir, cpIndex, err := lastCheckpoint(i.walDir())
	if err != nil {
		return err
	}
	if cpDir != "" {
		r, err := wlog.NewSegmentsReader(cpDir)
		if err != nil {
			return fmt.Errorf("open checkpoint %s: %w", cpDir, err)
		}
		err = i.replayRecords(st, wlog.NewReader(r))
		r.Close()
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", cpDir, err)
		}
	}
	r, err := wlog.NewSegmentsRangeReader(wlog.SegmentRange{Dir: i.walDir(), First: cpIndex, Last: -1})
	if err != nil {
		return err
	}
	defer r.Close()
	err = i.replayRecords(st, wlog.NewReader(r))
	var cerr *wlog.CorruptionErr
	if errors.As(err, &cerr) {
		i.m.walCorruptions.Inc()
		i.logger.Warn("wal corrupted, keeping what precedes the damage", "segment", cerr.Segment, "offset", cerr.Offset, "err", err)
		return i.wal.Repair(err)
	}
	return err
}

func (i *Ingester) replayRecords(st *replayState, r *wlog.Reader) error {
	var samples []refSample
	for r.Next() {
		rec := r.Record()
		if len(rec) == 0 {
			continue
		}
		var err error
		switch rec[0] {
		case recSeries:
			err = i.replaySeries(st, rec)
		case recSamples:
			samples, err = decodeSamples(rec, samples[:0])
			if err == nil {
				i.replaySamples(st, samples)
			}
		case recChunks:
			err = i.replayChunks(st, rec)
		default:
			err = fmt.Errorf("unknown record type %d", rec[0])
		}
		if err != nil {
			return &wlog.CorruptionErr{Dir: "", Segment: r.Segment(), Offset: r.Offset(), Err: err}
		}
	}
	return r.Err()
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
		s, err := h.getOrCreate(enc, &sc, func() uint64 { return e.ref }, seriesLimits{})
		if err != nil {
			return err
		}
		s.logged = true
		st.refs[e.ref] = s
	}
	return nil
}

// replaySamples appends samples; ones at or before a series' last sample are
// already in memory (from the checkpoint) and are skipped.
func (i *Ingester) replaySamples(st *replayState, samples []refSample) {
	now := time.Now().UnixNano()
	for _, smp := range samples {
		s := st.refs[smp.ref]
		if s == nil || check(s.hasLast, s.lastT, s.lastV, smp.t, smp.v) != accept {
			continue
		}
		s.mu.Lock()
		s.append(smp.t, smp.v, &i.cfg, now)
		s.mu.Unlock()
	}
}

func (i *Ingester) replayChunks(st *replayState, rec []byte) error {
	ref, chunks, err := decodeChunks(rec)
	if err != nil {
		return err
	}
	s := st.refs[ref]
	if s == nil {
		return fmt.Errorf("chunks for unknown series ref %d", ref)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range chunks {
		if err := s.restoreChunk(c); err != nil {
			return fmt.Errorf("series %d: %w", ref, err)
		}
	}
	s.lastAppend = time.Now().UnixNano()
	return nil
}

// checkpoint writes every in-memory series and its chunks to a new
// checkpoint and deletes the WAL segments and checkpoints it replaces.
func (i *Ingester) checkpoint() error {
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
	for _, h := range i.allHeads() {
		for _, s := range h.all() {
			// Every series is written, even one whose chunks are all flushed:
			// samples logged after the cut refer to it by ref.
			buf = encodeSeries(buf[:0], h.id, []*memSeries{s})
			recs := [][]byte{buf}
			if chunks := s.copyChunks(minTime, maxTime); len(chunks) > 0 {
				n := len(buf)
				buf = encodeChunks(buf, s.ref, chunks)
				recs = [][]byte{buf[:n], buf[n:]}
			}
			if err := w.Log(recs...); err != nil {
				return errors.Join(err, w.Close())
			}
		}
	}
	return w.Close()
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
