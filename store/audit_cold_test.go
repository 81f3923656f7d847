package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/orrery/orrery/ingester/chunks"
)

// Audit of the cold partitions, a test per finding.

// A chunk put after retention into a partition that retention kept (a
// handover, or retention raised since) stays visible after compaction:
// compaction does not move chunks behind the cutoff reads apply to blocks.
func TestAuditColdLateChunkBeforeRetainedFromStaysVisible(t *testing.T) {
	st := openTest(t, testOptions(t))
	ls := labels.FromStrings("__name__", "m")
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, stepChunk(t, activeWidth+3_600_000, 10, 15000))}))
	_, err := st.Compact(context.Background(), 2*activeWidth)
	require.NoError(t, err)
	// Cutoff in the middle of partition 1: the partition stays.
	now := time.UnixMilli(activeWidth + 1_800_000 + int64(time.Hour/time.Millisecond))
	_, err = st.ApplyRetention(now, func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	late := stepChunk(t, activeWidth+1_000_000, 10, 15000) // before the cutoff
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, late)}))
	before, err := st.Select("t", late.MinTime, late.MaxTime)
	require.NoError(t, err)
	require.Len(t, before, 1, "the late chunk is read")
	_, err = st.Compact(context.Background(), 2*activeWidth)
	require.NoError(t, err)
	after, err := st.Select("t", late.MinTime, late.MaxTime)
	require.NoError(t, err)
	require.Equal(t, before, after, "compaction hid nothing")
}

// A damaged stored chunk, or chunks that do not merge with a block, are
// left as they are and counted; the partition's other chunks, the
// tenant's other partitions and the other tenants are still compacted.
func TestAuditColdBadChunkDoesNotStopCompaction(t *testing.T) {
	st := openTest(t, testOptions(t))
	a, b := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b")
	for _, tenant := range []string{"t", "u"} {
		require.NoError(t, st.Put(tenant, []SeriesChunks{
			seriesOf(a, stepChunk(t, 1_000_000, 10, 15000)),
			seriesOf(b, stepChunk(t, 1_000_000, 10, 15000), stepChunk(t, activeWidth+1_000_000, 10, 15000)),
		}))
	}
	// Damage a's chunk of tenant t in place: 3 bytes, no header.
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		cb := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketChunks)
		k, _ := cb.Cursor().First()
		return cb.Put(chunkKey(binary.BigEndian.Uint64(k), 1_000_000), []byte{1, 2, 3})
	}))
	moved, err := st.Compact(context.Background(), 2*activeWidth)
	require.NoError(t, err)
	require.Equal(t, 5, moved, "every chunk but the damaged one")
	require.Positive(t, testutil.ToFloat64(st.m.damagedBlocks))

	// A chunk under a compacted key whose bytes do not decode (written
	// past Put, as a bad disk would) is left in the chunks bucket too.
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketTenants).Bucket([]byte("u"))
		id, ok, err := lookupSeries(tb.Bucket(bucketSeriesByHash), tb.Bucket(bucketSeries), appendLabels(nil, b))
		require.NoError(t, err)
		require.True(t, ok)
		if err := tb.Bucket(bucketChunks).Put(chunkKey(id, 1_000_000), encodeChunkValue(rawChunk(0, 1_000_000, "garbage"))); err != nil {
			return err
		}
		dirty, err := tb.CreateBucketIfNotExists(bucketColdDirty)
		if err != nil {
			return err
		}
		return dirty.Put(timeKey(0), nil)
	}))
	require.NoError(t, st.Put("u", []SeriesChunks{seriesOf(a, stepChunk(t, 1_500_000, 10, 15000))}))
	moved, err = st.Compact(context.Background(), 2*activeWidth)
	require.NoError(t, err)
	require.Equal(t, 1, moved, "a's new chunk, not b's undecodable one")
}

// A series with more than a transaction may take in is left as it is,
// and the others are compacted in batches within the bound.
func TestAuditColdLargeSeriesAndBatchesByBytes(t *testing.T) {
	defer func(old int) { coldGroupMax = old }(coldGroupMax)
	coldGroupMax = 8 << 10
	st := openTest(t, testOptions(t))
	var batch []SeriesChunks
	for k := range 30 {
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "m", "k", fmt.Sprint(k)), stepChunk(t, 1_000_000, 60, 15000)))
	}
	var big []Chunk
	for maxt := int64(100_000); maxt < activeWidth; maxt += 100_000 {
		big = append(big, stepChunk(t, maxt, 90, 1000))
	}
	batch = append(batch, seriesOf(labels.FromStrings("__name__", "big"), big...))
	require.NoError(t, st.Put("t", batch))
	want, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	moved, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	require.Equal(t, 30, moved, "the 30 small series, not the big one")
	got, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	got = expandRuns(t, got, math.MinInt64, math.MaxInt64)
	require.Equal(t, want, got)
}

// A select over more partitions than a read keeps decoded blocks of
// answers as one over fewer does.
func TestAuditColdLongRangeBeyondTheCache(t *testing.T) {
	st := openTest(t, testOptions(t))
	var batch []SeriesChunks
	for k := range 3 {
		var cs []Chunk
		for p := range int64(coldCacheMax + 30) {
			cs = append(cs, stepChunk(t, p*activeWidth+1_000_000+int64(k), 5, 15000))
		}
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "m", "k", fmt.Sprint(k)), cs...))
	}
	require.NoError(t, st.Put("t", batch))
	want, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	_, err = st.Compact(context.Background(), math.MaxInt64)
	require.NoError(t, err)
	got, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	got = expandRuns(t, got, math.MinInt64, math.MaxInt64)
	require.Equal(t, want, got)
}

// When a chunk put under a compacted key merges into several chunks (a
// float and a histogram sample), those ending in another partition go
// where reads and later puts look for them: every sample reads as in a
// store that never compacted, and putting a chunk under such a key again
// merges with it.
func TestAuditColdMergeChunksEndingInAnotherPartition(t *testing.T) {
	a, b := openTest(t, testOptions(t)), openTest(t, testOptions(t))
	ls := labels.FromStrings("__name__", "m")
	p := activeWidth
	floats := []chunks.Sample{{T: p - 1000, V: 1}, {T: p + 1000, V: 2}}
	enc := func(smps []chunks.Sample) []Chunk {
		cs, err := chunks.Encode(smps, 0)
		require.NoError(t, err)
		return cs
	}
	h := &histogram.Histogram{Count: 1, Sum: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{1}}
	hist := enc([]chunks.Sample{{T: p - 500, H: h}})
	hist[0].MaxTime = p + 1000 // ends where the float chunk ends: one key
	for _, st := range []*Store{a, b} {
		require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, enc(floats)...)}))
	}
	_, err := a.Compact(context.Background(), math.MaxInt64)
	require.NoError(t, err)
	for _, st := range []*Store{a, b} {
		require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, hist...)}))
	}
	_, err = a.Compact(context.Background(), math.MaxInt64)
	require.NoError(t, err)
	// Again under the key of the float chunk the merge cut at p-1000,
	// with another value there: the stored one must win.
	again := enc([]chunks.Sample{{T: p - 2000, V: 0}, {T: p - 1000, V: 9}})
	for _, st := range []*Store{a, b} {
		require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, again...)}))
	}
	_, err = a.Compact(context.Background(), math.MaxInt64)
	require.NoError(t, err)
	for _, r := range [][2]int64{{p - 500, p - 500}, {p + 1, p + 1000}} {
		want, err := b.Select("t", r[0], r[1])
		require.NoError(t, err)
		got, err := a.Select("t", r[0], r[1])
		require.NoError(t, err)
		require.Equal(t, sampleList(t, want, r[0], r[1]), sampleList(t, got, r[0], r[1]), "%v", r)
	}
	for _, at := range []int64{p - 2000, p - 1000, p - 500, p + 1000} {
		want, _, err := b.SampleAt("t", ls, at)
		require.NoError(t, err)
		got, _, err := a.SampleAt("t", ls, at)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(want), fmt.Sprint(got), "sample at %d", at)
	}
}

// sampleList is every sample in [mint, maxt] of the selected series, in
// time order, as text (floats and histograms alike).
func sampleList(t *testing.T, scs []SeriesChunks, mint, maxt int64) []string {
	byT := map[int64]string{}
	for _, sc := range scs {
		for _, c := range sc.Chunks {
			smps, err := c.Samples()
			require.NoError(t, err)
			for _, s := range smps {
				if s.T >= mint && s.T <= maxt {
					byT[s.T] = fmt.Sprint(s)
				}
			}
		}
	}
	var out []string
	for _, t := range slices.Sorted(maps.Keys(byT)) {
		out = append(out, byT[t])
	}
	return out
}

// A series retention deleted does not come back into cold_series when
// its block is rewritten for another series.
func TestAuditColdDeletedSeriesStaysForgotten(t *testing.T) {
	st := openTest(t, testOptions(t))
	old, live := labels.FromStrings("__name__", "old"), labels.FromStrings("__name__", "live")
	require.NoError(t, st.Put("t", []SeriesChunks{
		seriesOf(old, stepChunk(t, activeWidth+1_000, 5, 15000)),
		seriesOf(live, stepChunk(t, activeWidth+1_000_000, 5, 15000), stepChunk(t, 3*activeWidth+1_000, 5, 15000)),
	}))
	_, err := st.Compact(context.Background(), 2*activeWidth)
	require.NoError(t, err)
	// The cutoff passes old's chunk, not the partition.
	_, err = st.ApplyRetention(time.UnixMilli(activeWidth+100_000+int64(time.Hour/time.Millisecond)), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	entries := func() int {
		n := 0
		require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
			n = tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketColdSeries).Stats().KeyN
			return nil
		}))
		return n
	}
	require.Equal(t, 1, entries(), "old is gone")
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(live, stepChunk(t, activeWidth+2_000_000, 5, 15000))}))
	_, err = st.Compact(context.Background(), 2*activeWidth)
	require.NoError(t, err)
	require.Equal(t, 1, entries(), "old did not come back")
}

// A key of the wrong length in a partition bucket (damage) does not
// panic a read.
func TestAuditColdDamagedKeyDoesNotPanic(t *testing.T) {
	st := openTest(t, testOptions(t))
	ls := labels.FromStrings("__name__", "m")
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, stepChunk(t, 1_000_000, 10, 15000))}))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		pb := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold).Bucket(timeKey(0))
		return pb.Put([]byte{0xff, 1, 2}, []byte("x"))
	}))
	for _, r := range [][2]int64{{math.MinInt64, math.MaxInt64}, {0, 10}} {
		_, err := st.Select("t", r[0], r[1])
		require.NoError(t, err)
	}
	require.NoError(t, st.LastSamples("t", []labels.Labels{ls}, func(int, Sample) {}))
}

// Retention counts the chunks of the partitions it deletes whole; the file
// is of the current version from its creation on.
func TestAuditColdRetentionCountsAndFormat(t *testing.T) {
	st := openTest(t, testOptions(t))
	version := func() uint32 {
		var v uint32
		require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
			v = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormatVersion))
			return nil
		}))
		return v
	}
	require.Equal(t, formatVersion, version(), "a new file, not compacted")
	var batch []SeriesChunks
	for k := range 5 {
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "m", "k", fmt.Sprint(k)), stepChunk(t, 1_000_000, 10, 15000), stepChunk(t, 2_000_000, 10, 15000)))
	}
	require.NoError(t, st.Put("t", batch))
	require.Equal(t, formatVersion, version())
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	require.Equal(t, formatVersion, version())
	deleted, err := st.ApplyRetention(time.UnixMilli(activeWidth+int64(time.Hour/time.Millisecond)), func(string) time.Duration { return time.Hour })
	require.NoError(t, err)
	require.Equal(t, 10, deleted, "the partition's ten chunks")
	got, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Empty(t, got)
}

// mergeRecords returns the chunks a merge cuts that end outside the
// partition apart, for Put to place, and keeps those ending in it.
func TestAuditColdMergeRecordsKeepsOnlyItsPartition(t *testing.T) {
	p := activeWidth
	enc := func(smps []chunks.Sample) Chunk {
		cs, err := chunks.Encode(smps, 0)
		require.NoError(t, err)
		require.Len(t, cs, 1)
		return cs[0]
	}
	floats := enc([]chunks.Sample{{T: p - 1000, V: 1}, {T: p + 1000, V: 2}})
	h := &histogram.Histogram{Count: 1, Sum: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{1}}
	hist := enc([]chunks.Sample{{T: p - 500, H: h}, {T: p + 500, H: h}})
	hist.MaxTime = p + 1000
	rec := func(c Chunk) coldRecord { return coldRecord{id: 1, maxTime: c.MaxTime, value: encodeChunkValue(c)} }
	out, outside, left, err := mergeRecords([]coldRecord{rec(floats)}, []coldRecord{rec(hist)}, p)
	require.NoError(t, err)
	require.Empty(t, left)
	for _, r := range out {
		require.Equal(t, p, partitionOf(r.maxTime), "a record of partition p ends in it")
	}
	require.NotEmpty(t, outside, "the chunks ending before p")
	for _, o := range outside {
		require.Less(t, o.c.MaxTime, p)
	}
}

// A deletion reaches compacted chunks: retention deletes those wholly
// inside a tombstone from their blocks, counted, the series' newest
// compacted sample becomes the newest one left, and a series left with
// nothing is deleted; compaction does not write such chunks again.
func TestColdDeletionFreesCompactedChunks(t *testing.T) {
	st := openTest(t, testOptions(t))
	a, gone := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "gone")
	require.NoError(t, st.Put("t", []SeriesChunks{
		seriesOf(a, stepChunk(t, activeWidth+1_000_000, 10, 15000), stepChunk(t, activeWidth+2_000_000, 10, 15000)),
		seriesOf(gone, stepChunk(t, activeWidth+1_000_000, 10, 15000)),
	}))
	_, err := st.Compact(context.Background(), 2*activeWidth)
	require.NoError(t, err)
	require.NoError(t, st.AddTombstone("t", Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "a")}, MinTime: activeWidth + 1_500_000, MaxTime: activeWidth + 3_000_000}))
	require.NoError(t, st.AddTombstone("t", Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "gone")}, MinTime: math.MinInt64, MaxTime: math.MaxInt64}))
	deleted, err := st.ApplyRetention(time.UnixMilli(0), func(string) time.Duration { return 0 })
	require.NoError(t, err)
	require.Equal(t, 2, deleted)
	var last []Sample
	require.NoError(t, st.LastSamples("t", []labels.Labels{a, gone}, func(_ int, s Sample) { last = append(last, s) }))
	require.Len(t, last, 1)
	require.Equal(t, int64(activeWidth+1_000_000), last[0].T, "a's newest is its first chunk's now")
	names, err := st.LabelValues("t", "__name__", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, names)
	again, err := st.ApplyRetention(time.UnixMilli(0), func(string) time.Duration { return 0 })
	require.NoError(t, err)
	require.Zero(t, again)

	// A chunk put later inside the tombstone is deleted by compaction.
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(a, stepChunk(t, activeWidth+2_500_000, 10, 15000))}))
	_, err = st.Compact(context.Background(), 2*activeWidth)
	require.NoError(t, err)
	got, err := st.Select("t", activeWidth+1_500_000, activeWidth+3_000_000)
	require.NoError(t, err)
	require.Empty(t, got)
}

// Second audit.

// When a deletion takes a series' newest compacted chunk, the newest
// left, partitions earlier, takes its place.
func TestAudit2ColdNewestFromAnEarlierPartition(t *testing.T) {
	st := openTest(t, testOptions(t))
	a := labels.FromStrings("__name__", "a")
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(a, stepChunk(t, 1_000_000, 5, 15000), stepChunk(t, 2*activeWidth+1_000_000, 5, 15000))}))
	_, err := st.Compact(context.Background(), 3*activeWidth)
	require.NoError(t, err)
	require.NoError(t, st.AddTombstone("t", Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "a")}, MinTime: 2 * activeWidth, MaxTime: 3 * activeWidth}))
	_, err = st.ApplyRetention(time.UnixMilli(0), func(string) time.Duration { return 0 })
	require.NoError(t, err)
	var last []Sample
	require.NoError(t, st.LastSamples("t", []labels.Labels{a}, func(_ int, s Sample) { last = append(last, s) }))
	require.Len(t, last, 1)
	require.Equal(t, int64(1_000_000), last[0].T)
}

// Cleaning a partition goes a bounded batch of blocks per transaction and
// still deletes every chunk the tombstone covers.
func TestAudit2ColdCleaningInBatches(t *testing.T) {
	defer func(old int) { coldGroupMax = old }(coldGroupMax)
	st := openTest(t, testOptions(t))
	var batch []SeriesChunks
	for k := range 300 {
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "m", "k", fmt.Sprint(k)), stepChunk(t, 1_000_000, 120, 15000)))
	}
	require.NoError(t, st.Put("t", batch))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	coldGroupMax = 64 << 10 // a few blocks per transaction
	require.NoError(t, st.AddTombstone("t", Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "k", ".*0")}, MinTime: -activeWidth, MaxTime: activeWidth}))
	deleted, err := st.ApplyRetention(time.UnixMilli(0), func(string) time.Duration { return 0 })
	require.NoError(t, err)
	require.Equal(t, 30, deleted)
	got, err := st.Series("t", math.MinInt64, math.MaxInt64, nil)
	require.NoError(t, err)
	require.Len(t, got, 270)
	again, err := st.ApplyRetention(time.UnixMilli(0), func(string) time.Duration { return 0 })
	require.NoError(t, err)
	require.Zero(t, again, "the partition is marked clean")
}

// Compaction that wrote a chunk with an older view of the tombstones
// clears the partition's clean mark, so retention looks at it again.
func TestAudit2ColdCompactionWithStaleTombstonesIsCleanedLater(t *testing.T) {
	st := openTest(t, testOptions(t))
	a := labels.FromStrings("__name__", "a")
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(a, stepChunk(t, 1_000_000, 5, 15000))}))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	stone := Tombstone{Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "a")}, MinTime: 2_000_000, MaxTime: 3_000_000}
	require.NoError(t, st.AddTombstone("t", stone))
	_, err = st.ApplyRetention(time.UnixMilli(0), func(string) time.Duration { return 0 })
	require.NoError(t, err)
	// A late chunk inside the tombstone, compacted by a pass that read
	// the tombstones before it was added.
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(a, stepChunk(t, 2_500_000, 5, 15000))}))
	_, err = st.compactTenant(context.Background(), "t", activeWidth, nil)
	require.NoError(t, err)
	deleted, err := st.ApplyRetention(time.UnixMilli(0), func(string) time.Duration { return 0 })
	require.NoError(t, err)
	require.Equal(t, 1, deleted)
	got, err := st.Select("t", 2_000_000, 3_000_000)
	require.NoError(t, err)
	require.Empty(t, got)
}

// A chunk put under a compacted chunk's key reads as in a store that
// never compacted: one chunk, the merge of both.
func TestAudit2ColdPutUnderCompactedKeyReadsOnce(t *testing.T) {
	a, b := openTest(t, testOptions(t)), openTest(t, testOptions(t))
	ls := labels.FromStrings("__name__", "m")
	first, second := stepChunk(t, 1_000_000, 5, 15000), stepChunk(t, 1_000_000, 9, 15000)
	for _, st := range []*Store{a, b} {
		require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, first)}))
	}
	_, err := a.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	for _, st := range []*Store{a, b} {
		require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, second)}))
	}
	want, err := b.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	got, err := a.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

// A series whose chunks in a partition, stored and new together, would
// not fit a block the decoder accepts keeps its new chunks uncompacted.
func TestAudit2ColdSeriesGrowingPastTheBlockBound(t *testing.T) {
	defer func(old int) { coldGroupMax = old }(coldGroupMax)
	coldGroupMax = 4 << 10
	st := openTest(t, testOptions(t))
	ls := labels.FromStrings("__name__", "m")
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, stepChunk(t, 1_000_000, 120, 1000))}))
	moved, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	require.Equal(t, 1, moved)
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, stepChunk(t, 2_000_000, 120, 1000))}))
	want, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	moved, err = st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	require.Zero(t, moved, "the series would pass the bound")
	got, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

// Compaction stops when its context ends, so that an ingester's Stop does
// not wait for a first pass over weeks of data; the next pass goes on.
func TestCompactStopsWithItsContext(t *testing.T) {
	st := openTest(t, testOptions(t))
	var batch []SeriesChunks
	for k := range 10 {
		var cs []Chunk
		for p := range int64(5) {
			cs = append(cs, stepChunk(t, p*activeWidth+1_000_000, 5, 15000))
		}
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "m", "k", fmt.Sprint(k)), cs...))
	}
	require.NoError(t, st.Put("t", batch))
	want, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	moved, err := st.Compact(ctx, math.MaxInt64)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, moved)
	moved, err = st.Compact(context.Background(), math.MaxInt64)
	require.NoError(t, err)
	require.Equal(t, 50, moved)
	got, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	got = expandRuns(t, got, math.MinInt64, math.MaxInt64)
	require.Equal(t, want, got)
}
