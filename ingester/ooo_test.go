package ingester

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/limits"
)

// withWindow gives tenant "a" an out-of-order window.
func withWindow(window time.Duration) testOption {
	o := newTestOverrides()
	o.set("a", limits.Limits{OutOfOrderTimeWindow: window})
	return withOverrides(o)
}

// oooSeries are three series of every sample type, 15 s apart.
func oooSeries(n int) map[string][]chunks.Sample {
	out := map[string][]chunks.Sample{}
	for k := range n {
		t := int64(k) * 15000
		out["floats"] = append(out["floats"], chunks.Sample{T: t, V: float64(k)})
		out["ints"] = append(out["ints"], chunks.Sample{T: t, H: testHist(k % 30)})
		out["fhs"] = append(out["fhs"], chunks.Sample{T: t, FH: testHist(k % 30).ToFloat(nil)})
	}
	return out
}

// Samples sent in any order within the window are all stored, whatever
// happens between the pushes: a kill -9, a checkpoint, a flush to the
// store. Each push carries a random handful of samples of random series,
// and some pushes are sent twice (a client's retry).
func TestOutOfOrderSamplesSurviveCrashesCheckpointsAndFlushes(t *testing.T) {
	for seed := range uint64(4) {
		t.Run("", func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			dir := t.TempDir()
			opt := withWindow(24 * time.Hour)
			ti := newTestIngester(t, dir, testConfig(), opt)
			want := oooSeries(200)
			type entry struct {
				name string
				smp  chunks.Sample
			}
			var all []entry
			for name, smps := range want {
				for _, smp := range smps {
					all = append(all, entry{name, smp})
				}
			}
			slices.SortFunc(all, func(a, b entry) int { return strings.Compare(a.name, b.name) })
			r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			for len(all) > 0 {
				n := min(len(all), 1+r.IntN(12))
				var push [][]byte
				for _, e := range all[:n] {
					push = append(push, histPush(e.name, e.smp))
				}
				all = all[n:]
				require.NoError(t, ti.push(t, "a", push...))
				switch r.IntN(12) {
				case 0:
					ti.crash(t)
					ti = newTestIngester(t, dir, testConfig(), opt)
				case 1:
					require.NoError(t, ti.checkpoint())
				case 2:
					require.True(t, ti.flush(true))
				case 3:
					require.NoError(t, ti.push(t, "a", push...), "a retry is a duplicate")
				}
			}
			check := func(ti *testIngester, when string) {
				for name, smps := range want {
					t.Run(when+"/"+name, func(t *testing.T) { requireSamples(t, smps, ti.allSamples(t, "a", name)) })
				}
			}
			ti = throughEveryPath(t, ti, dir, check, opt)
			ti.stop(t)
		})
	}
}

// The window is measured from the newest sample the ingester holds of the
// tenant, once per push; outside it, an old sample is refused as without a
// window, with the window in the message, and the rest of the push is
// stored. A repeat of a sample stored out of order is a duplicate, another
// value at its time a conflict, in memory and in the store alike.
func TestOutOfOrderWindowBoundsAndConflicts(t *testing.T) {
	dir := t.TempDir()
	opt := withWindow(10 * time.Minute)
	ti := newTestIngester(t, dir, testConfig(), opt)
	const minute = 60000
	require.NoError(t, ti.push(t, "a", onePush("x", 60*minute, 60*60), onePush("y", 30*minute, 30*60)))
	// The tenant's newest is 60m: 55m for x is out of order and inside
	// the window; 49m for y is in order, newer than y's newest.
	require.NoError(t, ti.push(t, "a", onePush("x", 55*minute, 55*60), onePush("y", 49*minute, 49*60)))
	// 29m for y is older than y's newest and 31m older than the tenant's
	// newest minus the window: refused, while x's 51m is stored.
	err := ti.push(t, "a", onePush("y", 29*minute, 29*60), onePush("x", 51*minute, 51*60))
	require.ErrorContains(t, err, "out of order sample")
	require.ErrorContains(t, err, "outside the tenant's out-of-order window of 10m")
	require.ErrorContains(t, err, "1 of 2 samples rejected, the rest stored")
	// The window is measured from what was held before the push: 71m moves
	// the tenant's newest, but 52m in the same push is judged from 60m.
	require.NoError(t, ti.push(t, "a", onePush("x", 71*minute, 71*60), onePush("x", 52*minute, 52*60)))
	require.ErrorContains(t, ti.push(t, "a", onePush("x", 53*minute, 53*60)), "outside the tenant's out-of-order window")

	for _, when := range []string{"memory", "store"} {
		require.NoError(t, ti.push(t, "a", onePush("x", 55*minute, 55*60)), "%s: a repeat is a duplicate", when)
		require.ErrorContains(t, ti.push(t, "a", onePush("x", 55*minute, 1)), "duplicate sample with a different value", when)
		require.True(t, ti.flush(true))
	}
	require.Equal(t, map[string][]int64{
		"x": {51 * minute, 52 * minute, 55 * minute, 60 * minute, 71 * minute},
		"y": {30 * minute, 49 * minute},
	}, ti.samples(t, "a"))
	require.Equal(t, 3.0, testutil.ToFloat64(ti.m.oooAppended))

	// A tenant without a window refuses what "a" took.
	require.NoError(t, ti.push(t, "b", onePush("x", 60*minute, 60*60)))
	require.ErrorContains(t, ti.push(t, "b", onePush("x", 55*minute, 55*60)), "out of order sample")
	ti.stop(t)
}

// After a restart the window is measured from the newest sample replay
// restored, and a series created in memory again (forgotten once its
// chunks were flushed) learns its newest sample from the store: both
// needed to judge old samples as before the restart.
func TestOutOfOrderWindowAfterRestartAndForget(t *testing.T) {
	dir := t.TempDir()
	opt := withWindow(10 * time.Minute)
	ti := newTestIngester(t, dir, testConfig(), opt)
	const minute = 60000
	require.NoError(t, ti.push(t, "a", onePush("x", 60*minute, 60*60)))
	require.NoError(t, ti.push(t, "a", onePush("x", 55*minute, 55*60)))
	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig(), opt)
	require.NoError(t, ti.push(t, "a", onePush("x", 56*minute, 56*60)))
	require.ErrorContains(t, ti.push(t, "a", onePush("x", 49*minute, 49*60)), "outside the tenant's out-of-order window")
	require.NoError(t, ti.push(t, "a", onePush("x", 55*minute, 55*60)), "replayed out-of-order samples are held")
	require.ErrorContains(t, ti.push(t, "a", onePush("x", 55*minute, 1)), "duplicate sample with a different value")

	// Flushed and forgotten: the series comes back from the store.
	ti.cfg.SeriesIdleTimeout = 0
	require.True(t, ti.flush(true))
	require.Empty(t, ti.head("a", false).all())
	require.NoError(t, ti.push(t, "a", onePush("x", 57*minute, 57*60)))
	require.ErrorContains(t, ti.push(t, "a", onePush("x", 56*minute, 1)), "duplicate sample with a different value")
	require.Equal(t, map[string][]int64{"x": {55 * minute, 56 * minute, 57 * minute, 60 * minute}}, ti.samples(t, "a"))
	ti.stop(t)
}

// Pushes of many old samples each do not read the store for each: a
// series learns once how far its stored samples reach, and memory answers
// for every time after that.
func TestOutOfOrderSamplesReadTheStoreOnce(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig(), withWindow(time.Hour))
	require.NoError(t, ti.push(t, "a", series("x", 0, 10)))
	require.True(t, ti.flush(true))
	require.NoError(t, ti.push(t, "a", series("x", 100, 10)))
	// Memory after the restart holds 100-109 only: 0-9 are in the store.
	require.NoError(t, ti.checkpoint())
	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig(), withWindow(time.Hour))
	counting := &countingStore{Store: ti.store}
	ti.store = counting
	for k := 50; k < 90; k++ {
		require.NoError(t, ti.push(t, "a", onePush("x", int64(k)*1000, float64(k))))
	}
	require.Equal(t, 1, counting.lastSamples, "one read tells how far the store reaches")
	require.Zero(t, counting.sampleAt, "every time after it is judged from memory")
	require.NoError(t, ti.push(t, "a", onePush("x", 5000, 5)), "a stored sample is found there")
	require.Equal(t, 1, counting.sampleAt)
	got := ti.samples(t, "a")["x"]
	require.Len(t, got, 60)
	ti.stop(t)
}

// countingStore counts the reads judging old samples makes.
type countingStore struct {
	chunks.Store
	lastSamples, sampleAt int
}

func (c *countingStore) LastSamples(tenant string, series []labels.Labels, fn func(int, chunks.Sample)) error {
	c.lastSamples++
	return c.Store.LastSamples(tenant, series, fn)
}

func (c *countingStore) SampleAt(tenant string, ls labels.Labels, t int64) (chunks.Sample, bool, error) {
	c.sampleAt++
	return c.Store.SampleAt(tenant, ls, t)
}

// A checkpoint cut while a push's out-of-order samples were being
// appended holds them, and so does the WAL after it: replay keeps one of
// each. Here every sample is in both: the segments the checkpoint replaced
// are put back and the checkpoint renamed to precede them.
func TestReplayedOutOfOrderSamplesAreNotDoubled(t *testing.T) {
	dir := t.TempDir()
	opt := withWindow(time.Hour)
	ti := newTestIngester(t, dir, testConfig(), opt)
	require.NoError(t, ti.push(t, "a", series("x", 100, 5)))
	for k := 99; k > 80; k-- {
		require.NoError(t, ti.push(t, "a", onePush("x", int64(k)*1000, float64(k))))
	}
	wal := filepath.Join(dir, "wal")
	saved := t.TempDir()
	require.NoError(t, os.CopyFS(saved, os.DirFS(wal)))
	require.NoError(t, ti.checkpoint())
	ti.crash(t)
	cps, err := filepath.Glob(filepath.Join(wal, checkpointPrefix+"*"))
	require.NoError(t, err)
	require.Len(t, cps, 1)
	require.NoError(t, os.Rename(cps[0], filepath.Join(wal, checkpointPrefix+"00000000")))
	segs, err := filepath.Glob(filepath.Join(saved, "0*"))
	require.NoError(t, err)
	for _, seg := range segs {
		data, err := os.ReadFile(seg)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(wal, filepath.Base(seg)), data, 0o666))
	}

	ti = newTestIngester(t, dir, testConfig(), opt)
	held := func() int {
		n := 0
		for _, s := range ti.head("a", false).all() {
			cs, _ := s.copyChunks(math.MinInt64, math.MaxInt64)
			for _, c := range cs {
				smps, err := chunks.Chunk{MinTime: c.minT, MaxTime: c.maxT, Encoding: c.enc, Data: c.data}.Samples()
				require.NoError(t, err)
				n += len(smps)
			}
		}
		return n
	}
	require.Equal(t, 24, held())
	require.Len(t, ti.samples(t, "a")["x"], 24)
	ti.stop(t)
}
