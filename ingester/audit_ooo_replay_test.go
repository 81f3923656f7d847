package ingester

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Audit: a series flushed and forgotten, then created again by a late
// sample, learns its newest sample from the store, so the late sample is
// stored out of order. After kill -9, replay met the series record and the
// out-of-order record with no last sample for the series (the checkpoint
// no longer has it; the store is read only after replay), appended the
// late sample in order and made it the series' newest: a different value
// at a stored time was then accepted, and the window measured from the
// wrong sample. Replay now keeps such samples out of order until the store
// tells the series its newest.
func TestAuditOOOReplayOfRecreatedSeriesForgetsStoredNewest(t *testing.T) {
	dir := t.TempDir()
	opt := withWindow(time.Hour)
	ti := newTestIngester(t, dir, testConfig(), opt)
	require.NoError(t, ti.push(t, "a", series("x", 0, 100))) // 0s..99s
	ti.cfg.SeriesIdleTimeout = 0
	require.True(t, ti.flush(true))
	require.Empty(t, ti.head("a", false).all(), "flushed and forgotten")
	require.NoError(t, ti.checkpoint())

	// Created again in memory by a late sample: its newest (99s) comes from
	// the store, so 50.5s is out of order, inside the window.
	require.NoError(t, ti.push(t, "a", onePush("x", 50500, 50.5)))
	require.ErrorContains(t, ti.push(t, "a", onePush("x", 99000, -1)), "duplicate sample with a different value",
		"before the crash the stored newest is known")

	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig(), opt)
	defer ti.stop(t)

	s := ti.head("a", false).all()[0]
	last, _ := s.lastSample()
	assert.Equal(t, int64(99000), last.T, "replay must keep the stored newest sample as the series' newest")
	assert.Equal(t, int64(99000), ti.head("a", false).maxT.Load(), "the window must be measured from 99s")
	require.ErrorContains(t, ti.push(t, "a", onePush("x", 99000, -1)), "duplicate sample with a different value",
		"after kill -9 a different value at a stored timestamp must still conflict")
}

// Audit: the window is measured from the tenant's newest sample, which
// replay restored only from series still in memory: a tenant whose newest
// series was flushed and forgotten before the checkpoint came back with an
// older newest sample, and a sample the window refused before kill -9 was
// stored after it. Checkpoints now record each tenant's newest time.
func TestAuditOOOWindowAfterRestartForgetsForgottenSeries(t *testing.T) {
	dir := t.TempDir()
	opt := withWindow(10 * time.Minute)
	ti := newTestIngester(t, dir, testConfig(), opt)
	const minute = 60000
	require.NoError(t, ti.push(t, "a", onePush("x", 100*minute, 100*60), onePush("y", 50*minute, 50*60)))
	ti.cfg.SeriesIdleTimeout = 0
	require.True(t, ti.flush(true))
	require.Empty(t, ti.head("a", false).all())
	require.NoError(t, ti.checkpoint())

	require.ErrorContains(t, ti.push(t, "a", onePush("y", 45*minute, 45*60)), "outside the tenant's out-of-order window",
		"measured from x's 100m, 45m is outside the window")

	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig(), opt)
	defer ti.stop(t)
	require.ErrorContains(t, ti.push(t, "a", onePush("y", 45*minute, 45*60)), "outside the tenant's out-of-order window",
		"after kill -9 the same sample must still be refused")
}
