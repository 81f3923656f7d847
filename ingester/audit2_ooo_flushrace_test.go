package ingester

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
)

// hookPutStore runs hook once, at the start of a Put.
type hookPutStore struct {
	chunks.Store
	hook func()
}

func (s *hookPutStore) Put(tenant string, batch []chunks.SeriesChunks) error {
	if h := s.hook; h != nil {
		s.hook = nil
		h()
	}
	return s.Store.Put(tenant, batch)
}

// storedSamples counts the samples of every stored chunk of series name:
// a sample in two chunks counts twice.
func storedSamples(t *testing.T, ti *testIngester, name string) (total int, distinct int) {
	t.Helper()
	seen := map[int64]bool{}
	require.NoError(t, ti.st.SelectBatches("a", -1<<62, 1<<62, 100, nil, func(b []chunks.SeriesChunks) error {
		for _, sc := range b {
			for _, c := range sc.Chunks {
				smps, err := c.Samples()
				require.NoError(t, err)
				total += len(smps)
				for _, smp := range smps {
					seen[smp.T] = true
				}
			}
		}
		return nil
	}, labels.MustNewMatcher(labels.MatchEqual, "__name__", name)))
	return total, len(seen)
}

// Audit: an out-of-order chunk whose end was older than the window was
// flushed, though samples inside the window could still join it (its
// max-chunk-age period reached into the window). A merge that replaced it
// while the flush wrote it kept its samples in memory in the new chunk,
// while the old one was stored: flushed again later, the store held two
// overlapping chunks with the same samples. A chunk is now flushed once
// its whole period left the window.
func TestAudit2FlushRacingMergeStoresSamplesTwice(t *testing.T) {
	const minute = int64(60_000)
	cfg := testConfig() // one-hour periods, ten samples a chunk
	ti := newTestIngester(t, t.TempDir(), cfg, withWindow(150*time.Minute))
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", onePush("x", 270*minute, 1))) // newest 4h30: the window starts at 2h00
	// 32 late samples from 2h00 to 2h05: cut into chunks.
	for k := range int64(32) {
		require.NoError(t, ti.push(t, "a", onePush("x", 120*minute+k*10_000, float64(k))))
	}
	// Newest 5h: the window starts at 2h30, after those chunks end.
	require.NoError(t, ti.push(t, "a", onePush("x", 300*minute, 1)))
	// 31 more from 2h40, unencoded: the next one merges them into the
	// 2h-3h period's last chunk.
	for k := range int64(31) {
		require.NoError(t, ti.push(t, "a", onePush("x", 160*minute+k*1000, float64(k))))
	}
	late := func() { require.NoError(t, ti.push(t, "a", onePush("x", 160*minute+31*1000, 31))) }
	hooked := &hookPutStore{Store: ti.store, hook: late}
	ti.store = hooked
	require.True(t, ti.flush(false))
	// Now a chunk is flushed only once its whole period left the window,
	// so no merge can replace it: this flush may store nothing, and the
	// late sample comes after it.
	if hooked.hook != nil {
		hooked.hook = nil
		late()
	}
	require.True(t, ti.flush(true))
	total, distinct := storedSamples(t, ti, "x")
	require.Equal(t, 66, distinct)
	require.Equal(t, distinct, total, "every sample stored once")
}
