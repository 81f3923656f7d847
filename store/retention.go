package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.etcd.io/bbolt"

	"github.com/orrery/orrery/ingester/chunks"
)

// A retention pass runs in many small write transactions rather than one
// per tenant, so that Put waits for bbolt's writer lock for at most one
// batch and the pages a transaction dirties stay bounded.
const (
	retentionBatchChunks = 50_000
	retentionBatchSeries = 10_000
)

// ApplyRetention deletes each tenant's chunks whose MaxTime is before now
// minus its retention (in milliseconds), and the chunks wholly inside one
// of its tombstones whose matchers select their series, then the series
// left without chunks and the tenants left without series. A tenant whose
// retention is 0 keeps its chunks but those a tombstone covers. A failure
// leaves earlier batches deleted, and the next pass resumes the work.
func (s *Store) ApplyRetention(now time.Time, retention func(tenant string) time.Duration) (deletedChunks int, err error) {
	// One pass at a time: a pass's retention_late is the tenant's one key.
	s.retentionMu.Lock()
	defer s.retentionMu.Unlock()
	tenants, err := s.tenants()
	if err != nil {
		return 0, fmt.Errorf("store: retention: %w", err)
	}
	deletions, err := s.Deletions()
	if err != nil {
		return 0, fmt.Errorf("store: retention: %w", err)
	}
	for _, tenant := range tenants {
		stones := deletions[tenant].Tombstones
		cutoff := int64(math.MinInt64)
		if keep := retention(tenant); keep > 0 {
			cutoff = now.Add(-keep).UnixMilli()
		} else if len(stones) == 0 {
			continue
		}
		// Cold partitions go first: the series walk may delete the
		// tenant's bucket, and the chunks in them with it, uncounted.
		err := s.db.Update(func(tx *bbolt.Tx) error {
			tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
			if tb == nil {
				return nil
			}
			dropped, err := dropCold(tb, cutoff)
			deletedChunks += dropped
			s.m.retentionDeleted.Add(float64(dropped))
			return err
		})
		if err == nil && len(stones) > 0 {
			var cleaned int
			cleaned, err = s.applyStonesToCold(tenant, stones)
			deletedChunks += cleaned
			s.m.retentionDeleted.Add(float64(cleaned))
		}
		if err != nil {
			return deletedChunks, fmt.Errorf("store: retention tenant %q: %w", tenant, err)
		}
		n, err := s.retainTenant(tenant, cutoff, stones)
		deletedChunks += n
		s.m.retentionDeleted.Add(float64(n))
		if err == nil && cutoff > math.MinInt64 {
			err = s.db.Update(func(tx *bbolt.Tx) error {
				if tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant)); tb != nil {
					return dropActive(tb, cutoff)
				}
				return nil
			})
		}
		if err != nil {
			return deletedChunks, fmt.Errorf("store: retention tenant %q: %w", tenant, err)
		}
	}
	s.logger.Debug("store retention applied", "deleted_chunks", deletedChunks)
	return deletedChunks, nil
}

// retainTenant applies the cutoff and stones to the tenant's series: to
// those retentionCandidates names, or to every series when only a walk of
// all can tell. A walk of all that completes with a cutoff past
// unlisted_before clears it: the chunks the active index does not list
// are gone.
func (s *Store) retainTenant(tenant string, cutoff int64, stones []chunks.Tombstone) (int, error) {
	var (
		ids []uint64
		all bool
	)
	if cutoff > math.MinInt64 {
		// From here on, Puts note the oldest chunk they write: one ending
		// before the cutoff after its series was visited keeps its
		// partition from dropActive (retention_late). A Put between this
		// and the read of the candidates is both noted and listed.
		err := s.db.Update(func(tx *bbolt.Tx) error {
			if tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant)); tb != nil {
				return tb.Put(keyRetentionLate, timeKey(math.MaxInt64))
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
		if tb == nil {
			return nil
		}
		var err error
		ids, all, err = retentionCandidates(tb, cutoff, stones)
		return err
	})
	if err != nil {
		return 0, err
	}
	if !all {
		s.m.retentionVisited.WithLabelValues("listed").Add(float64(len(ids)))
	}
	deleted := 0
	for from := uint64(0); ; {
		var res batchResult
		err := s.db.Update(func(tx *bbolt.Tx) error {
			var err error
			res, err = retainBatch(tx, tenant, cutoff, stones, from, ids, all)
			return err
		})
		if err != nil {
			return deleted, err
		}
		deleted += res.deleted
		if all {
			s.m.retentionVisited.WithLabelValues("all").Add(float64(res.visited))
		}
		if res.done {
			break
		}
		from = res.next
	}
	if !all {
		return deleted, nil
	}
	return deleted, s.db.Update(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
		if tb == nil {
			return nil
		}
		// A damaged value is never passed: the walk of every series goes on.
		if v := tb.Get(keyUnlistedBefore); len(v) != 8 || unsortableTime(binary.BigEndian.Uint64(v)) > cutoff {
			return nil
		}
		return tb.Delete(keyUnlistedBefore)
	})
}

// retentionCandidates returns the sorted IDs of the series a retention
// pass with cutoff and stones may delete chunks of: those the active
// index lists in a partition starting before cutoff (a chunk is listed in
// the partition of its MaxTime) or as wide, and those the postings give
// for a stone's matchers. all is set when that is not enough or not
// cheaper: the tenant may hold chunks stored before the active index that
// it does not list (unlisted_before; stones alone use the postings, which
// list every series), a list is damaged, a stone's matchers all match the
// empty value, or there are more than retentionCandidatesMax of them (the
// first pass after retention is enabled or shortened reads the whole
// history: walking every series costs no memory).
func retentionCandidates(tb *bbolt.Bucket, cutoff int64, stones []chunks.Tombstone) (ids []uint64, all bool, err error) {
	active, postings := tb.Bucket(bucketActive), tb.Bucket(bucketPostings)
	if active == nil || postings == nil || cutoff > math.MinInt64 && tb.Get(keyUnlistedBefore) != nil {
		return nil, true, nil
	}
	// add merges a sorted list into ids; false: more than the bound (or
	// more listings read than a walk of every series would visit several
	// times over), walk every series instead.
	var part, spare []uint64
	read := 0
	add := func(set idSet) (bool, error) {
		var complete bool
		var err error
		part, complete, err = set.appendTo(part[:0], retentionCandidatesMax)
		if err != nil || !complete {
			return false, err
		}
		read += len(part)
		ids, spare = mergeUnique(spare[:0], ids, part), ids
		return len(ids) <= retentionCandidatesMax && read <= 8*retentionCandidatesMax, nil
	}
	if cutoff > math.MinInt64 {
		c := active.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v != nil {
				return nil, true, nil // damage where a list should be
			}
			if len(k) == 8 && unsortableTime(binary.BigEndian.Uint64(k)) >= cutoff && !bytes.Equal(k, bucketWide) {
				continue
			}
			if ok, err := add(idSet{active.Bucket(k), nil}); err != nil || !ok {
				// A damaged list leaves the walk of every series too.
				return nil, err == nil || errors.Is(err, errCorrupt), ignoreTooMany(err)
			}
		}
	}
	r := &reader{postings: postings}
	for _, t := range stones {
		p, everyOne, err := r.candidates(t.Matchers)
		if err != nil || everyOne {
			// A damaged posting list leaves the walk of every series.
			return nil, everyOne || errors.Is(err, errCorrupt), ignoreTooMany(err)
		}
		if ids = mergeUnique(nil, ids, p); len(ids) > retentionCandidatesMax {
			return nil, true, nil
		}
	}
	return ids, false, nil
}

// mergeUnique appends the sorted union of two sorted lists to out, which
// must not share memory with them.
func mergeUnique(out, a, b []uint64) []uint64 {
	out = slices.Grow(out, len(a)+len(b))
	for i, j := 0, 0; i < len(a) || j < len(b); {
		switch {
		case j == len(b) || i < len(a) && a[i] < b[j]:
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// retentionCandidatesMax bounds the IDs a retention pass collects (8 MiB
// of them, about four times that while merging).
const retentionCandidatesMax = 1 << 20

type batchResult struct {
	deleted int
	visited int
	next    uint64 // first series ID of the next batch
	done    bool
}

// retainBatch applies retention and stones to the series of tenant from ID
// from on (every series with all, else those of ids), until the batch
// limits are reached.
func retainBatch(tx *bbolt.Tx, tenant string, cutoff int64, stones []chunks.Tombstone, from uint64, ids []uint64, all bool) (batchResult, error) {
	tenants := tx.Bucket(bucketTenants)
	if tenants.Bucket([]byte(tenant)) == nil {
		return batchResult{done: true}, nil
	}
	w, err := openTenantWriter(tx, tenant)
	if err != nil {
		return batchResult{}, err
	}
	var (
		res     batchResult
		emptied [][]byte // series keys followed by their encoded labels
	)
	next := seriesWalk(w.series, from, ids, all)
	k, v := next()
	for ; k != nil; k, v = next() {
		if len(k) != idLen {
			return batchResult{}, fmt.Errorf("series key of %d bytes: %w", len(k), errCorrupt)
		}
		id := binary.BigEndian.Uint64(k)
		if res.deleted >= retentionBatchChunks || res.visited >= retentionBatchSeries {
			res.next = id
			break
		}
		n, remaining, err := w.deleteChunksBefore(id, cutoff)
		if err != nil {
			return batchResult{}, fmt.Errorf("series %d: %w", id, err)
		}
		if remaining && len(stones) > 0 {
			var m int
			if m, remaining, err = w.deleteTombstoned(id, v, stones); err != nil {
				return batchResult{}, fmt.Errorf("series %d: %w", id, err)
			}
			n += m
		}
		remaining = remaining || w.coldRemains(id, cutoff)
		res.deleted += n
		res.visited++
		if !remaining {
			emptied = append(emptied, append(bytes.Clone(k), v...))
		}
	}
	res.done = k == nil
	// Deleting from the series bucket while its cursor walks it would
	// invalidate the cursor, so emptied series go after the walk.
	for _, e := range emptied {
		if err := w.deleteSeries(binary.BigEndian.Uint64(e), e[idLen:]); err != nil {
			return batchResult{}, err
		}
		if err := w.forgetCold(binary.BigEndian.Uint64(e)); err != nil {
			return batchResult{}, err
		}
	}
	if first, _ := w.series.Cursor().First(); res.done && first == nil {
		// The tenant's next bucket numbers its series after these.
		seq := binary.BigEndian.AppendUint64(nil, w.series.Sequence())
		if err := tx.Bucket(bucketRetired).Put([]byte(tenant), seq); err != nil {
			return res, err
		}
		return res, tenants.DeleteBucket([]byte(tenant))
	}
	return res, nil
}

// seriesWalk returns the series from ID from on, one key and value per
// call (nil after the last): every series with all, else those of ids
// that still exist. Deleting from the series bucket during the walk would
// invalidate its cursor, so retainBatch deletes after it.
func seriesWalk(series *bbolt.Bucket, from uint64, ids []uint64, all bool) func() (k, v []byte) {
	if all {
		c := series.Cursor()
		first := true
		return func() ([]byte, []byte) {
			if first {
				first = false
				return c.Seek(idKey(from))
			}
			return c.Next()
		}
	}
	i, _ := slices.BinarySearch(ids, from)
	return func() ([]byte, []byte) {
		for ; i < len(ids); i++ {
			k := idKey(ids[i])
			if v := series.Get(k); v != nil {
				i++
				return k, v
			}
		}
		return nil, nil
	}
}

// deleteChunksBefore deletes the chunks of series id with MaxTime before
// cutoff and reports whether the series keeps any chunk.
func (w *tenantWriter) deleteChunksBefore(id uint64, cutoff int64) (deleted int, remaining bool, err error) {
	inSeries := func(k []byte) bool {
		return len(k) == chunkKeyLen && binary.BigEndian.Uint64(k) == id
	}
	var old [][]byte
	c := w.chunks.Cursor()
	k, _ := c.Seek(chunkKey(id, math.MinInt64))
	for ; k != nil && inSeries(k) && chunkKeyMaxTime(k) < cutoff; k, _ = c.Next() {
		old = append(old, bytes.Clone(k))
	}
	remaining = k != nil && inSeries(k)
	for _, k := range old {
		if err := w.chunks.Delete(k); err != nil {
			return 0, false, err
		}
	}
	return len(old), remaining, nil
}

// deleteTombstoned deletes the chunks of series id (labels raw) that lie
// wholly inside a tombstone selecting it, and reports whether the series
// keeps any chunk. A chunk a tombstone only cuts into is kept: its other
// samples are alive, and readers hide the deleted ones.
func (w *tenantWriter) deleteTombstoned(id uint64, raw []byte, stones []chunks.Tombstone) (deleted int, remaining bool, err error) {
	pairs, err := decodeLabels(nil, string(raw))
	if err != nil {
		return 0, false, err
	}
	ls := labels.New(pairs...)
	var old [][]byte
	for _, t := range stones {
		if !t.Matches(ls) {
			continue
		}
		// A chunk inside [MinTime, MaxTime] ends in it too: seek to the
		// first one ending at or after MinTime.
		c := w.chunks.Cursor()
		for k, v := c.Seek(chunkKey(id, t.MinTime)); len(k) == chunkKeyLen && binary.BigEndian.Uint64(k) == id && chunkKeyMaxTime(k) <= t.MaxTime; k, v = c.Next() {
			if len(v) < 8 {
				return 0, false, fmt.Errorf("chunk value of %d bytes: %w", len(v), errCorrupt)
			}
			if unsortableTime(binary.BigEndian.Uint64(v)) >= t.MinTime {
				old = append(old, bytes.Clone(k))
			}
		}
	}
	for _, k := range old {
		// Two tombstones may cover the same chunk; deleting a deleted key
		// is a no-op in bbolt, and it is counted once.
		if w.chunks.Get(k) == nil {
			continue
		}
		if err := w.chunks.Delete(k); err != nil {
			return 0, false, err
		}
		deleted++
	}
	k, _ := w.chunks.Cursor().Seek(chunkKey(id, math.MinInt64))
	return deleted, len(k) == chunkKeyLen && binary.BigEndian.Uint64(k) == id, nil
}

// deleteSeries removes a series and every index entry pointing at it.
func (w *tenantWriter) deleteSeries(id uint64, raw []byte) error {
	pairs, err := decodeLabels(nil, string(raw))
	if err != nil {
		return fmt.Errorf("series %d: %w", id, err)
	}
	for _, l := range pairs {
		if err := (idSet{w.postings, postingValuePrefix(l.Name, l.Value)}).remove(id); err != nil {
			return fmt.Errorf("series %d: %w", id, err)
		}
	}
	if err := w.byHash.Delete(seriesHashKey(raw, id)); err != nil {
		return fmt.Errorf("series %d: %w", id, err)
	}
	// Partitions' lists go with their partitions; the wide list would
	// only grow.
	if wide := w.active.Bucket(bucketWide); wide != nil {
		if err := (idSet{wide, nil}).remove(id); err != nil {
			return fmt.Errorf("series %d: %w", id, err)
		}
	}
	if err := w.series.Delete(idKey(id)); err != nil {
		return fmt.Errorf("series %d: %w", id, err)
	}
	return nil
}
