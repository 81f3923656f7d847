package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
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

func (s *Store) retainTenant(tenant string, cutoff int64, stones []chunks.Tombstone) (int, error) {
	deleted := 0
	for from := uint64(0); ; {
		var res batchResult
		err := s.db.Update(func(tx *bbolt.Tx) error {
			var err error
			res, err = retainBatch(tx, tenant, cutoff, stones, from)
			return err
		})
		if err != nil {
			return deleted, err
		}
		deleted += res.deleted
		if res.done {
			return deleted, nil
		}
		from = res.next
	}
}

type batchResult struct {
	deleted int
	next    uint64 // first series ID of the next batch
	done    bool
}

// retainBatch applies retention and stones to the series of tenant from ID
// from on, until the batch limits are reached.
func retainBatch(tx *bbolt.Tx, tenant string, cutoff int64, stones []chunks.Tombstone, from uint64) (batchResult, error) {
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
		visited int
	)
	c := w.series.Cursor()
	k, v := c.Seek(idKey(from))
	for ; k != nil; k, v = c.Next() {
		if len(k) != idLen {
			return batchResult{}, fmt.Errorf("series key of %d bytes: %w", len(k), errCorrupt)
		}
		id := binary.BigEndian.Uint64(k)
		if res.deleted >= retentionBatchChunks || visited >= retentionBatchSeries {
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
		visited++
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
	if err := w.series.Delete(idKey(id)); err != nil {
		return fmt.Errorf("series %d: %w", id, err)
	}
	return nil
}
