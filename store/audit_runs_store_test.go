package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/orrery/orrery/runchunk/runchunktest"
)

// auditBatch: series of several shapes in partition 0, each in chunks
// of 120 samples, every one a run candidate.
func auditBatch(tb testing.TB, n int) []SeriesChunks {
	rng := rand.New(rand.NewPCG(21, 22))
	var batch []SeriesChunks
	for k := range n {
		c := runchunktest.Case{T: make([]int64, 400), V: make([]float64, 400)}
		v := 0.0
		for i := range c.T {
			c.T[i] = 1 + int64(i)*15_000
			switch k % 4 {
			case 0:
				v += float64(rng.IntN(7))
			case 1:
				v = float64(rng.IntN(100000)) / 100
			case 2:
				v = rng.NormFloat64()
			default:
				v = math.Float64frombits(value.StaleNaN)
				if i%3 == 0 {
					v = float64(i)
				}
			}
			c.V[i] = v
		}
		var cs []Chunk
		for from := 0; from < len(c.T); from += 120 {
			to := min(from+120, len(c.T))
			cs = append(cs, Chunk{MinTime: c.T[from], MaxTime: c.T[to-1], Encoding: chunkenc.EncXOR, Data: runchunktest.XOR(tb, c.T[from:to], c.V[from:to])})
		}
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "m", "k", fmt.Sprint(k)), cs...))
	}
	return batch
}

// auditCompacted returns a store holding n series of auditBatch, its
// partition compacted, with the batch and what a select of everything
// returned before compaction.
func auditCompacted(t *testing.T, n int) (*Store, []SeriesChunks, []SeriesChunks) {
	st := openTest(t, testOptions(t))
	batch := auditBatch(t, n)
	require.NoError(t, st.Put("t", batch))
	want, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	_, err = st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	return st, batch, want
}

// TestAuditRunsConcurrentReadsOfSharedBlocks: readers sharing cached
// blocks (lazy rebuild under a Once) see what a store that never
// compacted returns. Run with -race.
func TestAuditRunsConcurrentReadsOfSharedBlocks(t *testing.T) {
	st, batch, want := auditCompacted(t, 200)
	var runs int
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold).Bucket(timeKey(0)).ForEach(func(_, v []byte) error {
			d, err := parseColdBlock(v)
			require.NoError(t, err)
			for _, s := range d.series {
				if s.run != nil {
					runs++
				}
			}
			return nil
		})
	}))
	require.Positive(t, runs)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				got, err := st.Select("t", math.MinInt64, math.MaxInt64)
				require.NoError(t, err)
				got = expandRuns(t, got, math.MinInt64, math.MaxInt64)
				require.Equal(t, want, got)
				ls := batch[(g*7+i)%len(batch)].Labels
				_, _, err = st.SampleAt("t", ls, 1+15_000*10)
				require.NoError(t, err)
				require.NoError(t, st.LastSamples("t", []labels.Labels{ls}, func(int, Sample) {}))
			}
		}()
	}
	wg.Wait()
	require.Zero(t, testutil.ToFloat64(st.m.damagedBlocks))
}

// auditBlockWithBadRun is encodeColdBlock with series bad's run followed
// by one stray byte: the block parses (runSize reads only the header) but
// that run fails when it is rebuilt.
func auditBlockWithBadRun(recs []coldRecord, bad uint64) []byte {
	var raw []byte
	prev, budget := uint64(0), runBlockSamples
	for start := 0; start < len(recs); {
		end := start + 1
		for end < len(recs) && recs[end].id == recs[start].id {
			end++
		}
		raw = binary.AppendUvarint(raw, recs[start].id-prev)
		if recs[start].id == bad {
			run, n, ok := encodeRun(recs[start:end], budget)
			if !ok {
				panic("not a run")
			}
			run = append(run, 0)
			raw = binary.AppendUvarint(append(raw, entryRun), uint64(len(run)))
			raw = append(raw, run...)
			budget -= n
		} else {
			var used int
			raw, used = appendSeriesEntry(raw, recs[start:end], budget)
			budget -= used
		}
		prev, start = recs[start].id, end
	}
	return sealColdBlock(coldBlockVersion, raw)
}

// auditDamageOneRun replaces the one block of partition 0 by the same
// block with series bad's run damaged.
func auditDamageOneRun(t *testing.T, st *Store, bad uint64) {
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		pb := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold).Bucket(timeKey(0))
		k, v := pb.Cursor().First()
		recs, err := decodeColdBlock(v)
		require.NoError(t, err)
		nk, _ := pb.Cursor().Next()
		require.Nil(t, nk, "one block")
		return pb.Put(k, auditBlockWithBadRun(recs, bad))
	}))
}

func auditSeriesNames(scs []SeriesChunks) map[string]int {
	out := map[string]int{}
	for _, s := range scs {
		out[s.Labels.Get("k")] = len(s.Chunks)
	}
	return out
}

// TestAuditRunsDamagedRunCostsOnlyItsSeries: a run that fails to rebuild
// costs its series' chunks in that partition only, and reads count it.
func TestAuditRunsDamagedRunCostsOnlyItsSeries(t *testing.T) {
	st := openTest(t, testOptions(t))
	require.NoError(t, st.Put("t", auditBatch(t, 8)))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	auditDamageOneRun(t, st, 1) // series k=0
	got, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	names := auditSeriesNames(got)
	require.NotContains(t, names, "0")
	require.Len(t, names, 7)
	require.Positive(t, testutil.ToFloat64(st.m.damagedBlocks))
}

// TestAuditRunsDamagedRunBlocksTombstoneCleaning: retention's cleaning of
// a partition decodes every run of a block (decodeColdBlock); one
// damaged run makes it skip the whole block, silently (not counted, not
// logged), and then mark the partition clean, so the chunks a tombstone
// deleted from the block's other series are never freed.
func TestAuditRunsDamagedRunBlocksTombstoneCleaning(t *testing.T) {
	st := openTest(t, testOptions(t))
	require.NoError(t, st.Put("t", auditBatch(t, 8)))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	auditDamageOneRun(t, st, 1) // series k=0
	require.NoError(t, st.AddTombstone("t", Tombstone{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "k", "5")}}))
	before := testutil.ToFloat64(st.m.damagedBlocks)
	deleted, err := st.ApplyRetention(time.UnixMilli(activeWidth), func(string) time.Duration { return 1000 * time.Hour })
	require.NoError(t, err)
	after := testutil.ToFloat64(st.m.damagedBlocks)
	var left int
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		pb := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold).Bucket(timeKey(0))
		_, v := pb.Cursor().First()
		d, err := parseColdBlock(v)
		require.NoError(t, err)
		if s := d.find(6); s != nil { // k=5
			left = s.chunks
		}
		return nil
	}))
	t.Logf("deleted %d, k=5 chunks left in the block %d, damage counted %v -> %v", deleted, left, before, after)
	require.Zero(t, left, "the tombstoned series' chunks stay in the block for good")
}

// TestAuditRunsDamagedRunStopsCompactionOfItsBlock: one damaged run keeps
// every later chunk of every series of its block in the chunks bucket
// (rewriteBlock decodes the whole block); reads still answer.
func TestAuditRunsDamagedRunStopsCompactionOfItsBlock(t *testing.T) {
	st := openTest(t, testOptions(t))
	batch := auditBatch(t, 8)
	require.NoError(t, st.Put("t", batch))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	auditDamageOneRun(t, st, 1)
	// A late chunk of series k=3 into the compacted partition.
	late := stepChunk(t, activeWidth-1, 5, 1)
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(batch[3].Labels, late)}))
	moved, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	t.Logf("moved %d; damaged %v", moved, testutil.ToFloat64(st.m.damagedBlocks))
	got, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	got = expandRuns(t, got, math.MinInt64, math.MaxInt64)
	require.Equal(t, 5, auditSeriesNames(got)["3"])
	require.Equal(t, 1, moved, "the late chunk of an undamaged series is compacted")
}

// Control for the cleaning test: without the damaged run, retention
// removes the tombstoned series from the block.
func TestAuditRunsTombstoneCleaningControl(t *testing.T) {
	st := openTest(t, testOptions(t))
	require.NoError(t, st.Put("t", auditBatch(t, 8)))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	require.NoError(t, st.AddTombstone("t", Tombstone{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "k", "5")}}))
	deleted, err := st.ApplyRetention(time.UnixMilli(activeWidth), func(string) time.Duration { return 1000 * time.Hour })
	require.NoError(t, err)
	require.Equal(t, 4, deleted)
}

// The partition is marked clean after the damaged block was skipped, so a
// later pass does not look at it again either.
func TestAuditRunsDamagedRunPartitionMarkedClean(t *testing.T) {
	st := openTest(t, testOptions(t))
	require.NoError(t, st.Put("t", auditBatch(t, 8)))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	auditDamageOneRun(t, st, 1)
	require.NoError(t, st.AddTombstone("t", Tombstone{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "k", "5")}}))
	_, err = st.ApplyRetention(time.UnixMilli(activeWidth), func(string) time.Duration { return 1000 * time.Hour })
	require.NoError(t, err)
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		marks := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketColdStones)
		require.NotNil(t, marks)
		require.NotNil(t, marks.Get(timeKey(0)), "partition marked clean")
		return nil
	}))
}

// The same with a cache so small that blocks are evicted (and, with the
// rebuilt runs charged, grow past it) while other readers rebuild them.
func TestAuditRunsConcurrentReadsSmallCache(t *testing.T) {
	st, batch, want := auditCompacted(t, 200)
	st.blocks = newBlockCache(256 << 10)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				ls := batch[(g*31+i*7)%len(batch)].Labels
				got, err := st.Select("t", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "k", ls.Get("k")))
				require.NoError(t, err)
				got = expandRuns(t, got, math.MinInt64, math.MaxInt64)
				require.Len(t, got, 1)
				for _, w := range want {
					if labels.Equal(w.Labels, ls) {
						require.Equal(t, w, got[0])
					}
				}
				all, err := st.Select("t", math.MinInt64, math.MaxInt64)
				require.NoError(t, err)
				require.Equal(t, want, expandRuns(t, all, math.MinInt64, math.MaxInt64))
			}
		}()
	}
	wg.Wait()
	st.blocks.mu.Lock()
	defer st.blocks.mu.Unlock()
	require.LessOrEqual(t, st.blocks.size, st.blocks.budget)
}

// TestAuditRunsRewriteKeepsUndecodableRunBytes: a run whose block passes
// its CRC but that does not rebuild is, in practice, a decoder bug or
// change (the run rebuilt when it was written) rather than damage. A
// rewrite of its block (retention applying a deletion to another series,
// or a late chunk of another series) must keep the run's bytes, so that a
// fixed binary reads them again; dropping them makes the loss permanent.
func TestAuditRunsRewriteKeepsUndecodableRunBytes(t *testing.T) {
	st := openTest(t, testOptions(t))
	require.NoError(t, st.Put("t", auditBatch(t, 8)))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	auditDamageOneRun(t, st, 1) // series k=0
	require.NoError(t, st.AddTombstone("t", Tombstone{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "k", "5")}}))
	_, err = st.ApplyRetention(time.UnixMilli(activeWidth), func(string) time.Duration { return 1000 * time.Hour })
	require.NoError(t, err)
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		pb := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold).Bucket(timeKey(0))
		found := false
		require.NoError(t, pb.ForEach(func(_, v []byte) error {
			d, err := parseColdBlock(v)
			require.NoError(t, err)
			found = found || d.find(1) != nil
			return nil
		}))
		require.True(t, found, "series 1's run is gone from the partition for good")
		return nil
	}))
}
