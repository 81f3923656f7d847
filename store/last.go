package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.etcd.io/bbolt"
)

// LastSamples calls fn with the newest stored sample of each series that
// has one, k being its index in series; series without stored chunks are
// skipped. One read transaction covers the whole slice, so that a caller
// with many series (an ingester restoring what it forgot) pays for one.
// Empty label values are ignored, as Put ignores them.
func (s *Store) LastSamples(tenant string, series []labels.Labels, fn func(k int, s Sample)) error {
	err := s.viewByLabels(tenant, func(r *reader, byHash *bbolt.Bucket) error {
		for k, ls := range series {
			id, ok, err := r.seriesID(byHash, ls)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			c, ok, err := r.lastChunk(id)
			if err != nil {
				return fmt.Errorf("series %s: %w", ls, err)
			}
			if !ok {
				continue
			}
			smp, ok, err := newestSample(c)
			if err != nil {
				return fmt.Errorf("series %s: %w", ls, err)
			}
			if ok {
				fn(k, smp)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: last samples tenant %q: %w", tenant, err)
	}
	return nil
}

// SampleAt returns the sample series ls has stored at timestamp t. Where
// overlapping chunks disagree, the chunk with the smallest MaxTime wins.
func (s *Store) SampleAt(tenant string, ls labels.Labels, t int64) (smp Sample, found bool, err error) {
	err = s.viewByLabels(tenant, func(r *reader, byHash *bbolt.Bucket) error {
		id, ok, err := r.seriesID(byHash, ls)
		if err != nil || !ok {
			return err
		}
		limit := t + r.maxSpan
		if t > math.MaxInt64-r.maxSpan {
			limit = math.MaxInt64
		}
		var candidates []Chunk
		for k, val := r.chunkCursor.Seek(chunkKey(id, t)); k != nil; k, val = r.chunkCursor.Next() {
			if len(k) != chunkKeyLen {
				return fmt.Errorf("chunk key of %d bytes: %w", len(k), errCorrupt)
			}
			if binary.BigEndian.Uint64(k) != id || chunkKeyMaxTime(k) > limit {
				break
			}
			minTime, err := chunkValueMinTime(val)
			if err != nil {
				return fmt.Errorf("series %d: %w", id, err)
			}
			if minTime > t {
				continue
			}
			c, err := chunkInTx(k, val)
			if err != nil {
				return fmt.Errorf("series %d: %w", id, err)
			}
			candidates = append(candidates, c)
		}
		if r.cold != nil {
			r.cold.each(id, t, limit, func(rec coldRecord) bool {
				if slices.ContainsFunc(candidates, func(c Chunk) bool { return c.MaxTime == rec.maxTime }) {
					return true // the chunks bucket's merge of both answers
				}
				if c, err := chunkInTx(chunkKey(id, rec.maxTime), rec.value); err == nil && c.MinTime <= t {
					candidates = append(candidates, c)
				}
				return true
			})
		}
		slices.SortStableFunc(candidates, func(a, b Chunk) int { return cmp.Compare(a.MaxTime, b.MaxTime) })
		for _, c := range candidates {
			if smp, found, err = sampleAt(c, t); found || err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Sample{}, false, fmt.Errorf("store: sample at %d tenant %q: %w", t, tenant, err)
	}
	return smp, found, nil
}

// viewByLabels is view with the tenant's series_by_hash bucket, which
// queries by matchers do not need.
func (s *Store) viewByLabels(tenant string, fn func(r *reader, byHash *bbolt.Bucket) error) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		r, err := openReader(tx, tenant, s.coldEnv(tenant))
		if err != nil || r == nil {
			return err
		}
		byHash := tx.Bucket(bucketTenants).Bucket([]byte(tenant)).Bucket(bucketSeriesByHash)
		if byHash == nil {
			return fmt.Errorf("tenant bucket without %s: %w", bucketSeriesByHash, errCorrupt)
		}
		return fn(r, byHash)
	})
}

// seriesID looks a series up by its labels.
func (r *reader) seriesID(byHash *bbolt.Bucket, ls labels.Labels) (uint64, bool, error) {
	return lookupSeries(byHash, r.series, appendLabels(nil, ls.WithoutEmpty()))
}

// lastChunk returns the chunk of series id with the greatest MaxTime, which
// holds its newest sample. bbolt memory is not copied: the chunk is valid
// only within the transaction.
func (r *reader) lastChunk(id uint64) (Chunk, bool, error) {
	var k, v []byte
	if next, _ := r.chunkCursor.Seek(idKey(id + 1)); next == nil {
		k, v = r.chunkCursor.Last()
	} else {
		k, v = r.chunkCursor.Prev()
	}
	hot := len(k) == chunkKeyLen && binary.BigEndian.Uint64(k) == id
	if r.cold != nil {
		if rec, ok := r.cold.newest(id); ok && (!hot || rec.maxTime > chunkKeyMaxTime(k)) {
			c, err := chunkInTx(chunkKey(id, rec.maxTime), rec.value)
			return c, err == nil, err
		}
	}
	if !hot {
		return Chunk{}, false, nil
	}
	c, err := chunkInTx(k, v)
	return c, err == nil, err
}

// chunkInTx is decodeChunk without the copy: valid only within the
// transaction, for a caller that only reads samples out of it.
func chunkInTx(k, v []byte) (Chunk, error) {
	minTime, err := chunkValueMinTime(v)
	if err != nil {
		return Chunk{}, err
	}
	return Chunk{MinTime: minTime, MaxTime: chunkKeyMaxTime(k), Encoding: chunkenc.Encoding(v[8]), Data: v[chunkHeaderLen:]}, nil
}

// newestSample decodes the chunk's last sample. Decoding copies, so the
// samples hold no bbolt memory. Every sample is decoded:
// histogram chunks cannot be read from the end, and XOR chunks have no
// index to seek by.
func newestSample(c Chunk) (Sample, bool, error) {
	smps, err := c.Samples()
	if err != nil || len(smps) == 0 {
		return Sample{}, false, err
	}
	return smps[len(smps)-1], true, nil
}

func sampleAt(c Chunk, t int64) (Sample, bool, error) {
	smps, err := c.Samples()
	if err != nil {
		return Sample{}, false, err
	}
	k, found := slices.BinarySearchFunc(smps, t, func(s Sample, t int64) int { return cmp.Compare(s.T, t) })
	if !found {
		return Sample{}, false, nil
	}
	return smps[k], true, nil
}
