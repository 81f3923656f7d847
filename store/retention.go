package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"go.etcd.io/bbolt"
)

// A retention pass runs in many small write transactions rather than one
// per tenant, so that Put waits for bbolt's writer lock for at most one
// batch and the pages a transaction dirties stay bounded.
const (
	retentionBatchChunks = 50_000
	retentionBatchSeries = 10_000
)

// ApplyRetention deletes each tenant's chunks whose MaxTime is before now
// minus its retention (in milliseconds), then the series left without
// chunks and the tenants left without series; a tenant whose retention is
// 0 is left alone. A failure leaves earlier batches deleted, and the next
// pass resumes the work.
func (s *Store) ApplyRetention(now time.Time, retention func(tenant string) time.Duration) (deletedChunks int, err error) {
	tenants, err := s.tenants()
	if err != nil {
		return 0, fmt.Errorf("store: retention: %w", err)
	}
	for _, tenant := range tenants {
		keep := retention(tenant)
		if keep <= 0 {
			continue
		}
		cutoff := now.Add(-keep).UnixMilli()
		n, err := s.retainTenant(tenant, cutoff)
		deletedChunks += n
		s.m.retentionDeleted.Add(float64(n))
		if err != nil {
			return deletedChunks, fmt.Errorf("store: retention tenant %q: %w", tenant, err)
		}
	}
	if err := s.retainTombstones(now, retention); err != nil {
		return deletedChunks, fmt.Errorf("store: retention of tombstones: %w", err)
	}
	s.logger.Debug("store retention applied", "deleted_chunks", deletedChunks)
	return deletedChunks, nil
}

func (s *Store) retainTenant(tenant string, cutoff int64) (int, error) {
	deleted := 0
	for from := uint64(0); ; {
		var res batchResult
		err := s.db.Update(func(tx *bbolt.Tx) error {
			var err error
			res, err = retainBatch(tx, tenant, cutoff, from)
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

// retainBatch applies retention to the series of tenant from ID from on,
// until the batch limits are reached.
func retainBatch(tx *bbolt.Tx, tenant string, cutoff int64, from uint64) (batchResult, error) {
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
	}
	if first, _ := w.series.Cursor().First(); res.done && first == nil {
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

// deleteSeries removes a series and every index entry pointing at it.
func (w *tenantWriter) deleteSeries(id uint64, raw []byte) error {
	pairs, err := decodeLabels(nil, string(raw))
	if err != nil {
		return fmt.Errorf("series %d: %w", id, err)
	}
	for _, l := range pairs {
		if err := w.postings.Delete(postingKey(l.Name, l.Value, id)); err != nil {
			return fmt.Errorf("series %d: %w", id, err)
		}
	}
	if err := w.byLabels.Delete(raw); err != nil {
		return fmt.Errorf("series %d: %w", id, err)
	}
	if err := w.series.Delete(idKey(id)); err != nil {
		return fmt.Errorf("series %d: %w", id, err)
	}
	return nil
}
