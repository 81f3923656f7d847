package ingester

import (
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
)

// testOverrides are per-tenant limits that a test changes while the
// ingester runs, as the overrides file does; other tenants are unlimited.
type testOverrides struct {
	mu      sync.Mutex
	tenants map[string]*limits.Limits
}

func newTestOverrides() *testOverrides { return &testOverrides{tenants: map[string]*limits.Limits{}} }

func (o *testOverrides) For(tenant string) *limits.Limits {
	o.mu.Lock()
	defer o.mu.Unlock()
	if l, ok := o.tenants[tenant]; ok {
		return l
	}
	return &limits.Limits{}
}

// set replaces the tenant's limits; what For returned before is unchanged.
func (o *testOverrides) set(tenant string, l limits.Limits) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tenants[tenant] = &l
}

// staticRing is a real ring of n healthy ACTIVE ingesters at replication
// factor rf.
func staticRing(n, rf int) *ring.Ring {
	desc := &ringpb.Desc{Instances: map[string]*ringpb.Instance{}}
	for k := range n {
		id := "ing-" + strconv.Itoa(k)
		desc.Instances[id] = &ringpb.Instance{Id: id, State: ringpb.State_ACTIVE, OwnsTokens: true,
			Tokens: []uint32{uint32(k) << 24}, HeartbeatMs: time.Now().UnixMilli()}
	}
	return ring.NewStaticRing(ring.Config{ReplicationFactor: rf, HeartbeatTimeout: time.Hour}, desc)
}

// fixedRing is a ring of healthy ingesters at replication factor rf.
type fixedRing struct{ healthy, rf int }

func (r fixedRing) HealthyIngesters() int  { return r.healthy }
func (r fixedRing) ReplicationFactor() int { return r.rf }

// numbered encodes series {__name__=name, i=i} with samples at seconds
// from..from+n-1 whose value is the second; stored names it name+i.
func numbered(name string, i, from, n int) []byte {
	enc := ingesterpb.AppendLabels(nil, labels.FromStrings("__name__", name, "i", strconv.Itoa(i)))
	buf := ingesterpb.AppendSeriesHeader(nil, enc, n)
	for k := from; k < from+n; k++ {
		buf = ingesterpb.AppendSample(buf, int64(k)*1000, float64(k))
	}
	return buf
}

// stored returns how many samples each series of the tenant holds, memory
// and store de-duplicated, by name+i.
func (ti *testIngester) stored(t *testing.T, tenantID string) map[string]int {
	t.Helper()
	stream, err := ti.client.QueryStream(ctxFor(tenantID), &ingesterpb.QueryRequest{StartMs: math.MinInt64, EndMs: math.MaxInt64})
	require.NoError(t, err)
	out := map[string]int{}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		for _, s := range resp.Series {
			var b labels.ScratchBuilder
			ls := ingesterpb.ToLabels(&b, s.Labels)
			seen := map[int64]bool{}
			for _, c := range s.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
				require.NoError(t, err)
				it := chk.Iterator(nil)
				for it.Next() == chunkenc.ValFloat {
					ts, _ := it.At()
					seen[ts] = true
				}
			}
			out[ls.Get("__name__")+ls.Get("i")] = len(seen)
		}
	}
}

// gaugeOf reads a gauge with label tenant from reg.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name, tenantID string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "tenant" && lp.GetValue() == tenantID {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{tenant=%q}", name, tenantID)
	return 0
}

func (ti *testIngester) rejected(tenantID, reason string) float64 {
	return testutil.ToFloat64(ti.m.samplesRejected.WithLabelValues(tenantID, reason))
}

func TestLocalLimit(t *testing.T) {
	for _, c := range []struct {
		name                 string
		global, rf, n, local int
	}{
		{"unlimited stays unlimited", 0, 3, 3, 0},
		{"one ingester holds the whole limit", 1000, 1, 1, 1000},
		{"RF 1 divides", 1000, 1, 4, 250},
		{"RF 3 on 3 ingesters: every ingester holds every series", 1000, 3, 3, 1000},
		{"RF 3 on 6", 1000, 3, 6, 500},
		{"rounded up, in the tenant's favour", 1000, 3, 7, 429},
		{"rounded up, small", 10, 1, 3, 4},
		{"RF above the ingesters counts as their number", 1000, 3, 1, 1000},
		{"RF 3 on 2", 1000, 3, 2, 1000},
		{"ring not yet seen: as if alone", 1000, 3, 0, 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.local, localLimit(c.global, c.rf, c.n))
		})
	}
}

func TestSeriesLimits(t *testing.T) {
	type push struct {
		series [][]byte
		err    []string // substrings of the error; none for success
	}
	for _, c := range []struct {
		name     string
		limits   limits.Limits
		healthy  int
		rf       int
		pushes   []push
		stored   map[string]int
		rejected map[string]float64
	}{
		{
			name:   "per user",
			limits: limits.Limits{MaxGlobalSeriesPerUser: 3},
			pushes: []push{{series: [][]byte{numbered("x", 0, 0, 1), numbered("x", 1, 0, 1), numbered("y", 0, 0, 1), numbered("y", 1, 0, 1), numbered("z", 0, 0, 1)},
				err: []string{"per-user series limit of 3 exceeded (err-orrery-max-series-per-user: raise the tenant's max_global_series_per_user or -ingester.max-global-series-per-user)", "(2 of 5 samples rejected, the rest stored)"}}},
			stored:   map[string]int{"x0": 1, "x1": 1, "y0": 1},
			rejected: map[string]float64{"per_user_series_limit": 2},
		},
		{
			name:   "per metric",
			limits: limits.Limits{MaxGlobalSeriesPerMetric: 2},
			pushes: []push{{series: [][]byte{numbered("a", 0, 0, 1), numbered("a", 1, 0, 1), numbered("a", 2, 0, 3), numbered("b", 0, 0, 1)},
				err: []string{`per-metric series limit of 2 exceeded for metric "a" (err-orrery-max-series-per-metric: raise the tenant's max_global_series_per_metric or -ingester.max-global-series-per-metric)`, "(3 of 6 samples rejected"}}},
			stored:   map[string]int{"a0": 1, "a1": 1, "b0": 1},
			rejected: map[string]float64{"per_metric_series_limit": 3},
		},
		{
			name:   "existing series are always accepted",
			limits: limits.Limits{MaxGlobalSeriesPerUser: 2, MaxGlobalSeriesPerMetric: 2},
			pushes: []push{
				{series: [][]byte{numbered("x", 0, 0, 1), numbered("x", 1, 0, 1)}},
				{series: [][]byte{numbered("x", 0, 1, 2), numbered("x", 2, 0, 1), numbered("x", 1, 1, 2)}, err: []string{"per-user series limit of 2", "(1 of 5 samples rejected"}},
				{series: [][]byte{numbered("x", 0, 3, 1), numbered("x", 1, 3, 1)}},
			},
			stored:   map[string]int{"x0": 4, "x1": 4},
			rejected: map[string]float64{"per_user_series_limit": 1},
		},
		{
			name:   "the first refusal is explained, every one is counted",
			limits: limits.Limits{MaxGlobalSeriesPerUser: 3, MaxGlobalSeriesPerMetric: 2},
			pushes: []push{{series: [][]byte{numbered("a", 0, 0, 1), numbered("a", 1, 0, 1), numbered("a", 2, 0, 1), numbered("b", 0, 0, 1), numbered("c", 0, 0, 1)},
				err: []string{`per-metric series limit of 2 exceeded for metric "a"`}}},
			stored:   map[string]int{"a0": 1, "a1": 1, "b0": 1},
			rejected: map[string]float64{"per_metric_series_limit": 1, "per_user_series_limit": 1},
		},
		{
			name:   "the share of one of 6 ingesters at RF 3, the message names the global limit",
			limits: limits.Limits{MaxGlobalSeriesPerUser: 4}, healthy: 6, rf: 3,
			pushes: []push{{series: [][]byte{numbered("x", 0, 0, 1), numbered("x", 1, 0, 1), numbered("x", 2, 0, 1)},
				err: []string{"per-user series limit of 4 exceeded"}}},
			stored:   map[string]int{"x0": 1, "x1": 1},
			rejected: map[string]float64{"per_user_series_limit": 1},
		},
		{
			name:   "a lone ingester at RF 3 holds the global limit, not three times it",
			limits: limits.Limits{MaxGlobalSeriesPerUser: 2}, healthy: 1, rf: 3,
			pushes: []push{{series: [][]byte{numbered("x", 0, 0, 1), numbered("x", 1, 0, 1), numbered("x", 2, 0, 1)},
				err: []string{"per-user series limit of 2 exceeded"}}},
			stored:   map[string]int{"x0": 1, "x1": 1},
			rejected: map[string]float64{"per_user_series_limit": 1},
		},
		{
			name:   "unlimited",
			pushes: []push{{series: [][]byte{numbered("x", 0, 0, 1), numbered("x", 1, 0, 1), numbered("y", 0, 0, 1)}}},
			stored: map[string]int{"x0": 1, "x1": 1, "y0": 1},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := newTestOverrides()
			o.set("a", c.limits)
			ringOpt := withRing(1, 1)
			if c.healthy > 0 {
				ringOpt = withRing(c.healthy, c.rf)
			}
			ti := newTestIngester(t, t.TempDir(), testConfig(), withOverrides(o), ringOpt)
			defer ti.stop(t)
			for _, p := range c.pushes {
				err := ti.push(t, "a", p.series...)
				if len(p.err) == 0 {
					require.NoError(t, err)
					continue
				}
				require.Equal(t, codes.InvalidArgument, status.Code(err), "a 400 for the client")
				for _, msg := range p.err {
					require.Contains(t, status.Convert(err).Message(), msg)
				}
			}
			require.Equal(t, c.stored, ti.stored(t, "a"))
			for _, reason := range reasonLabels {
				require.Equal(t, c.rejected[reason], ti.rejected("a", reason), reason)
			}
			require.Equal(t, float64(len(c.stored)), gaugeOf(t, ti.reg, "orrery_ingester_active_series", "a"))
		})
	}
}

// The limits are read on every push: a change applies to the next push,
// per tenant, and lowering a limit below what a tenant holds keeps its
// series accepting samples.
func TestSeriesLimitsFollowOverrides(t *testing.T) {
	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalSeriesPerUser: 1})
	ti := newTestIngester(t, t.TempDir(), testConfig(), withOverrides(o))
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", numbered("x", 0, 0, 1)))
	require.Error(t, ti.push(t, "a", numbered("x", 1, 0, 1)))
	require.NoError(t, ti.push(t, "b", numbered("x", 0, 0, 1), numbered("x", 1, 0, 1)), "another tenant has its own limits")

	o.set("a", limits.Limits{MaxGlobalSeriesPerUser: 3})
	require.NoError(t, ti.push(t, "a", numbered("x", 1, 0, 1), numbered("x", 2, 0, 1)))
	o.set("a", limits.Limits{MaxGlobalSeriesPerUser: 1})
	require.NoError(t, ti.push(t, "a", numbered("x", 0, 1, 1), numbered("x", 1, 1, 1), numbered("x", 2, 1, 1)))
	require.Error(t, ti.push(t, "a", numbered("x", 3, 0, 1)))
	require.Equal(t, map[string]int{"x0": 2, "x1": 2, "x2": 2}, ti.stored(t, "a"))
}

// What the WAL holds was acknowledged: replay restores it whatever the
// limits are now, and the limits then apply to new series only.
func TestReplayIgnoresSeriesLimits(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	require.NoError(t, ti.push(t, "a", numbered("x", 0, 0, 1), numbered("x", 1, 0, 1)))
	require.NoError(t, ti.checkpoint())
	require.NoError(t, ti.push(t, "a", numbered("x", 2, 0, 1), numbered("y", 0, 0, 1)))
	ti.crash(t)

	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalSeriesPerUser: 1, MaxGlobalSeriesPerMetric: 1})
	ti = newTestIngester(t, dir, testConfig(), withOverrides(o))
	defer ti.stop(t)
	require.Equal(t, map[string]int{"x0": 1, "x1": 1, "x2": 1, "y0": 1}, ti.stored(t, "a"))
	require.Equal(t, map[string]int{"x": 3, "y": 1}, ti.head("a", false).perMetric, "replay counts per metric")
	require.NoError(t, ti.push(t, "a", numbered("x", 0, 1, 1), numbered("y", 0, 1, 1)))
	require.Error(t, ti.push(t, "a", numbered("z", 0, 0, 1)))
}

// Series forgotten after idling leave the counts, so new ones fit again.
func TestIdleSeriesLeaveTheLimits(t *testing.T) {
	cfg := testConfig()
	cfg.SeriesIdleTimeout = time.Nanosecond
	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalSeriesPerUser: 2, MaxGlobalSeriesPerMetric: 1})
	ti := newTestIngester(t, t.TempDir(), cfg, withOverrides(o))
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", numbered("x", 0, 0, 1), numbered("y", 0, 0, 1)))
	require.Error(t, ti.push(t, "a", numbered("x", 1, 0, 1)))
	require.Equal(t, map[string]int{"x": 1, "y": 1}, ti.head("a", false).perMetric)

	ti.flush(true)
	require.Empty(t, ti.head("a", false).perMetric)
	require.Zero(t, gaugeOf(t, ti.reg, "orrery_ingester_active_series", "a"))
	require.NoError(t, ti.push(t, "a", numbered("x", 1, 0, 1), numbered("z", 0, 0, 1)))
	require.Equal(t, map[string]int{"x0": 1, "x1": 1, "y0": 1, "z0": 1}, ti.stored(t, "a"), "x0 and y0 from the store")
}

// Handover goes to the store, not to memory: a tenant at its limit still
// receives every series a leaving ingester hands over.
func TestTransferChunksIgnoresSeriesLimits(t *testing.T) {
	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalSeriesPerUser: 1, MaxGlobalSeriesPerMetric: 1})
	ti := newTestIngester(t, t.TempDir(), testConfig(), withOverrides(o))
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", numbered("x", 0, 0, 1)))

	req := &ingesterpb.TransferChunksRequest{}
	for i := 1; i <= 3; i++ {
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		require.NoError(t, err)
		app.Append(0, 5000, 5)
		req.Series = append(req.Series, &ingesterpb.ChunkSeries{
			Labels: ingesterpb.FromLabels(labels.FromStrings("__name__", "x", "i", strconv.Itoa(i))),
			Chunks: []*ingesterpb.Chunk{{MinTimeMs: 5000, MaxTimeMs: 5000, Encoding: uint32(chunkenc.EncXOR), Data: c.Bytes()}},
		})
	}
	stream, err := ti.client.TransferChunks(ctxFor("a"))
	require.NoError(t, err)
	require.NoError(t, stream.Send(req))
	resp, err := stream.CloseAndRecv()
	require.NoError(t, err)
	require.EqualValues(t, 3, resp.Series)
	require.Equal(t, map[string]int{"x0": 1, "x1": 1, "x2": 1, "x3": 1}, ti.stored(t, "a"))
}

// seriesLimitsFor runs on every push: with limits set it asks the ring,
// and neither may allocate.
func TestSeriesLimitsForDoesNotAllocate(t *testing.T) {
	o := newTestOverrides()
	o.set("a", limits.Limits{MaxGlobalSeriesPerUser: 1000, MaxGlobalSeriesPerMetric: 100})
	dir := t.TempDir()
	ing, err := New(testConfig(), dir, openStore(t, dir, prometheus.NewRegistry()), o, staticRing(6, 3), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	var got seriesLimits
	require.Zero(t, testing.AllocsPerRun(100, func() { _, got = ing.seriesLimitsFor("a") }))
	require.Equal(t, seriesLimits{perUser: 500, perMetric: 50}, got)
}

// Each tenant's stored chunks are kept for its own retention_period: a
// tenant with an hour loses yesterday's flushed chunks, one with 0 keeps
// them.
func TestRetentionPerTenant(t *testing.T) {
	o := newTestOverrides()
	o.set("short", limits.Limits{RetentionPeriod: time.Hour})
	o.set("forever", limits.Limits{RetentionPeriod: 0})
	ti := newTestIngester(t, t.TempDir(), testConfig(), withOverrides(o))
	defer ti.stop(t)
	old := time.Now().Add(-24 * time.Hour).Unix()
	for _, id := range []string{"short", "forever"} {
		require.NoError(t, ti.push(t, id, series("up", int(old), 20)))
	}
	ti.flush(true)
	ti.applyRetention()
	gone, err := ti.st.Select("short", 0, 1<<62)
	require.NoError(t, err)
	require.Empty(t, gone)
	got, err := ti.st.Select("forever", 0, 1<<62)
	require.NoError(t, err)
	require.Len(t, got, 1)
}
