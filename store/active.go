package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"

	"go.etcd.io/bbolt"
)

// The active index lists, per 2-hour partition of time, the series with a
// chunk overlapping it, so that a select over a recent range visits the
// series active then instead of every series the tenant ever had (issue
// 12's churn). It is a first step towards time partitions: chunks and the
// rest of the index are not partitioned yet.
const (
	activeWidth = int64(2 * 3600 * 1000)
	// maxActivePartitions bounds the partitions a chunk is listed in (a
	// longer chunk is listed as wide, a candidate of every select) and
	// the partitions a select reads the index for (a longer range uses
	// the postings alone): a week.
	maxActivePartitions = 84
)

// saneTime bounds the times the index lists (about 146 million years
// either side of 1970): a chunk or a select reaching past it is wide, so
// partition arithmetic never overflows.
const saneTime = int64(1) << 62

// partitionOf returns the start of the partition holding t, for |t| <=
// saneTime.
func partitionOf(t int64) int64 {
	m := t % activeWidth
	if m < 0 {
		m += activeWidth
	}
	return t - m
}

// partitions returns the first and last partition [mint, maxt] overlaps,
// and whether they are within saneTime and at most maxActivePartitions.
func partitions(mint, maxt int64) (first, last int64, ok bool) {
	if mint < -saneTime || maxt > saneTime || mint > maxt {
		return 0, 0, false
	}
	first, last = partitionOf(mint), partitionOf(maxt)
	return first, last, (last-first)/activeWidth < maxActivePartitions
}

var bucketWide = []byte("wide")

// timeKey is a time as stored in keys and values: st(t), 8 bytes.
func timeKey(t int64) []byte { return binary.BigEndian.AppendUint64(nil, sortableTime(t)) }

// registerActive lists series id in the active index of every partition
// [minT, maxT] overlaps.
func (w *tenantWriter) registerActive(id uint64, minT, maxT int64) error {
	first, last, ok := partitions(minT, maxT)
	if !ok {
		return w.listActive(bucketWide, id)
	}
	for p := first; p <= last; p += activeWidth {
		if err := w.listActive(timeKey(p), id); err != nil {
			return err
		}
	}
	return nil
}

func (w *tenantWriter) listActive(name []byte, id uint64) error {
	b, err := w.active.CreateBucketIfNotExists(name)
	if err != nil {
		return err
	}
	// A partition lists its series as their chunks in it are first
	// flushed, in no order of ID: bbolt's default fill suits random
	// inserts best (TestAudit3FillActiveStore).
	b.FillPercent = bbolt.DefaultFillPercent
	return idSet{b, nil}.add(id)
}

// errTooMany ends a walk of the active index that lists too many series
// to be worth it.
var errTooMany = errors.New("too many active series")

// activeIDs returns the sorted IDs of the series listed in the partitions
// [mint, maxt] overlaps, and the wide ones: every series with a chunk
// overlapping [mint, maxt], and perhaps a few more (their chunks since
// deleted). ok is false when the index cannot answer (the range is longer
// than maxActivePartitions, or reaches before activeFrom: data stored
// before the index existed) or would not pay: more than limit series are
// listed.
func (r *reader) activeIDs(mint, maxt int64, limit int) (ids []uint64, ok bool, err error) {
	first, last, ok := partitions(mint, maxt)
	if r.active == nil || !ok || first < r.activeFrom {
		return nil, false, nil
	}
	add := func(b *bbolt.Bucket) error {
		if b == nil {
			return nil
		}
		var complete bool
		ids, complete, err = idSet{b, nil}.appendTo(ids, limit)
		if err == nil && !complete {
			return errTooMany
		}
		return err
	}
	// Anything but a bucket where the index keeps its lists, or a list
	// that does not decode, is damage: the postings answer instead.
	c := r.active.Cursor()
	lastKey := timeKey(last)
	for k, v := c.Seek(timeKey(first)); k != nil && bytes.Compare(k, lastKey) <= 0; k, v = c.Next() {
		if bytes.Equal(k, bucketWide) {
			continue
		}
		if v != nil || len(k) != 8 {
			return nil, false, nil
		}
		if err := add(r.active.Bucket(k)); err != nil {
			return nil, false, ignoreTooMany(err)
		}
	}
	if r.active.Get(bucketWide) != nil {
		return nil, false, nil
	}
	if err := add(r.active.Bucket(bucketWide)); err != nil {
		return nil, false, ignoreTooMany(err)
	}
	slices.Sort(ids)
	return slices.Compact(ids), true, nil
}

// ignoreTooMany turns the ends of a walk that make the postings answer
// instead (too many series, a damaged list) into no error.
func ignoreTooMany(err error) error {
	if errors.Is(err, errTooMany) || errors.Is(err, errCorrupt) {
		return nil
	}
	return err
}

// dropActive deletes the active index's partitions that end before
// cutoff, and moves active_from past them: a chunk retention kept because
// it ends after the cutoff may start in one of them, and a select reaching
// there uses the postings, which still list it.
func dropActive(tb *bbolt.Bucket, cutoff int64) error {
	// A chunk a Put or compaction wrote during the pass, ending before
	// the cutoff, may belong to a series the pass had already visited:
	// its partition stays listed for the next pass to visit. Without the
	// key, armed when the pass began, nothing is known (the tenant's bucket
	// was deleted and created again meanwhile, or the value is damaged),
	// and nothing is dropped.
	v := tb.Get(keyRetentionLate)
	switch {
	case len(v) != 8:
		cutoff = math.MinInt64
	case unsortableTime(binary.BigEndian.Uint64(v)) < cutoff:
		cutoff = partitionOf(max(unsortableTime(binary.BigEndian.Uint64(v)), -saneTime))
	}
	if v != nil {
		if err := tb.Delete(keyRetentionLate); err != nil {
			return err
		}
	}
	active := tb.Bucket(bucketActive)
	if active == nil || cutoff < -saneTime || cutoff > saneTime {
		return nil
	}
	if from := partitionOf(cutoff); from > readActiveFrom(tb) {
		if err := setActiveFrom(tb, from); err != nil {
			return err
		}
	}
	var old [][]byte
	c := active.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil || len(k) != 8 {
			continue
		}
		// Partitions are within saneTime: start+activeWidth cannot overflow.
		if start := unsortableTime(binary.BigEndian.Uint64(k)); start+activeWidth > cutoff {
			break
		}
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := active.DeleteBucket(k); err != nil {
			return err
		}
	}
	return nil
}

// readActiveFrom returns the first partition the active index is complete
// from: MinInt64 for a tenant created with it, later for one whose chunks
// were stored before it, or whose older partitions retention dropped. An
// absent or damaged value reads as MaxInt64: the index is not used.
func readActiveFrom(tb *bbolt.Bucket) int64 {
	v := tb.Get(keyActiveFrom)
	if len(v) != 8 {
		return math.MaxInt64
	}
	return unsortableTime(binary.BigEndian.Uint64(v))
}

func setActiveFrom(tb *bbolt.Bucket, from int64) error {
	return tb.Put(keyActiveFrom, binary.BigEndian.AppendUint64(nil, sortableTime(from)))
}
