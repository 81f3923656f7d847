package ingester

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
)

// AUDIT: the end of an open deletion is clamped to the tenant-wide newest
// sample, not the newest sample of the deleted series nor the request's
// time. One series with a (legal, creation grace period 10m by default,
// 0 = unlimited) future sample makes every deletion swallow the samples
// that matching series receive afterwards, up to that future time.
// docs/deletion.md promises "[start, min(end, now)]" and that samples
// arriving after the deletion are kept.
func TestAuditDeleteEndClampedByAnotherSeriesFutureSample(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	// "now" is 10s. Series "clock-skewed" already holds a sample at 600s
	// (10 minutes ahead, within the default creation grace period).
	require.NoError(t, ti.push(t, "a", series("up", 0, 10), onePush("clock_skewed", 600_000, 600)))
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	require.NoError(t, ti.deleteSeries(t, "a", math.MinInt64, math.MaxInt64, 10_000, up))
	// Samples of "up" arriving after the deletion, with later timestamps.
	require.NoError(t, ti.push(t, "a", series("up", 11, 10)))
	require.Equal(t, secondsIn(11, 20), ti.samples(t, "a")["up"],
		"samples written after the deletion, later than its time, must not be deleted")
}

// AUDIT: handover carries neither the tenant's deletion generation nor its
// tombstones. Once every ingester that took part in a deletion has handed
// over and left (a rolling replacement of ingesters), the queriers answer
// the generation the deletion replaced (0 for a tenant's first deletion).
// A frontend started afterwards (or any frontend sharing Memcached) then
// keys its lookups exactly as before the deletion and serves results
// cached before it, deleted samples included, for up to
// results_cache_ttl (7 days by default).
func TestAuditHandoverDropsDeletionGeneration(t *testing.T) {
	from := newTestIngester(t, t.TempDir(), testConfig())
	defer from.stop(t)
	to := newTestIngester(t, t.TempDir(), testConfig())
	defer to.stop(t)

	require.NoError(t, from.push(t, "team", series("m", 1, 25)))
	require.NoError(t, from.deleteSeries(t, "team", 5000, 14_000, 100_000, nameM))
	_, err := from.client.DeletionGeneration(ctxFor("team"), &ingesterpb.DeletionGenerationRequest{RaiseTo: 1_000_000})
	require.NoError(t, err)

	r := testRing(1, map[string]member{
		"from": {addr: from.addr, state: ringpb.State_LEAVING, tokens: []uint32{1<<31 + 1}},
		"to":   {addr: to.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
	})
	require.NoError(t, from.Handover(ctxFor("team"), from.addr, r, from.pool))
	resp, err := to.client.DeletionGeneration(ctxFor("team"), &ingesterpb.DeletionGenerationRequest{})
	require.NoError(t, err)
	require.GreaterOrEqual(t, resp.Generation, int64(1_000_000),
		"the successor must know the generation, or the cluster's generation goes back once the old ingesters left")
}

// AUDIT: retention drops a tombstone as soon as its end is before the
// cutoff, but retention deletes only chunks that END before the cutoff,
// and no read clamps to the cutoff. A chunk straddling the cutoff keeps
// samples the dropped tombstone hid: they are served again.
func TestAuditRetentionDropsTombstoneWhileItsSamplesRemain(t *testing.T) {
	o := newTestOverrides()
	o.set("a", limits.Limits{RetentionPeriod: time.Hour})
	ti := newTestIngester(t, t.TempDir(), unperiodicConfig(), withOverrides(o))
	defer ti.stop(t)

	// Ten samples a minute apart, 65 to 56 minutes ago: one chunk that
	// straddles the retention cutoff (60 minutes ago).
	all := ti.pushMinutesAgo(t, "a", 65*time.Minute)
	base := all[0]
	ti.flush(true)
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	// Delete the first four samples (65..62 minutes ago).
	require.NoError(t, ti.deleteSeries(t, "a", base, base+3*60_000, time.Now().UnixMilli(), up))
	require.Equal(t, all[4:], ti.samples(t, "a")["up"])

	ti.applyRetention()
	require.Equal(t, all[4:], ti.samples(t, "a")["up"],
		"retention dropped the tombstone but kept the straddling chunk: deleted samples are back")
}

// AUDIT: the end of an open deletion is clamped with the tenant head's
// newest time, which chunks received by handover (TransferChunks) never
// raise. On the successor of a handover the deletion ends at the querier's
// clock: stored samples with later timestamps (future ones, within the
// creation grace period) stay visible though the deletion covered all time.
func TestAuditDeleteOnHandoverSuccessorMissesFutureSamples(t *testing.T) {
	from := newTestIngester(t, t.TempDir(), testConfig())
	defer from.stop(t)
	to := newTestIngester(t, t.TempDir(), testConfig())
	defer to.stop(t)
	require.NoError(t, from.push(t, "team", series("m", 1, 9), onePush("m", 600_000, 600)))
	r := testRing(1, map[string]member{
		"from": {addr: from.addr, state: ringpb.State_LEAVING, tokens: []uint32{1<<31 + 1}},
		"to":   {addr: to.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
	})
	require.NoError(t, from.Handover(ctxFor("team"), from.addr, r, from.pool))
	require.Contains(t, to.samples(t, "team")["m"], int64(600_000))

	// Delete all of "m", at a querier time of 10s.
	require.NoError(t, to.deleteSeries(t, "team", math.MinInt64, math.MaxInt64, 10_000, nameM))
	require.Empty(t, to.samples(t, "team")["m"], "a deletion of all time, made when the ingester held these samples, must hide them all")
}

// unperiodicConfig is testConfig with periods of max_chunk_age so long
// that no period boundary cuts the ten samples pushMinutesAgo writes: with
// testConfig's hour, one fell among them in about one run in six,
// depending on the clock, and split the chunk these tests need whole.
func unperiodicConfig() Config {
	cfg := testConfig()
	cfg.MaxChunkAge = 100_000 * time.Hour
	return cfg
}

// pushMinutesAgo pushes ten samples of "up" a minute apart, from ago
// back, and returns their times.
func (ti *testIngester) pushMinutesAgo(t *testing.T, tenantID string, ago time.Duration) []int64 {
	t.Helper()
	base := time.Now().Add(-ago).UnixMilli() / 1000 * 1000
	var push [][]byte
	var all []int64
	for k := range int64(10) {
		ts := base + k*60_000
		all = append(all, ts)
		push = append(push, onePush("up", ts, float64(ts/1000)))
	}
	require.NoError(t, ti.push(t, tenantID, push...))
	return all
}
