package ingester

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFlushesRaceUnderPushes: the shutdown flush of a leaving ingester
// (flush(true)) runs while the periodic one (flush(false)) does, under
// pushes that keep cutting chunks. No flush panics, and no chunk is
// dropped from memory that did not reach the store: every pushed sample
// is read back. Run with -race.
func TestFlushesRaceUnderPushes(t *testing.T) {
	cfg := testConfig()
	cfg.MaxChunkSamples = 2
	ti := newTestIngester(t, t.TempDir(), cfg)
	defer ti.stop(t)

	const seriesN, pushes = 8, 300
	var done atomic.Bool
	var flushers sync.WaitGroup
	for _, all := range []bool{true, false, true} {
		flushers.Add(1)
		go func() {
			defer flushers.Done()
			for !done.Load() {
				ti.flush(all)
			}
		}()
	}
	for k := range pushes {
		var batch [][]byte
		for n := range seriesN {
			batch = append(batch, series(fmt.Sprintf("s%d", n), k, 1))
		}
		require.NoError(t, ti.push(t, "team", batch...))
	}
	done.Store(true)
	flushers.Wait()

	got := ti.samples(t, "team")
	require.Len(t, got, seriesN)
	for name, ts := range got {
		require.Len(t, ts, pushes, "series %s keeps every sample", name)
	}
}
