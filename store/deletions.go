package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"go.etcd.io/bbolt"

	"github.com/orrery/orrery/ingester/chunks"
)

// AddTombstone stores t under the tenant, durably when it returns.
func (s *Store) AddTombstone(tenant string, t chunks.Tombstone) error {
	if t.MinTime > t.MaxTime {
		return fmt.Errorf("store: tombstone of tenant %q: range [%d, %d] is empty", tenant, t.MinTime, t.MaxTime)
	}
	v, err := encodeTombstone(t)
	if err != nil {
		return fmt.Errorf("store: tombstone of tenant %q: %w", tenant, err)
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		tb, err := tx.Bucket(bucketDeletions).CreateBucketIfNotExists([]byte(tenant))
		if err != nil {
			return err
		}
		stones, err := tb.CreateBucketIfNotExists(bucketTombstones)
		if err != nil {
			return err
		}
		seq, err := stones.NextSequence()
		if err != nil {
			return err
		}
		return stones.Put(idKey(seq), v)
	})
	if err != nil {
		return fmt.Errorf("store: tombstone of tenant %q: %w", tenant, err)
	}
	return nil
}

// RaiseGeneration sets the tenant's deletion generation to gen if higher.
func (s *Store) RaiseGeneration(tenant string, gen int64) (int64, error) {
	if gen < 0 || gen >= chunks.MaxGeneration {
		return 0, fmt.Errorf("store: deletion generation of tenant %q: %d is out of range", tenant, gen)
	}
	var cur int64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		tb, err := tx.Bucket(bucketDeletions).CreateBucketIfNotExists([]byte(tenant))
		if err != nil {
			return err
		}
		// A damaged value (-1) is replaced by any raise.
		cur = decodeGeneration(tb.Get(keyGeneration))
		if gen <= cur {
			return nil
		}
		cur = gen
		return tb.Put(keyGeneration, binary.BigEndian.AppendUint64(nil, uint64(gen)))
	})
	if err != nil {
		return 0, fmt.Errorf("store: deletion generation of tenant %q: %w", tenant, err)
	}
	return cur, nil
}

// decodeGeneration reads a stored generation; a damaged one reads as -1,
// unknown: the ingester refuses to answer it, so caches bypass it until
// the next deletion writes a new one. (Reading it as the highest would pin
// every cache key there for good: no later deletion could raise it.)
func decodeGeneration(v []byte) int64 {
	switch {
	case v == nil:
		return 0
	case len(v) != 8 || binary.BigEndian.Uint64(v) >= chunks.MaxGeneration:
		return -1
	}
	return int64(binary.BigEndian.Uint64(v))
}

// Deletions returns every tenant's tombstones and generation. A tombstone
// that does not decode is an error, not a skip: skipping it would bring
// deleted samples back.
func (s *Store) Deletions() (map[string]chunks.Deletions, error) {
	out := map[string]chunks.Deletions{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketDeletions).ForEachBucket(func(tenant []byte) error {
			tb := tx.Bucket(bucketDeletions).Bucket(tenant)
			d := chunks.Deletions{Generation: decodeGeneration(tb.Get(keyGeneration))}
			if stones := tb.Bucket(bucketTombstones); stones != nil {
				err := stones.ForEach(func(k, v []byte) error {
					t, err := decodeTombstone(v)
					if err != nil {
						return fmt.Errorf("tenant %q tombstone %x: %w", tenant, k, err)
					}
					d.Tombstones = append(d.Tombstones, t)
					return nil
				})
				if err != nil {
					return err
				}
			}
			out[string(tenant)] = d
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: deletions: %w", err)
	}
	return out, nil
}

// DropTombstones deletes the tenant's tombstones that no stored chunk
// can hold a sample of: those ending before cutoff by more than the
// tenant's max_chunk_span, since retention deletes every chunk that ends
// before the cutoff. Whether memory still holds such samples is the
// caller's to know (it passes an earlier cutoff then).
func (s *Store) DropTombstones(tenant string, cutoff int64) (dropped int, err error) {
	err = s.db.Update(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketDeletions).Bucket([]byte(tenant))
		if tb == nil || tb.Bucket(bucketTombstones) == nil {
			return nil
		}
		stones := tb.Bucket(bucketTombstones)
		var span int64
		if data := tx.Bucket(bucketTenants).Bucket([]byte(tenant)); data != nil {
			span = readMaxSpan(data)
		}
		limit := cutoff - span
		if limit > cutoff { // overflowed: keep them all
			return nil
		}
		var drop [][]byte
		err := stones.ForEach(func(k, v []byte) error {
			if len(v) >= 16 && unsortableTime(binary.BigEndian.Uint64(v[8:16])) < limit {
				drop = append(drop, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := stones.Delete(k); err != nil {
				return err
			}
		}
		dropped = len(drop)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: drop tombstones of tenant %q: %w", tenant, err)
	}
	return dropped, nil
}

// encodeTombstone is st(MinTime) | st(MaxTime) | uvarint count | matchers,
// each type (1 B) | uvarint len(name) | name | uvarint len(value) | value.
func encodeTombstone(t chunks.Tombstone) ([]byte, error) {
	b := binary.BigEndian.AppendUint64(nil, sortableTime(t.MinTime))
	b = binary.BigEndian.AppendUint64(b, sortableTime(t.MaxTime))
	b = binary.AppendUvarint(b, uint64(len(t.Matchers)))
	for _, m := range t.Matchers {
		if m.Type < labels.MatchEqual || m.Type > labels.MatchNotRegexp {
			return nil, fmt.Errorf("matcher %s: unknown type %d", m, m.Type)
		}
		b = append(b, byte(m.Type))
		b = appendString(b, m.Name)
		b = appendString(b, m.Value)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

var errBadTombstone = errors.New("bad tombstone")

func decodeTombstone(v []byte) (chunks.Tombstone, error) {
	var t chunks.Tombstone
	if len(v) < 16 {
		return t, fmt.Errorf("%w: %d bytes", errBadTombstone, len(v))
	}
	t.MinTime = unsortableTime(binary.BigEndian.Uint64(v))
	t.MaxTime = unsortableTime(binary.BigEndian.Uint64(v[8:]))
	v = v[16:]
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)) {
		return t, fmt.Errorf("%w: matcher count", errBadTombstone)
	}
	v = v[k:]
	str := func() (string, bool) {
		l, k := binary.Uvarint(v)
		if k <= 0 || l > uint64(len(v)-k) {
			return "", false
		}
		s := string(v[k : k+int(l)])
		v = v[k+int(l):]
		return s, true
	}
	for range n {
		if len(v) == 0 || v[0] > byte(labels.MatchNotRegexp) {
			return t, fmt.Errorf("%w: matcher type", errBadTombstone)
		}
		typ := labels.MatchType(v[0])
		v = v[1:]
		name, ok1 := str()
		value, ok2 := str()
		if !ok1 || !ok2 {
			return t, fmt.Errorf("%w: matcher string", errBadTombstone)
		}
		m, err := labels.NewMatcher(typ, name, value)
		if err != nil {
			return t, fmt.Errorf("%w: %w", errBadTombstone, err)
		}
		t.Matchers = append(t.Matchers, m)
	}
	if len(v) != 0 || t.MinTime > t.MaxTime {
		return t, fmt.Errorf("%w: trailing bytes or empty range", errBadTombstone)
	}
	return t, nil
}
