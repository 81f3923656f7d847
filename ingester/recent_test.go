package ingester

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// readCountingStore counts the store reads a query makes.
type readCountingStore struct {
	chunks.Store
	chunksOf atomic.Int64
}

func (s *readCountingStore) ChunksOf(tenant string, mint, maxt int64, refs []chunks.SeriesRef) ([]chunks.SeriesChunks, error) {
	s.chunksOf.Add(1)
	return s.Store.ChunksOf(tenant, mint, maxt, refs)
}

// retainingIngester is a test ingester keeping stored chunks for period.
func retainingIngester(t *testing.T, period time.Duration) *testIngester {
	cfg := testConfig()
	cfg.RetainPeriod = period
	return newTestIngester(t, t.TempDir(), cfg)
}

// livePush encodes n samples of series name every step ms from fromMs.
func livePush(name string, fromMs, step int64, n int) []byte {
	buf := ingesterpb.AppendSeriesHeader(nil, ingesterpb.AppendLabels(nil, labels.FromStrings("__name__", name, "job", "test")), n)
	for k := range int64(n) {
		buf = ingesterpb.AppendSample(buf, fromMs+k*step, float64(fromMs+k*step))
	}
	return buf
}

// streamTimes is every sample time from start on of a QueryStream of
// tenant "a" over [start, MaxInt64], after checking that no sample came
// twice (a chunk sent from memory and the store both).
func streamTimes(t *testing.T, ti *testIngester, start int64) []int64 {
	t.Helper()
	out := streamTimesWithRepeats(t, ti, start)
	require.Len(t, slices.Compact(slices.Clone(out)), len(out), "a sample sent twice")
	return out
}

// streamTimesWithRepeats is streamTimes without the check: a chunk flushed
// while a query runs may come from memory and the store both (QueryStream).
func streamTimesWithRepeats(t *testing.T, ti *testIngester, start int64) []int64 {
	t.Helper()
	var out []int64
	for _, m := range queryFrom(t, ti, start, nil).msgs {
		for _, ws := range m.Series {
			out = append(out, timestamps(t, ws)...)
		}
	}
	slices.Sort(out)
	return timesFrom(out, start)
}

// recentState is what a series keeps of its stored chunks.
type recentState struct {
	maxTs         []int64 // of each kept chunk
	minT          int64   // of the oldest kept chunk
	bytes         int     // encoded, of every kept chunk
	storeOnlyMaxT int64
}

// recentOf reads s's recent chunks under its lock and returns them for
// assertions made without it: a failed require holding the lock would
// deadlock the shutdown flush.
func recentOf(s *memSeries) recentState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := recentState{storeOnlyMaxT: s.storeOnlyMaxT}
	for k, mc := range s.recent {
		if k == 0 {
			st.minT = mc.minT
		}
		st.maxTs = append(st.maxTs, mc.maxT)
		st.bytes += len(mc.c.Bytes())
	}
	return st
}

func timesFrom(all []int64, start int64) []int64 {
	k, _ := slices.BinarySearch(all, start)
	return all[k:]
}

// Flushed chunks whose newest sample is within the retain period stay in
// memory: a query of the newest minutes reads memory alone, a query
// reaching further reads the store, and either answers every sample once,
// never a chunk from memory and the store both.
func TestRecentChunksAnswerTheNewestMinutesFromMemory(t *testing.T) {
	cfg := testConfig()
	cfg.RetainPeriod = 10 * time.Minute
	dir := t.TempDir()
	ti := newTestIngester(t, dir, cfg)
	defer func() { ti.stop(t) }()
	counting := &readCountingStore{Store: ti.store}
	ti.store = counting

	const step = 15_000
	now := time.Now().UnixMilli()
	from := now - 40*60_000
	const n = 161 // 40 minutes: 16 chunks of 10, the newest sample in the head
	require.NoError(t, ti.push(t, "a", livePush("m", from, step, n)))
	var all []int64
	for k := range int64(n) {
		all = append(all, from+k*step)
	}
	flushed := time.Now()
	require.True(t, ti.flushAt(flushed, false))

	// Where chunks end depends on the clock (chunk periods are offset per
	// series), so what stays is checked against the rule, not counted.
	s := ti.head("a", false).all()[0]
	kept := recentOf(s)
	require.NotEmpty(t, kept.maxTs, "the chunks ending in the last 10 minutes stay in memory")
	cutoff := flushed.Add(-cfg.RetainPeriod).UnixMilli()
	require.GreaterOrEqual(t, slices.Min(kept.maxTs), cutoff, "only chunks ending in the period stay")
	require.Less(t, kept.storeOnlyMaxT, cutoff, "every older chunk was released")
	oldestRecent, storeOnly := kept.minT, kept.storeOnlyMaxT

	for _, c := range []struct {
		name      string
		start     int64
		readStore bool
	}{
		{"newest minutes", now - 5*60_000, false},
		{"from the oldest recent chunk", oldestRecent, false},
		{"after the newest released sample", storeOnly + 1, false},
		{"from the newest released sample", storeOnly, true},
		{"half an hour", now - 30*60_000, true},
		{"everything", math.MinInt64, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := counting.chunksOf.Load()
			require.Equal(t, timesFrom(all, c.start), streamTimes(t, ti, c.start), "every sample once")
			require.Equal(t, c.readStore, counting.chunksOf.Load() > before, "store read")
		})
	}

	// A later flush releases what aged past the period: the store answers
	// for it, and the newest minutes still come from memory.
	ti.cfg.RetainPeriod = 3 * time.Minute
	flushed = time.Now()
	require.True(t, ti.flushAt(flushed, false))
	later := recentOf(s)
	require.Less(t, len(later.maxTs), len(kept.maxTs))
	cutoff = flushed.Add(-ti.cfg.RetainPeriod).UnixMilli()
	if len(later.maxTs) > 0 {
		require.GreaterOrEqual(t, slices.Min(later.maxTs), cutoff)
	}
	require.Less(t, later.storeOnlyMaxT, cutoff)
	for _, start := range []int64{now - 2*60_000, now - 5*60_000, math.MinInt64} {
		require.Equal(t, timesFrom(all, start), streamTimes(t, ti, start))
	}
	before := counting.chunksOf.Load()
	streamTimes(t, ti, now-60_000)
	require.Equal(t, before, counting.chunksOf.Load(), "the newest minute is in memory")

	// A restart keeps none of it in memory and answers the same.
	ti.stop(t)
	ti = newTestIngester(t, dir, cfg)
	for _, start := range []int64{now - 5*60_000, math.MinInt64} {
		require.Equal(t, timesFrom(all, start), streamTimes(t, ti, start))
	}
}

// Queries racing flushes that store chunks, keep them as recent and release
// them again miss no sample between memory and the store; once the flushes
// stop, every sample comes once.
func TestRecentChunksRacingFlushesAnswerEverySampleOnce(t *testing.T) {
	ti := retainingIngester(t, 2*time.Minute)
	defer ti.stop(t)

	const step = 100
	now := time.Now().UnixMilli()
	from := now - 5*60_000
	var (
		mu      sync.Mutex
		written []int64
		done    = make(chan struct{})
		wg      sync.WaitGroup
	)
	wg.Add(2)
	go func() { // flushes, with a retain period that keeps changing
		defer wg.Done()
		for k := 0; ; k++ {
			select {
			case <-done:
				return
			default:
			}
			ti.flushMu.Lock()
			ti.cfg.RetainPeriod = time.Duration(k%4) * time.Minute
			ti.flushMu.Unlock()
			ti.flush(false)
		}
	}()
	go func() { // writes ten samples a push, up to now
		defer wg.Done()
		defer close(done)
		for t0 := from; t0+10*step <= now; t0 += 10 * step {
			if err := ti.push(t, "a", livePush("m", t0, step, 10)); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for k := range int64(10) {
				written = append(written, t0+k*step)
			}
			mu.Unlock()
		}
	}()
	for {
		mu.Lock()
		want := slices.Clone(written)
		mu.Unlock()
		for _, start := range []int64{math.MinInt64, now - 3*60_000, now - 60_000} {
			got := slices.Compact(streamTimesWithRepeats(t, ti, start))
			// Samples written after the copy was taken may show too.
			wantFrom := timesFrom(want, start)
			require.GreaterOrEqual(t, len(got), len(wantFrom))
			if len(wantFrom) > 0 {
				require.Equal(t, wantFrom, got[:len(wantFrom)], "start %d: every sample written once", start)
			}
		}
		select {
		case <-done:
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			for _, start := range []int64{math.MinInt64, now - 3*60_000, now - 60_000} {
				require.Equal(t, timesFrom(written, start), streamTimes(t, ti, start))
			}
			return
		default:
		}
	}
}

// A series whose samples run ahead of the ingester's clock (a sender's
// clock, a tenant without a creation grace period) keeps in memory only the
// stored chunks within the retain period of the clock on either side, not
// every chunk until the clock passes it.
func TestRecentChunksAheadOfTheClockAreReleased(t *testing.T) {
	ti := retainingIngester(t, 15*time.Minute)
	defer ti.stop(t)

	const step = 15_000
	from := time.Now().Add(2 * time.Hour).UnixMilli()
	all := make([]int64, 481)
	for k := range all {
		all[k] = from + int64(k)*step
	}
	require.NoError(t, ti.push(t, "a", livePush("m", from, step, len(all)))) // 2h of samples, 2h ahead
	require.True(t, ti.flush(false))
	require.True(t, ti.flushAt(time.Now().Add(30*time.Minute), false))

	require.Empty(t, recentOf(ti.head("a", false).all()[0]).maxTs, "no chunk 1.5h ahead stays in memory")
	require.Equal(t, all, streamTimes(t, ti, math.MinInt64))
}

// A retain period of 0, and the flush of everything at shutdown or before a
// handover, keep no stored chunk in memory, the one ending at the largest
// time there is included.
func TestRecentChunksNoneKeptWithoutARetainPeriod(t *testing.T) {
	cfg := testConfig()
	require.Zero(t, cfg.RetainPeriod)
	ti := newTestIngester(t, t.TempDir(), cfg)
	defer ti.stop(t)

	require.NoError(t, ti.push(t, "a", onePush("m", math.MaxInt64-1, 1), onePush("m", math.MaxInt64, 2)))
	require.True(t, ti.flush(true))
	require.Empty(t, recentOf(ti.head("a", false).all()[0]).maxTs)

	ti.cfg.RetainPeriod = time.Hour
	require.NoError(t, ti.push(t, "a", livePush("n", time.Now().UnixMilli(), 1000, 25)))
	require.True(t, ti.flush(false))
	var n *memSeries
	for _, s := range ti.head("a", false).all() {
		if s.lset.Get("__name__") == "n" {
			n = s
		}
	}
	kept := recentOf(n)
	require.NotEmpty(t, kept.maxTs)
	require.Equal(t, float64(len(kept.maxTs)), testutil.ToFloat64(ti.m.recentChunks), "orrery_ingester_retained_chunks")
	require.Equal(t, float64(kept.bytes), testutil.ToFloat64(ti.m.recentBytes), "orrery_ingester_retained_chunk_bytes")
	require.True(t, ti.flush(false), "a flush with nothing new")
	require.Equal(t, float64(len(kept.maxTs)), testutil.ToFloat64(ti.m.recentChunks), "counts the chunks kept before")
	require.Equal(t, float64(kept.bytes), testutil.ToFloat64(ti.m.recentBytes))
	require.True(t, ti.flush(true), "a shutdown flush")
	require.Empty(t, recentOf(n).maxTs, "releases every kept chunk")
	require.Zero(t, testutil.ToFloat64(ti.m.recentChunks))
	require.Zero(t, testutil.ToFloat64(ti.m.recentBytes))
}

// A series forgotten for being idle takes its kept chunks with it: the
// gauges count only what memory still holds.
func TestRecentChunksOfForgottenSeriesAreNotCounted(t *testing.T) {
	ti := retainingIngester(t, time.Hour)
	defer ti.stop(t)

	now := time.Now()
	require.NoError(t, ti.push(t, "a", livePush("m", now.UnixMilli(), 1000, 25)))
	require.True(t, ti.flushAt(now, false))
	require.Positive(t, testutil.ToFloat64(ti.m.recentChunks))

	// Ten minutes on, the series is idle: its head is cut and stored, and
	// the series forgotten, its kept chunks with it.
	ti.flushMu.Lock()
	ti.cfg.ChunkIdleTimeout, ti.cfg.SeriesIdleTimeout = time.Minute, time.Minute
	ti.flushMu.Unlock()
	require.True(t, ti.flushAt(now.Add(10*time.Minute), false))
	require.Empty(t, ti.head("a", false).all())
	require.Zero(t, testutil.ToFloat64(ti.m.recentChunks))
	require.Zero(t, testutil.ToFloat64(ti.m.recentBytes))
}
