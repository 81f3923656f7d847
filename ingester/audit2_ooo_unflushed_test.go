package ingester

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Audit: a series that took a few late samples (fewer than 32) and then
// only in-order ones kept them unencoded for good: a flush merged them
// into chunks only when the series was idle, and an active series never
// is, so they stayed in memory and in every checkpoint long after they
// left the window. A flush now merges unencoded samples whose period left
// the window, and stores their chunks.
func TestAudit2FewLateSamplesOfAnActiveSeriesAreNeverFlushed(t *testing.T) {
	const minute = int64(60_000)
	ti := newTestIngester(t, t.TempDir(), testConfig(), withWindow(time.Hour))
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", onePush("x", 30*minute, 1)))
	for k := range int64(5) {
		require.NoError(t, ti.push(t, "a", onePush("x", 10*minute+k*minute, float64(k))))
	}
	// The series goes on, in order, for ten hours: the late samples are
	// nine hours outside the window.
	for m := int64(31); m <= 630; m++ {
		require.NoError(t, ti.push(t, "a", onePush("x", m*minute, float64(m))))
	}
	require.True(t, ti.flush(false))
	_, stored := storedSamples(t, ti, "x")
	require.Positive(t, stored, "in-order chunks flushed")
	total := 0
	for _, s := range ti.head("a", false).all() {
		s.mu.Lock()
		total += len(s.ooo)
		for _, mc := range s.oooChunks {
			total += mc.c.NumSamples()
		}
		s.mu.Unlock()
	}
	require.Zero(t, total, "late samples nine hours outside the window still only in memory")
}
