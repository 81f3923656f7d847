package ingester

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"
	"github.com/stretchr/testify/require"
)

// Audit: a series forgotten after its flush (the store holds it up to
// 50 s) is created again by a push at 60 s, and then takes a late sample
// at 55 s. The segment holding the 60 s samples record is lost to damage;
// the series record and the late sample's record survive. Replay kept
// 55 s out of order (the series had no newest yet) and then learned its
// newest from the store: 50 s, older than the late sample it held, so a
// push at 55 s with another value was taken as a new in-order sample. A
// series' newest after replay is now the newest of the store's and its
// out-of-order samples.
func TestAudit2ReplayedLateSampleNewerThanStoreIsNotTheNewest(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.SeriesIdleTimeout = time.Nanosecond
	opt := withWindow(time.Hour)
	ti := newTestIngester(t, dir, cfg, opt)
	require.NoError(t, ti.push(t, "a", series("x", 0, 51)))
	require.True(t, ti.flush(true))
	require.Empty(t, ti.head("a", false).all(), "x forgotten after its flush")
	require.NoError(t, ti.checkpoint())
	ti.crash(t)

	// What survives of the pushes that created x again: its series
	// record, and (in a later segment) its late sample at 55 s; the
	// samples record at 60 s between them is lost.
	w, err := wlog.NewSize(slog.New(slog.DiscardHandler), nil, filepath.Join(dir, "wal"), wlog.DefaultSegmentSize, compression.None)
	require.NoError(t, err)
	x := &memSeries{ref: 1000, lset: labels.FromStrings("__name__", "x", "job", "test")}
	require.NoError(t, w.Log(encodeSeries(nil, "a", []*memSeries{x})))
	_, err = w.NextSegmentSync()
	require.NoError(t, err)
	require.NoError(t, w.Log(encodeSamples(nil, recOOOSamples, []refSample{{ref: 1000, sample: sample{T: 55_000, V: 55}}}, nil, true)))
	require.NoError(t, w.Close())

	ti = newTestIngester(t, dir, cfg, opt)
	defer ti.stop(t)
	require.Contains(t, ti.samples(t, "a")["x"], int64(55_000))
	err = ti.push(t, "a", onePush("x", 55_000, 999))
	require.ErrorContains(t, err, "duplicate sample with a different value",
		"a second value at 55 s, which memory holds already, must be refused")
}

// Audit: one sample far in the future (a client's clock; the distributor
// lets it in when the tenant's creation_grace_period is 0, "unlimited")
// moved the tenant's newest time there, and the tenant-newest record (11)
// carried it from checkpoint to checkpoint though no series held it: every
// late sample of the tenant was refused, across restarts, until the wall
// clock reached the bad time. The window is now never measured from later
// than the ingester's clock.
func TestAudit2TenantNewestOutlivesEverySeriesHoldingIt(t *testing.T) {
	const minute = int64(60_000)
	dir := t.TempDir()
	cfg := testConfig()
	cfg.SeriesIdleTimeout = time.Nanosecond
	opt := withWindow(time.Hour)
	ti := newTestIngester(t, dir, cfg, opt)
	now := time.Now().UnixMilli()
	require.NoError(t, ti.push(t, "a", onePush("bad", now+10*365*24*60*minute, 1)))
	require.True(t, ti.flush(true))
	require.Empty(t, ti.head("a", false).all(), "the far-future series flushed and forgotten")
	require.NoError(t, ti.checkpoint())
	ti.crash(t)

	ti = newTestIngester(t, dir, cfg, opt)
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", onePush("x", now, 1)))
	require.NoError(t, ti.push(t, "a", onePush("x", now-10*minute, 2)),
		"ten minutes late, inside the hour's window measured from what the ingester holds")
}
