package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.etcd.io/bbolt"

	"github.com/orrery/orrery/ingester/chunks"
)

// Put stores chunks of many series of one tenant in one transaction, so one
// fsync covers the whole batch. Series are added to the index on first
// sight; series without chunks are skipped. A chunk is keyed by its series
// and MaxTime, and Put never loses a sample already stored under that key:
// the same bytes again are a no-op (re-flushing after a crash, a replica's
// identical copy handed over), and a different chunk there is merged with
// the stored one (see mergeChunk). Labels with empty values are dropped, as Prometheus treats them
// as absent.
func (s *Store) Put(tenant string, batch []SeriesChunks) error {
	start := time.Now()
	defer func() { s.m.putDuration.Observe(time.Since(start).Seconds()) }()
	if tenant == "" {
		return errors.New("store: put: empty tenant")
	}
	prepared, err := prepareBatch(batch)
	if err != nil {
		return fmt.Errorf("store: put tenant %q: %w", tenant, err)
	}
	if len(prepared) == 0 {
		return nil
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		w, err := openTenantWriter(tx, tenant)
		if err != nil {
			return err
		}
		for _, ps := range prepared {
			if err := w.put(ps); err != nil {
				return err
			}
		}
		return w.finish()
	})
	if err != nil {
		return fmt.Errorf("store: put tenant %q: %w", tenant, err)
	}
	for _, ps := range prepared {
		s.m.chunksWritten.Add(float64(len(ps.chunks)))
		for _, c := range ps.chunks {
			s.m.bytesWritten.Add(float64(len(c.Data)))
		}
	}
	return nil
}

// preparedSeries is a validated series with its encoded labels, computed
// before the write transaction so that it holds bbolt's writer lock only for
// the writes.
type preparedSeries struct {
	key    []byte
	lbls   labels.Labels
	chunks []Chunk
}

// prepareBatch validates the whole batch first, so that bad input never
// leaves a half-written batch to roll back.
func prepareBatch(batch []SeriesChunks) ([]preparedSeries, error) {
	out := make([]preparedSeries, 0, len(batch))
	for _, sc := range batch {
		if len(sc.Chunks) == 0 {
			continue
		}
		ls := sc.Labels.WithoutEmpty()
		if ls.IsEmpty() {
			return nil, errors.New("series without labels")
		}
		if name, dup := ls.HasDuplicateLabelNames(); dup {
			return nil, fmt.Errorf("series %s: duplicate label name %q", ls, name)
		}
		key := appendLabels(nil, ls)
		// A postings key is at most the encoded labels plus a series ID.
		if len(key)+idLen > bbolt.MaxKeySize {
			return nil, fmt.Errorf("series %.200s...: labels take %d bytes encoded, limit is %d", ls, len(key), bbolt.MaxKeySize-idLen)
		}
		// A run (a peer's compacted data) is stored as the chunks it was
		// made from: the chunks bucket merges and compacts XOR chunks.
		cs, err := chunks.ExpandRuns(sc.Chunks, math.MinInt64, math.MaxInt64)
		if err != nil {
			return nil, fmt.Errorf("series %s: %w", ls, err)
		}
		for _, c := range cs {
			if c.MinTime > c.MaxTime {
				return nil, fmt.Errorf("series %s: chunk MinTime %d after MaxTime %d", ls, c.MinTime, c.MaxTime)
			}
			if len(c.Data) == 0 {
				return nil, fmt.Errorf("series %s: chunk [%d, %d] without data", ls, c.MinTime, c.MaxTime)
			}
		}
		out = append(out, preparedSeries{key: key, lbls: ls, chunks: cs})
	}
	return out, nil
}

// fillPercent is how full bbolt fills a page before it splits one while
// writing. bbolt's default, 0.5, suits random inserts, but the chunks
// bucket takes one new key at the end of each series' range per flush, and
// at 0.5 its pages stayed 41% full: measured with 6 hours of 15s data
// (BENCHMARKS.md), 0.9 cuts the store from 8.71 to 4.43 bytes per sample.
// The index buckets gain a little too.
const fillPercent = 0.9

// fillAppend is the fill of the buckets whose new keys come in rising
// order (series, keyed by IDs from NextSequence; cold_series, written by
// compaction in ID order): a page split there never has to leave room in
// the middle. postings, whose segments are rewritten in any order, took
// more pages at 1.0; active's partitions, listed in flush order, and
// series_by_hash, whose keys are random, take bbolt's default: a split at
// 90% leaves the new page nearly empty, and random inserts keep splitting
// the full one (TestAudit3FillActiveStore, TestSeriesByHashPagesUnderPuts).
const fillAppend = 1.0

// tenantWriter writes into one tenant's buckets within a write transaction.
type tenantWriter struct {
	tx                                       *bbolt.Tx
	tenantName                               string
	tenant                                   *bbolt.Bucket
	series, byHash, postings, chunks, active *bbolt.Bucket
	maxSpan, storedMaxSpan                   int64
	// late is retention_late while a retention pass runs (lateArmed):
	// the least MaxTime Put wrote since the pass read its candidates.
	late                 int64
	lateArmed, lateMoved bool
	// cold reads the tenant's cold partitions for Put's check that a
	// chunk is not there already; opened on first need.
	cold *coldReader
}

func openTenantWriter(tx *bbolt.Tx, tenant string) (*tenantWriter, error) {
	created := tx.Bucket(bucketTenants).Bucket([]byte(tenant)) == nil
	tb, err := tx.Bucket(bucketTenants).CreateBucketIfNotExists([]byte(tenant))
	if err != nil {
		return nil, err
	}
	w := &tenantWriter{tx: tx, tenantName: tenant, tenant: tb}
	for _, sub := range []struct {
		dst  **bbolt.Bucket
		name []byte
	}{{&w.series, bucketSeries}, {&w.byHash, bucketSeriesByHash}, {&w.postings, bucketPostings}, {&w.chunks, bucketChunks}, {&w.active, bucketActive}} {
		if *sub.dst, err = tb.CreateBucketIfNotExists(sub.name); err != nil {
			return nil, fmt.Errorf("bucket %s: %w", sub.name, err)
		}
	}
	for _, b := range []*bbolt.Bucket{w.postings, w.chunks} {
		b.FillPercent = fillPercent
	}
	w.byHash.FillPercent = bbolt.DefaultFillPercent
	w.series.FillPercent = fillAppend
	w.storedMaxSpan = readMaxSpan(tb)
	if v := tb.Get(keyRetentionLate); len(v) == 8 {
		w.late, w.lateArmed = unsortableTime(binary.BigEndian.Uint64(v)), true
	}
	w.maxSpan = w.storedMaxSpan
	if created {
		// A new tenant's index lists all its chunks; its series IDs go on
		// from those of the tenant's bucket retention deleted, so that an
		// ID a reader holds never names another series.
		if err := setActiveFrom(tb, math.MinInt64); err != nil {
			return nil, err
		}
		if v := tx.Bucket(bucketRetired).Get([]byte(tenant)); len(v) == 8 {
			if err := w.series.SetSequence(binary.BigEndian.Uint64(v)); err != nil {
				return nil, err
			}
		}
	}
	return w, nil
}

// put writes one series' chunks. bbolt keeps references to keys and values
// until commit, so every one of them is a fresh slice.
func (w *tenantWriter) put(ps preparedSeries) error {
	id, err := w.seriesID(ps)
	if err != nil {
		return fmt.Errorf("series %s: %w", ps.lbls, err)
	}
	for _, c := range ps.chunks {
		if err := w.putChunk(id, c); err != nil {
			return fmt.Errorf("series %s: chunk [%d, %d]: %w", ps.lbls, c.MinTime, c.MaxTime, err)
		}
	}
	return nil
}

// putChunk writes one chunk under its series and MaxTime, merging it with
// a different chunk stored there.
func (w *tenantWriter) putChunk(id uint64, c Chunk) error {
	key, value := chunkKey(id, c.MaxTime), encodeChunkValue(c)
	old := w.chunks.Get(key)
	if old == nil {
		// A compacted chunk under this key merges as a stored one does;
		// the union goes to the chunks bucket, and the next Compact
		// merges the two.
		old = w.coldValue(id, c.MaxTime)
	}
	if old != nil {
		if bytes.Equal(old, value) {
			return nil
		}
		merged, changed, err := mergeChunk(old, c)
		if err != nil || !changed {
			return err
		}
		// The union may need several chunks (a histogram counter reset or
		// a change of sample type within it). The last ends at this key;
		// the others end before it and go under their own keys, merging
		// with what is there in turn, so this recursion ends.
		for _, m := range merged[:len(merged)-1] {
			if err := w.putChunk(id, m); err != nil {
				return err
			}
		}
		c = merged[len(merged)-1]
		value = encodeChunkValue(c)
	}
	if err := w.chunks.Put(key, value); err != nil {
		return err
	}
	w.maxSpan = max(w.maxSpan, chunkSpan(c))
	if w.lateArmed && c.MaxTime < w.late {
		w.late, w.lateMoved = c.MaxTime, true
	}
	if err := w.markColdDirty(c.MaxTime); err != nil {
		return err
	}
	return w.registerActive(id, c.MinTime, c.MaxTime)
}

// mergeChunk combines the stored chunk value old with c, which has the same
// series and MaxTime but other bytes: a replica's copy handed over, or a
// re-flush after a crash cut at another start. Neither may replace the
// other, as each can hold samples the other lacks. The result holds the
// union of their samples by timestamp, the stored value winning where both
// have one, in as few chunks as the samples allow (one, unless histograms
// or a change of type need more); the last ends at c.MaxTime. changed is
// false when c adds nothing, so the stored chunk stays as it is. A stored
// chunk that no longer decodes keeps the samples before the damage; a c
// that does not decode is an error.
func mergeChunk(old []byte, c Chunk) (merged []Chunk, changed bool, err error) {
	storedMin, err := chunkValueMinTime(old)
	if err != nil {
		return nil, false, err
	}
	have, _ := Chunk{MinTime: storedMin, MaxTime: c.MaxTime, Encoding: chunkenc.Encoding(old[8]), Data: old[chunkHeaderLen:]}.Samples()
	add, err := c.Samples()
	if err != nil {
		return nil, false, fmt.Errorf("decode chunk to merge: %w", err)
	}
	out := make([]chunks.Sample, 0, len(have)+len(add))
	i, j := 0, 0
	for i < len(have) || j < len(add) {
		switch {
		case j == len(add) || (i < len(have) && have[i].T < add[j].T):
			out = append(out, have[i])
			i++
		case i == len(have) || add[j].T < have[i].T:
			out = append(out, add[j])
			changed = true
			j++
		default: // the same timestamp: the stored sample stays
			out = append(out, have[i])
			i, j = i+1, j+1
		}
	}
	if !changed {
		return nil, false, nil
	}
	merged, err = chunks.Encode(out, 0)
	if err != nil {
		return nil, false, err
	}
	merged[0].MinTime = min(merged[0].MinTime, storedMin, c.MinTime)
	merged[len(merged)-1].MaxTime = c.MaxTime
	return merged, true, nil
}

// seriesID returns the ID of the series, indexing it if it is new.
func (w *tenantWriter) seriesID(ps preparedSeries) (uint64, error) {
	if id, ok, err := lookupSeries(w.byHash, w.series, ps.key); err != nil || ok {
		return id, err
	}
	id, err := w.series.NextSequence()
	if err != nil {
		return 0, err
	}
	idk := idKey(id)
	if err := w.series.Put(idk, ps.key); err != nil {
		return 0, err
	}
	if err := w.byHash.Put(seriesHashKey(ps.key, id), []byte{}); err != nil {
		return 0, err
	}
	ps.lbls.Range(func(l labels.Label) {
		if err == nil {
			err = idSet{w.postings, postingValuePrefix(l.Name, l.Value)}.add(id)
		}
	})
	return id, err
}

// finish records a grown maximum chunk span; it never shrinks, which only
// costs queries a little extra scanning.
func (w *tenantWriter) finish() error {
	if err := w.saveLate(); err != nil {
		return err
	}
	if w.maxSpan == w.storedMaxSpan {
		return nil
	}
	return w.tenant.Put(keyMaxChunkSpan, binary.BigEndian.AppendUint64(nil, uint64(w.maxSpan)))
}

// saveLate records the least MaxTime written while a retention pass runs
// (retention_late), if it moved.
func (w *tenantWriter) saveLate() error {
	if !w.lateMoved {
		return nil
	}
	w.lateMoved = false
	return w.tenant.Put(keyRetentionLate, timeKey(w.late))
}

// readMaxSpan returns the largest MaxTime-MinTime of any chunk the tenant
// has stored: a chunk overlapping [mint, maxt] has a MaxTime within
// [mint, maxt+span], which bounds the chunk scan of a query. A damaged value
// yields the widest span, trading speed for never missing a chunk.
func readMaxSpan(tenant *bbolt.Bucket) int64 {
	v := tenant.Get(keyMaxChunkSpan)
	switch {
	case v == nil:
		return 0
	case len(v) != 8:
		return math.MaxInt64
	}
	return int64(min(binary.BigEndian.Uint64(v), math.MaxInt64))
}
