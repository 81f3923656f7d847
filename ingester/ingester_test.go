package ingester

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/ingester/client"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/store"
	"github.com/orrery/orrery/tenant"
)

// testIngester is an ingester served over real gRPC on loopback.
type testIngester struct {
	*Ingester
	// st is the bbolt store the ingester writes, closed with it.
	st        *store.Store
	client    ingesterpb.IngesterClient
	srv       *grpc.Server
	pool      *client.Pool
	reg       *prometheus.Registry
	overrides *testOverrides
	addr      string
}

func testConfig() Config {
	return Config{
		MaxChunkSamples: 10, MaxChunkAge: time.Hour, ChunkIdleTimeout: time.Hour, SeriesIdleTimeout: time.Hour,
		FlushPeriod: time.Hour, CheckpointPeriod: time.Hour, QueryBatchSeries: 2, MetadataRetainPeriod: time.Hour,
	}
}

// testDeps are what newTestIngester builds the ingester with.
type testDeps struct {
	overrides *testOverrides
	ring      RingCount
	pushdown  bool
}

type testOption func(*testDeps)

// withOverrides gives the ingester limits set before it starts, so that
// they are in force during WAL replay.
func withOverrides(o *testOverrides) testOption { return func(d *testDeps) { d.overrides = o } }

// withRing makes the ingester see healthy ingesters at replication factor rf.
func withRing(healthy, rf int) testOption {
	return func(d *testDeps) { d.ring = fixedRing{healthy: healthy, rf: rf} }
}

// newTestIngester starts an ingester alone in its ring at replication
// factor 1, without limits unless opts say otherwise.
func newTestIngester(t testing.TB, dir string, cfg Config, opts ...testOption) *testIngester {
	t.Helper()
	deps := testDeps{overrides: newTestOverrides(), ring: fixedRing{healthy: 1, rf: 1}}
	for _, o := range opts {
		o(&deps)
	}
	ti := &testIngester{reg: prometheus.NewRegistry(), overrides: deps.overrides}
	ti.st = openStore(t, dir, ti.reg)
	ing, err := New(cfg, dir, ti.st, deps.overrides, deps.ring, ti.reg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, ing.Start(context.Background()))
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(tenant.UnaryServerInterceptor), grpc.ChainStreamInterceptor(tenant.StreamServerInterceptor))
	ingesterpb.RegisterIngesterServer(srv, ing)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if deps.pushdown {
		servePushdown(t, srv, ing, ln.Addr().String(), deps.overrides)
	}
	go func() { _ = srv.Serve(ln) }()
	pool := client.NewPool()
	c, err := pool.Client(ln.Addr().String())
	require.NoError(t, err)
	ti.Ingester, ti.client, ti.srv, ti.pool, ti.addr = ing, c, srv, pool, ln.Addr().String()
	return ti
}

// stop shuts down gracefully: flush, checkpoint, close.
func (ti *testIngester) stop(t testing.TB) {
	ti.srv.Stop()
	require.NoError(t, ti.pool.Close())
	require.NoError(t, ti.Stop(context.Background()))
	require.NoError(t, ti.st.Close())
}

// openStore opens the bbolt store in dir as cmd/orrery does.
func openStore(t testing.TB, dir string, reg prometheus.Registerer) *store.Store {
	t.Helper()
	opts := store.DefaultOptions()
	opts.Path = filepath.Join(dir, "store.db")
	st, err := store.Open(opts, reg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return st
}

// crash releases files without flushing or checkpointing, as kill -9 would:
// the OS keeps what was written, nothing else happens.
func (ti *testIngester) crash(t testing.TB) {
	ti.srv.Stop()
	require.NoError(t, ti.pool.Close())
	close(ti.Ingester.stop)
	ti.Ingester.wg.Wait()
	require.NoError(t, ti.wal.Close())
	require.NoError(t, ti.st.Close())
}

func ctxFor(id string) context.Context { return tenant.WithID(context.Background(), id) }

// series encodes samples at seconds from..from+n-1 whose value is the second.
func series(name string, from, n int) []byte {
	buf := ingesterpb.AppendSeriesHeader(nil, ingesterpb.AppendLabels(nil, labels.FromStrings("__name__", name, "job", "test")), n)
	for k := from; k < from+n; k++ {
		buf = ingesterpb.AppendSample(buf, int64(k)*1000, float64(k))
	}
	return buf
}

// onePush encodes one sample of series name at tMs.
func onePush(name string, tMs int64, v float64) []byte {
	buf := ingesterpb.AppendSeriesHeader(nil, ingesterpb.AppendLabels(nil, labels.FromStrings("__name__", name, "job", "test")), 1)
	return ingesterpb.AppendSample(buf, tMs, v)
}

func (ti *testIngester) push(t testing.TB, tenantID string, series ...[]byte) error {
	t.Helper()
	_, err := ti.client.Push(ctxFor(tenantID), &ingesterpb.PushRequest{Series: bytes.Join(series, nil)})
	return err
}

// samples returns every sample of every matching series, de-duplicated as
// the querier does.
func (ti *testIngester) samples(t *testing.T, tenantID string, ms ...*labels.Matcher) map[string][]int64 {
	t.Helper()
	stream, err := ti.client.QueryStream(ctxFor(tenantID), &ingesterpb.QueryRequest{StartMs: math.MinInt64, EndMs: math.MaxInt64, Matchers: ingesterpb.FromMatchers(ms)})
	require.NoError(t, err)
	// A series may come in several messages (memory, then store), so
	// samples are de-duplicated per series across the stream and sorted.
	out := map[string][]int64{}
	seenBy := map[string]map[int64]bool{}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			for _, ts := range out {
				slices.Sort(ts)
			}
			return out
		}
		require.NoError(t, err)
		for _, s := range resp.Series {
			var b labels.ScratchBuilder
			key := ingesterpb.ToLabels(&b, s.Labels).Get("__name__")
			seen := seenBy[key]
			if seen == nil {
				seen = map[int64]bool{}
				seenBy[key] = seen
			}
			for _, c := range s.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
				require.NoError(t, err)
				it := chk.Iterator(nil)
				for it.Next() == chunkenc.ValFloat {
					ts, v := it.At()
					require.Equal(t, float64(ts/1000), v)
					if !seen[ts] {
						seen[ts] = true
						out[key] = append(out[key], ts)
					}
				}
			}
		}
	}
}

func TestPushQueryAndTenantIsolation(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("up", 0, 25), series("load", 0, 5)))
	require.NoError(t, ti.push(t, "b", series("up", 100, 3)))

	got := ti.samples(t, "a")
	require.Len(t, got["up"], 25)
	require.Len(t, got["load"], 5)
	require.Equal(t, map[string][]int64{"up": {100000, 101000, 102000}}, ti.samples(t, "b"))
	require.Empty(t, ti.samples(t, "c"))

	names, err := ti.client.LabelValues(ctxFor("b"), &ingesterpb.LabelValuesRequest{Name: "__name__", StartMs: math.MinInt64, EndMs: math.MaxInt64})
	require.NoError(t, err)
	require.Equal(t, []string{"up"}, names.Values)
}

func TestPushRejectsOutOfOrderAndKeepsTheRest(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("x", 10, 1)))
	for _, c := range []struct {
		name string
		in   []byte
		msg  string
	}{
		{"older", series("x", 5, 1), "out of order sample"},
		{"same time, other value", ingesterpb.AppendSample(ingesterpb.AppendSeriesHeader(nil, ingesterpb.AppendLabels(nil, labels.FromStrings("__name__", "x", "job", "test")), 1), 10000, 99), "duplicate sample with a different value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := ti.push(t, "a", c.in, series("y", 0, 2))
			require.Equal(t, codes.InvalidArgument, status.Code(err))
			require.Contains(t, status.Convert(err).Message(), c.msg)
		})
	}
	// An identical retry is accepted silently: remote write retries are safe.
	require.NoError(t, ti.push(t, "a", series("x", 10, 1)))
	got := ti.samples(t, "a")
	require.Equal(t, []int64{10000}, got["x"])
	require.Equal(t, []int64{0, 1000}, got["y"])
}

func TestUnknownTenantIsRefused(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	_, err := ti.client.Push(context.Background(), &ingesterpb.PushRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
}

func TestCrashReplaysWAL(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	require.NoError(t, ti.push(t, "a", series("up", 0, 15)))
	require.NoError(t, ti.checkpoint())
	require.NoError(t, ti.push(t, "a", series("up", 15, 10), series("new", 0, 3)))
	require.NoError(t, ti.push(t, "b", series("up", 0, 1)))
	ti.crash(t)

	ti = newTestIngester(t, dir, testConfig())
	defer ti.stop(t)
	got := ti.samples(t, "a")
	require.Len(t, got["up"], 25)
	require.Len(t, got["new"], 3)
	require.Len(t, ti.samples(t, "b")["up"], 1)
	// Appends continue after replay, and out-of-order detection survived it.
	require.NoError(t, ti.push(t, "a", series("up", 25, 1)))
	require.Error(t, ti.push(t, "a", onePush("up", 3500, 3.5)))
}

func TestFlushServesFromStoreAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	require.NoError(t, ti.push(t, "a", series("up", 0, 35)))
	ti.flush(false)
	require.Equal(t, 3.0, testutil.ToFloat64(ti.m.chunksFlushed), "three full chunks of 10")
	require.Len(t, ti.samples(t, "a")["up"], 35)
	ti.stop(t)

	// After a graceful stop every chunk is in the store: memory holds none.
	ti = newTestIngester(t, dir, testConfig())
	defer ti.stop(t)
	for _, s := range ti.head("a", true).all() {
		cs, _ := s.copyChunks(minTime, maxTime)
		require.Empty(t, cs)
	}
	require.Len(t, ti.samples(t, "a")["up"], 35)
}

func TestCorruptWALKeepsWhatPrecedesDamage(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	require.NoError(t, ti.push(t, "a", series("up", 0, 10)))
	seg := lastSegment(t, filepath.Join(dir, "wal"))
	st, err := os.Stat(seg)
	require.NoError(t, err)
	firstRecordEnd := st.Size()
	require.NoError(t, ti.push(t, "a", series("up", 10, 10)))
	ti.crash(t)

	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	require.NoError(t, err)
	// Flip bytes inside the second record: the first must survive.
	_, err = f.WriteAt([]byte{0xff, 0xff, 0xff, 0xff}, firstRecordEnd+10)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	ti = newTestIngester(t, dir, testConfig())
	defer ti.stop(t)
	require.Equal(t, 1.0, testutil.ToFloat64(ti.m.walCorruptions.WithLabelValues(damageSegment)))
	require.Len(t, ti.samples(t, "a")["up"], 10)
	require.NoError(t, ti.push(t, "a", series("up", 10, 1)))
}

func lastSegment(t testing.TB, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var last string
	for _, e := range entries {
		if st, _ := e.Info(); !e.IsDir() && st.Size() > 0 {
			last = filepath.Join(dir, e.Name())
		}
	}
	require.NotEmpty(t, last)
	return last
}

func TestMetadata(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	md := []*ingesterpb.MetricMetadata{
		{MetricFamilyName: "up", Type: "gauge", Help: "Target up."},
		{MetricFamilyName: "http_requests_total", Type: "counter", Help: "Requests."},
	}
	_, err := ti.client.Push(ctxFor("a"), &ingesterpb.PushRequest{Metadata: md})
	require.NoError(t, err)
	resp, err := ti.client.MetricsMetadata(ctxFor("a"), &ingesterpb.MetricsMetadataRequest{})
	require.NoError(t, err)
	require.Len(t, resp.Metadata, 2)
	resp, err = ti.client.MetricsMetadata(ctxFor("a"), &ingesterpb.MetricsMetadataRequest{Metric: "up"})
	require.NoError(t, err)
	require.Equal(t, "Target up.", resp.Metadata[0].Help)
	resp, err = ti.client.MetricsMetadata(ctxFor("b"), &ingesterpb.MetricsMetadataRequest{})
	require.NoError(t, err)
	require.Empty(t, resp.Metadata, "another tenant's metadata is invisible")

	ti.head("a", false).metadata.expire(time.Now().Add(time.Minute))
	resp, err = ti.client.MetricsMetadata(ctxFor("a"), &ingesterpb.MetricsMetadataRequest{})
	require.NoError(t, err)
	require.Empty(t, resp.Metadata, "expired")
}
