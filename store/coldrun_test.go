package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/orrery/orrery/runchunk/runchunktest"
)

// recordsOf cuts a case into XOR chunks of at most size samples, as the
// ingester's memory would.
func recordsOf(tb testing.TB, id uint64, c runchunktest.Case, size int) []coldRecord {
	var recs []coldRecord
	for from := 0; from < len(c.T); from += size {
		to := min(from+size, len(c.T))
		recs = append(recs, coldRecord{id: id, maxTime: c.T[to-1], value: encodeChunkValue(Chunk{
			MinTime: c.T[from], MaxTime: c.T[to-1], Encoding: chunkenc.EncXOR, Data: runchunktest.XOR(tb, c.T[from:to], c.V[from:to]),
		})})
	}
	return recs
}

func TestRunsRebuildTheirChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range runchunktest.Cases(rng) {
		recs := recordsOf(t, 7, c, 120)
		run, cost, ok := encodeRun(recs, runBlockSamples)
		require.True(t, ok, c.Name)
		require.Equal(t, runCost(len(recs), len(c.T)), cost)
		got, used, err := decodeRun(run, 7, nil, runBlockSamples)
		require.NoError(t, err, c.Name)
		require.Equal(t, len(c.T), used)
		require.Equal(t, recs, got, c.Name)
		chunks, samples, err := runSize(run, cost)
		require.NoError(t, err)
		require.Equal(t, []int{len(recs), len(c.T)}, []int{chunks, samples})
		// Less budget than the run costs is refused, writing and reading.
		_, _, err = runSize(run, cost-1)
		require.ErrorIs(t, err, errCorrupt)
		_, _, ok = encodeRun(recs, cost-1)
		require.False(t, ok)
		if len(c.T) > 1 {
			_, _, err = decodeRun(run, 7, nil, len(c.T)-1)
			require.ErrorIs(t, err, errCorrupt)
		}
	}
}

// TestSeriesKeepChunksARunCannotRebuild: chunks a run would not give back
// bit for bit stay chunks, and the block still reads them as they were.
func TestSeriesKeepChunksARunCannotRebuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var c runchunktest.Case
	for _, rc := range runchunktest.Cases(rng) {
		if rc.Name == "noisy floats/479" {
			c = rc
		}
	}
	good := recordsOf(t, 1, c, 60)
	overlapping := append(recordsOf(t, 2, c, 60), recordsOf(t, 2, runchunktest.Case{T: []int64{c.T[0] + 1}, V: []float64{1}}, 1)...)
	slicesSortRecords(overlapping)
	damaged := recordsOf(t, 3, c, 60)
	damaged[0].value = append(bytes.Clone(damaged[0].value[:chunkHeaderLen+4]), 0xff, 0xff)
	histogram := []coldRecord{{id: 4, maxTime: 100, value: encodeChunkValue(Chunk{MinTime: 1, MaxTime: 100, Encoding: chunkenc.EncHistogram, Data: []byte{0, 0}})}}
	for i, recs := range [][]coldRecord{overlapping, damaged, histogram} {
		_, _, ok := encodeRun(recs, runBlockSamples)
		require.False(t, ok, i)
	}
	all := append(append(append(append([]coldRecord(nil), good...), overlapping...), damaged...), histogram...)
	got, err := decodeColdBlock(encodeColdBlock(all))
	require.NoError(t, err)
	require.Equal(t, all, got)
}

func slicesSortRecords(recs []coldRecord) {
	for i := range recs {
		for j := i + 1; j < len(recs); j++ {
			if compareRecords(recs[j], recs[i]) < 0 {
				recs[i], recs[j] = recs[j], recs[i]
			}
		}
	}
}

// TestVersion4FilesAreReadAndUpgraded: a file compacted by an earlier
// version (blocks of chunks only, format 4) answers as before once opened
// and upgraded; retention rewriting its blocks writes them as runs.
func TestVersion4FilesAreReadAndUpgraded(t *testing.T) {
	opts := testOptions(t)
	st := openTest(t, opts)
	rng := rand.New(rand.NewPCG(9, 10))
	var batch []SeriesChunks
	for k := range 20 {
		var cs []Chunk
		for s := range 3 {
			c := runchunktest.Case{T: make([]int64, 100), V: make([]float64, 100)}
			for i := range c.T {
				c.T[i] = int64(s*100+i)*15_000 + 1
				c.V[i] = float64(rng.IntN(1000)) / 10
			}
			cs = append(cs, Chunk{MinTime: c.T[0], MaxTime: c.T[99], Encoding: chunkenc.EncXOR, Data: runchunktest.XOR(t, c.T, c.V)})
		}
		batch = append(batch, seriesOf(labels.FromStrings("__name__", "m", "k", fmt.Sprint(k)), cs...))
	}
	require.NoError(t, st.Put("t", batch))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	want, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	want = expandRuns(t, want, math.MinInt64, math.MaxInt64)
	// Rewrite every block as the previous version wrote it.
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		parts := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold)
		require.NoError(t, parts.ForEach(func(p, _ []byte) error {
			pb := parts.Bucket(p)
			var keys, values [][]byte
			require.NoError(t, pb.ForEach(func(k, v []byte) error {
				recs, err := decodeColdBlock(v)
				require.NoError(t, err)
				require.Equal(t, byte(coldBlockVersion), v[0])
				keys, values = append(keys, bytes.Clone(k)), append(values, encodeChunksOnlyBlock(recs))
				return nil
			}))
			for i := range keys {
				require.NoError(t, pb.Put(keys[i], values[i]))
			}
			return nil
		}))
		return tx.Bucket(bucketMeta).Put(keyFormatVersion, binary.BigEndian.AppendUint32(nil, 4))
	}))
	require.NoError(t, st.Close())
	st = openTest(t, opts)
	st.blocks = nil
	got, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	got = expandRuns(t, got, math.MinInt64, math.MaxInt64)
	require.Equal(t, want, got)
	require.Zero(t, testutil.ToFloat64(st.m.damagedBlocks))
	version := func() uint32 {
		var v uint32
		require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
			v = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormatVersion))
			return nil
		}))
		return v
	}
	require.Equal(t, formatVersion, version(), "upgraded on open")
	// A deletion that retention applies rewrites a block, as version 2.
	err = st.AddTombstone("t", Tombstone{MinTime: 0, MaxTime: math.MaxInt64, Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "k", "3")}})
	require.NoError(t, err)
	deleted, err := st.ApplyRetention(time.Now(), func(string) time.Duration { return 0 })
	require.NoError(t, err)
	require.Equal(t, 3, deleted, "k=3's three chunks")
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		parts := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold)
		return parts.ForEachBucket(func(p []byte) error {
			return parts.Bucket(p).ForEach(func(_, v []byte) error {
				require.Equal(t, byte(coldBlockVersion), v[0])
				return nil
			})
		})
	}))
	got, err = st.Select("t", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchNotEqual, "k", "3"))
	require.NoError(t, err)
	got = expandRuns(t, got, math.MinInt64, math.MaxInt64)
	require.Len(t, got, 19)
	// A chunk put into the compacted partition is compacted with the rest.
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(labels.FromStrings("__name__", "m", "k", "0"), stepChunk(t, 100*15_000+1, 5, 1))}))
	_, err = st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	got, err = st.Select("t", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "k", "0"))
	require.NoError(t, err)
	got = expandRuns(t, got, math.MinInt64, math.MaxInt64)
	require.Len(t, got, 1)
}

// encodeChunksOnlyBlock writes a block as format 4 files hold them
// (coldBlockChunksOnly), every record a chunk.
func encodeChunksOnlyBlock(recs []coldRecord) []byte {
	var raw []byte
	prev := uint64(0)
	for _, r := range recs {
		raw = binary.AppendUvarint(raw, r.id-prev)
		raw = binary.BigEndian.AppendUint64(raw, sortableTime(r.maxTime))
		raw = binary.AppendUvarint(raw, uint64(len(r.value)))
		raw = append(raw, r.value...)
		prev = r.id
	}
	return sealColdBlock(coldBlockChunksOnly, raw)
}

// FuzzDecodeRun: any bytes decode into records or errCorrupt, without a
// panic and within the sample budget.
func FuzzDecodeRun(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range runchunktest.Cases(rng)[:8] {
		run, _, ok := encodeRun(recordsOf(f, 1, c, 50), runBlockSamples)
		require.True(f, ok)
		f.Add(run)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const budget = 1 << 14
		recs, used, err := decodeRun(b, 1, nil, budget)
		if err != nil {
			require.ErrorIs(t, err, errCorrupt)
			return
		}
		require.LessOrEqual(t, used, budget)
		for _, r := range recs {
			minTime, err := chunkValueMinTime(r.value)
			require.NoError(t, err)
			require.LessOrEqual(t, minTime, r.maxTime)
		}
	})
}

// FuzzRunsAreExact: samples drawn from the input, cut into chunks, come
// back from a block bit for bit, whichever form their series took.
func FuzzRunsAreExact(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"), uint8(3))
	f.Add(bytes.Repeat([]byte{0x7f, 0xf8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3a, 0x98}, 20), uint8(7))
	f.Fuzz(func(t *testing.T, b []byte, size uint8) {
		c := runchunktest.Case{}
		at := int64(0)
		for len(b) >= 10 {
			at += int64(binary.LittleEndian.Uint16(b)) + 1
			c.T = append(c.T, at)
			c.V = append(c.V, math.Float64frombits(binary.LittleEndian.Uint64(b[2:])))
			b = b[10:]
		}
		if len(c.T) == 0 {
			return
		}
		recs := recordsOf(t, 1, c, int(size%200)+1)
		got, err := decodeColdBlock(encodeColdBlock(recs))
		require.NoError(t, err)
		require.Equal(t, recs, got)
	})
}

// TestBlockCacheChargesRebuiltRuns: a cached block is charged for the
// chunks its runs are rebuilt into as reads rebuild them, so the budget
// bounds what the cache holds; the rebuilt chunks hold no spare capacity.
func TestBlockCacheChargesRebuiltRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	var recs []coldRecord
	for id := uint64(1); id <= 500; id++ {
		c := runchunktest.Case{T: make([]int64, 480), V: make([]float64, 480)}
		v := 0.0
		for k := range c.T {
			c.T[k] = 1_700_000_000_000 + int64(k)*15_000
			v += float64(rng.IntN(10))
			c.V[k] = v
		}
		recs = append(recs, recordsOf(t, id, c, 120)...)
	}
	v := encodeColdBlock(recs)
	chunkBytes := 0
	for _, r := range recs {
		chunkBytes += len(r.value)
	}

	c := newBlockCache(64 << 20)
	d, err := c.get("t", 0, idKey(1), v)
	require.NoError(t, err)
	charged := c.size
	got, err := d.all()
	require.NoError(t, err)
	require.Equal(t, recs, got)
	for _, r := range got {
		require.Equal(t, len(r.value), cap(r.value))
	}
	require.GreaterOrEqual(t, c.size-charged, chunkBytes, "the rebuilt chunks are charged")
	again, err := d.all()
	require.NoError(t, err)
	require.Equal(t, got, again)
	require.GreaterOrEqual(t, c.size-charged, chunkBytes, "once")
	require.Less(t, c.size-charged, 2*chunkBytes, "once")

	// Blocks that fill a budget before their runs are rebuilt pass it
	// once rebuilt, and the least recently used go.
	small := newBlockCache(4 * (charged + d.rebuilt))
	n := small.budget / charged
	var blocks []*blockData
	for p := range int64(n) {
		d, err = small.get("t", p, idKey(1), v)
		require.NoError(t, err)
		blocks = append(blocks, d)
	}
	require.Equal(t, n, small.lru.Len())
	for _, d := range blocks {
		_, err = d.all()
		require.NoError(t, err)
		require.LessOrEqual(t, small.size, small.budget)
	}
	require.Less(t, small.lru.Len(), n, "evicted once the chunks passed the budget")
}

// TestRunBlockFormatIsFixed reads a version 2 block committed when runs
// were introduced: compaction checks a run against its chunks only when
// writing it, so a later change to how runs decode or chunks are rebuilt
// must still read the blocks already on disk as they were written.
// Regenerate only with a new block version: ORRERY_WRITE_GOLDEN=1. (It
// was regenerated once under version 2, when packed groups took out their
// least value, before any release wrote a version 2 block.)
func TestRunBlockFormatIsFixed(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	var recs []coldRecord
	for k, c := range runchunktest.Cases(rng) {
		recs = append(recs, recordsOf(t, uint64(k+1), c, 100)...)
	}
	path := "testdata/cold-block-v2.bin"
	if os.Getenv("ORRERY_WRITE_GOLDEN") == "1" {
		require.NoError(t, os.WriteFile(path, encodeColdBlock(recs), 0o644))
	}
	v, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, byte(coldBlockVersion), v[0])
	d, err := parseColdBlock(v)
	require.NoError(t, err)
	runs := 0
	for _, b := range d.series {
		if b.run != nil {
			runs++
		}
	}
	require.Greater(t, runs, len(d.series)*3/4, "most series are runs")
	got, err := d.all()
	require.NoError(t, err)
	require.Equal(t, recs, got)
}
