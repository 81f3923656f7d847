package ingester

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// AUDIT2: retention drops a tombstone once MaxTime + max_chunk_span is
// before the cutoff, but max_chunk_span is read from the store only: chunks
// still in memory (not flushed: head chunks live up to max_chunk_age, 2h by
// default, longer than a short retention_period) hold samples the tombstone
// hid, and they are served again (and later flushed to the store, which
// then keeps them too).
func TestAudit2RetentionDropsTombstoneWhileMemoryHoldsItsSamples(t *testing.T) {
	o := newTestOverrides()
	o.set("a", limits.Limits{RetentionPeriod: time.Hour})
	cfg := unperiodicConfig()
	cfg.MaxChunkSamples = 120
	ti := newTestIngester(t, t.TempDir(), cfg, withOverrides(o))
	defer ti.stop(t)

	// Ten samples a minute apart, 75 to 66 minutes ago, in memory only.
	all := ti.pushMinutesAgo(t, "a", 75*time.Minute)
	base := all[0]
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	// Delete the first four samples (75..72 minutes ago).
	require.NoError(t, ti.deleteSeries(t, "a", base, base+3*60_000, time.Now().UnixMilli(), up))
	ti.applyRetention()
	require.Equal(t, all[4:], ti.samples(t, "a")["up"],
		"retention dropped the tombstone while memory still holds the samples it hid: deleted samples are back")
	ti.flush(true)
	require.Equal(t, all[4:], ti.samples(t, "a")["up"], "and the store keeps them once flushed")
}

// AUDIT2: a transferred generation is raised to as is. A peer (buggy,
// malicious, or one whose store holds a corrupt but non-negative 8-byte
// value) that hands over math.MaxInt64 pins the tenant's generation there:
// every later raise computes max(RaiseTo, gen+1), gen+1 overflows to
// MinInt64, and the generation never changes again, so frontends keep
// serving results cached before every later deletion.
func TestAudit2TransferredMaxGenerationFreezesGeneration(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	stream, err := ti.client.TransferChunks(ctxFor("a"))
	require.NoError(t, err)
	require.NoError(t, stream.Send(&ingesterpb.TransferChunksRequest{Deletions: &ingesterpb.TenantDeletions{Generation: math.MaxInt64}}))
	_, err = stream.CloseAndRecv()
	require.NoError(t, err)

	gen := func(raise int64) int64 {
		resp, err := ti.client.DeletionGeneration(ctxFor("a"), &ingesterpb.DeletionGenerationRequest{RaiseTo: raise})
		require.NoError(t, err)
		return resp.Generation
	}
	before := gen(0)
	after := gen(time.Now().UnixNano()) // the next completed deletion
	require.NotEqual(t, before, after, "a completed deletion must change the generation caches key by")
}

// AUDIT2: the end of a deletion is clamped to the newest *sample* of the
// selected series, but exemplars have their own timestamps (future ones
// within the creation grace period, like samples). POST
// /purger/delete_tenant (all time) leaves an exemplar later than every
// sample readable, with its trace ID: "everything they hold is deleted,
// future-dated samples included" (docs/deletion.md), not the exemplars.
func TestAudit2DeleteTenantLeavesFutureExemplar(t *testing.T) {
	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalExemplarsPerUser: 10})
	ti := newTestIngester(t, t.TempDir(), testConfig(), withOverrides(o))
	defer ti.stop(t)
	// A sample at 1s, and an exemplar of the series at 600s.
	buf := ingesterpb.AppendSeriesHeader(nil, histLabels("x"), 1)
	buf = ingesterpb.AppendSample(buf, 1000, 1)
	buf = ingesterpb.AppendExemplarSeriesHeader(buf, histLabels("x"), 1)
	buf = ingesterpb.AppendExemplar(buf, ingesterpb.AppendLabels(nil, labels.FromStrings("trace_id", "secret")), 600_000, 1)
	require.NoError(t, ti.push(t, "a", buf))
	require.Len(t, ti.exemplars(t, "a", 0, math.MaxInt64)["x"], 1)
	// delete_tenant at a querier time of 10s.
	require.NoError(t, ti.deleteSeries(t, "a", math.MinInt64, math.MaxInt64, 10_000, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")))
	require.Empty(t, ti.samples(t, "a")["x"])
	require.Empty(t, ti.exemplars(t, "a", math.MinInt64, math.MaxInt64), "every exemplar the tenant held when it was deleted must be gone")
}
