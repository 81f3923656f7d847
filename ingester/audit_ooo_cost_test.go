package ingester

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// pushShuffled pushes n samples of one series, a second apart, in a
// shuffled order, 100 a push, after a sample newer than all of them; every
// flushEvery pushes (0: never) it flushes. It returns the ingester, still
// running.
func pushShuffled(t testing.TB, n, flushEvery int, window time.Duration) *testIngester {
	cfg := testConfig()
	cfg.MaxChunkSamples = 120
	ti := newTestIngester(t, t.TempDir(), cfg, withWindow(window))
	require.NoError(t, ti.push(t, "a", onePush("x", int64(n+1)*1000, float64(n+1))))
	ts := make([]int64, n)
	for k := range ts {
		ts[k] = int64(k) * 1000
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { ts[i], ts[j] = ts[j], ts[i] })
	const batch = 100
	for k := 0; k < n; k += batch {
		buf := ingesterpb.AppendSeriesHeader(nil, ingesterpb.AppendLabels(nil, labels.FromStrings("__name__", "x", "job", "test")), batch)
		for _, tt := range ts[k : k+batch] {
			buf = ingesterpb.AppendSample(buf, tt, float64(tt/1000))
		}
		require.NoError(t, ti.push(t, "a", buf))
		if flushEvery > 0 && (k/batch)%flushEvery == flushEvery-1 {
			ti.flush(false)
		}
	}
	return ti
}

// Audit: judging shuffled out-of-order samples decoded every out-of-order
// chunk covering their time, in memory and in the store, so its cost grew
// with the square of a series' late samples. Now a series' out-of-order
// chunks stay sorted and apart in time, each in one max-chunk-age period
// and at most max-chunk-samples long, so a time is looked up in one chunk;
// and chunks that samples may still join stay in memory, so the store is
// not filled with overlapping ones. BenchmarkPushShuffledOutOfOrder
// measures the cost.
func TestAuditOOOChunksStayApartAndInMemory(t *testing.T) {
	ti := pushShuffled(t, 8000, 10, 1000*time.Hour)
	defer ti.stop(t)
	s := ti.head("a", false).all()[0]
	s.mu.Lock()
	cs := s.oooChunks
	age := ti.cfg.MaxChunkAge.Milliseconds()
	for k, mc := range cs {
		require.Equal(t, floorDiv(mc.minT, age), floorDiv(mc.maxT, age), "chunk %d within one period", k)
		require.LessOrEqual(t, mc.c.NumSamples(), ti.cfg.MaxChunkSamples)
		if k > 0 {
			require.Greater(t, mc.minT, cs[k-1].maxT, "chunk %d starts after the one before ends", k)
		}
	}
	s.mu.Unlock()
	// Only the in-order sample's chunk may have been flushed.
	var stored int
	require.NoError(t, ti.st.SelectBatches("a", -1<<62, 1<<62, 100, nil, func(b []chunks.SeriesChunks) error {
		for _, sc := range b {
			stored += len(sc.Chunks)
		}
		return nil
	}, labels.MustNewMatcher(labels.MatchEqual, "__name__", "x")))
	require.LessOrEqual(t, stored, 1)
	require.Len(t, ti.samples(t, "a")["x"], 8001)
}

func BenchmarkPushShuffledOutOfOrder(b *testing.B) {
	for range b.N {
		pushShuffled(b, 8000, 10, 1000*time.Hour).stop(b)
	}
}
