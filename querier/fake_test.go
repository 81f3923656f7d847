package querier

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/querier/shard"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// fakeSeries is one stored series: labels and sample timestamps, each
// sample's value its timestamp.
type fakeSeries struct {
	lset labels.Labels
	ts   []int64
}

// fakeIngester serves in-memory series per tenant as an ingester does over
// gRPC: the tenant comes from the call's context, and QueryStream sends one
// series per message, so a test sees where fetching stopped. Methods the
// querier does not call panic (nil embedded interface).
type fakeIngester struct {
	ingesterpb.IngesterClient
	data map[string][]fakeSeries
	meta map[string][]*ingesterpb.MetricMetadata
	// delay holds every call until it passes or the call is cancelled.
	delay time.Duration
	// down fails every call, as an unreachable ingester does.
	down atomic.Bool
	// failAfter, when positive, fails each QueryStream after that many
	// messages, as an ingester that dies mid-answer does.
	failAfter int
	// packs answers packed labels when asked, as ingesters since the
	// field do; false is an ingester that predates it.
	packs bool

	streamCtx atomic.Pointer[context.Context] // of the last QueryStream
	calls     atomic.Int64                    // calls of QueryStream and MetricsMetadata
	sent      atomic.Int64                    // QueryStream messages sent
	cancelled atomic.Int64                    // calls that saw their context end
}

func (f *fakeIngester) wait(ctx context.Context) error {
	f.calls.Add(1)
	if f.down.Load() {
		return apierr.ToGRPC(apierr.New(apierr.Unavailable, "connection refused"))
	}
	if f.delay == 0 {
		return nil
	}
	select {
	case <-time.After(f.delay):
		return nil
	case <-ctx.Done():
		f.cancelled.Add(1)
		return ctx.Err()
	}
}

// matching returns tenant's series matching ms with a sample in [mint,
// maxt], with all their samples: an ingester sends whole chunks.
func (f *fakeIngester) matching(ctx context.Context, wire []*ingesterpb.LabelMatcher, mint, maxt int64) ([]fakeSeries, error) {
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := ingesterpb.ToMatchers(wire)
	if err != nil {
		return nil, err
	}
	// A query shard is applied as an ingester applies it.
	ms, si, sn, sharded, err := shard.Strip(ms)
	if err != nil {
		return nil, err
	}
	var out []fakeSeries
	for _, s := range f.data[id] {
		ok := !sharded || shard.Owns(s.lset, si, sn)
		for _, m := range ms {
			ok = ok && m.Matches(s.lset.Get(m.Name))
		}
		if ok && slices.ContainsFunc(s.ts, func(t int64) bool { return t >= mint && t <= maxt }) {
			out = append(out, s)
		}
	}
	// An ingester answers sorted by labels.
	slices.SortFunc(out, func(a, b fakeSeries) int { return labels.Compare(a.lset, b.lset) })
	return out, nil
}

func (f *fakeIngester) QueryStream(ctx context.Context, req *ingesterpb.QueryRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[ingesterpb.QueryStreamResponse], error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	series, err := f.matching(ctx, req.Matchers, req.StartMs, req.EndMs)
	if err != nil {
		return nil, err
	}
	msgs := make([]*ingesterpb.QueryStreamResponse, 0, len(series))
	for _, s := range series {
		ws, err := toWire(s)
		if err != nil {
			return nil, err
		}
		if f.packs && req.PackedLabels {
			ws.Labels, ws.PackedLabels = nil, ingesterpb.AppendLabels(nil, s.lset)
		}
		msgs = append(msgs, &ingesterpb.QueryStreamResponse{Series: []*ingesterpb.ChunkSeries{ws}})
	}
	f.streamCtx.Store(&ctx)
	return &fakeStream{ctx: ctx, msgs: msgs, f: f}, nil
}

// toWire encodes s as an ingester sends it: one XOR chunk.
func toWire(s fakeSeries) (*ingesterpb.ChunkSeries, error) {
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		return nil, err
	}
	for _, t := range s.ts {
		app.Append(0, t, float64(t))
	}
	return &ingesterpb.ChunkSeries{
		Labels: ingesterpb.FromLabels(s.lset),
		Chunks: []*ingesterpb.Chunk{{MinTimeMs: s.ts[0], MaxTimeMs: s.ts[len(s.ts)-1], Encoding: uint32(chunkenc.EncXOR), Data: c.Bytes()}},
	}, nil
}

func wireSeries(t *testing.T, s fakeSeries) []*ingesterpb.ChunkSeries {
	t.Helper()
	ws, err := toWire(s)
	require.NoError(t, err)
	return []*ingesterpb.ChunkSeries{ws}
}

type fakeStream struct {
	grpc.ClientStream
	ctx  context.Context
	msgs []*ingesterpb.QueryStreamResponse
	f    *fakeIngester
	n    int // messages sent
}

func (s *fakeStream) Recv() (*ingesterpb.QueryStreamResponse, error) {
	if err := s.ctx.Err(); err != nil {
		s.f.cancelled.Add(1)
		return nil, err
	}
	if s.f.failAfter > 0 && s.n >= s.f.failAfter {
		return nil, apierr.ToGRPC(apierr.New(apierr.Unavailable, "connection reset mid-stream"))
	}
	s.n++
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	s.f.sent.Add(1)
	return m, nil
}

func (f *fakeIngester) Series(ctx context.Context, req *ingesterpb.SeriesRequest, _ ...grpc.CallOption) (*ingesterpb.SeriesResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	series, err := f.matching(ctx, req.Matchers, req.StartMs, req.EndMs)
	resp := &ingesterpb.SeriesResponse{}
	for _, s := range series {
		resp.Series = append(resp.Series, &ingesterpb.Labels{Labels: ingesterpb.FromLabels(s.lset)})
	}
	return resp, err
}

func (f *fakeIngester) LabelNames(ctx context.Context, req *ingesterpb.LabelNamesRequest, _ ...grpc.CallOption) (*ingesterpb.LabelNamesResponse, error) {
	series, err := f.matching(ctx, req.Matchers, req.StartMs, req.EndMs)
	var lists [][]string
	for _, s := range series {
		var names []string
		s.lset.Range(func(l labels.Label) { names = append(names, l.Name) })
		lists = append(lists, names)
	}
	return &ingesterpb.LabelNamesResponse{Names: sortedUnion(lists, req.Limit)}, err
}

func (f *fakeIngester) LabelValues(ctx context.Context, req *ingesterpb.LabelValuesRequest, _ ...grpc.CallOption) (*ingesterpb.LabelValuesResponse, error) {
	series, err := f.matching(ctx, req.Matchers, req.StartMs, req.EndMs)
	var values []string
	for _, s := range series {
		if v := s.lset.Get(req.Name); v != "" {
			values = append(values, v)
		}
	}
	return &ingesterpb.LabelValuesResponse{Values: sortedUnion([][]string{values}, req.Limit)}, err
}

func (f *fakeIngester) MetricsMetadata(ctx context.Context, _ *ingesterpb.MetricsMetadataRequest, _ ...grpc.CallOption) (*ingesterpb.MetricsMetadataResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	id, err := tenant.FromContext(ctx)
	return &ingesterpb.MetricsMetadataResponse{Metadata: f.meta[id]}, err
}

// fakeCluster is replicas ingesters holding the same data, as with a
// replication factor of replicas, behind a ring that tolerates one failure
// per two replicas.
type fakeCluster struct {
	ingesters []*fakeIngester
	// ring, when set, is asked instead: its instances' addresses are the
	// indexes of ingesters.
	ring *ring.Ring
}

func (c *fakeCluster) ForQuery() (ring.ReplicationSet, error) {
	if c.ring != nil {
		return c.ring.ForQuery()
	}
	rs := ring.ReplicationSet{MaxErrors: (len(c.ingesters) - 1) / 2}
	for k := range c.ingesters {
		rs.Instances = append(rs.Instances, &ringpb.Instance{Id: fmt.Sprint("ingester-", k), Addr: fmt.Sprint(k)})
	}
	return rs, nil
}

func (c *fakeCluster) ForDeletion() ([]*ringpb.Instance, error) {
	rs, err := c.ForQuery()
	return rs.Instances, err
}

func (c *fakeCluster) Client(addr string) (ingesterpb.IngesterClient, error) {
	var k int
	_, err := fmt.Sscan(addr, &k)
	return c.ingesters[k], err
}

func (c *fakeCluster) sent() int64 {
	var n int64
	for _, f := range c.ingesters {
		n += f.sent.Load()
	}
	return n
}

// fakeLimits are per-tenant limits a test changes between queries, as a
// reloaded overrides file does.
type fakeLimits struct {
	mu       sync.Mutex
	defaults limits.Limits
	tenants  map[string]limits.Limits
}

func (l *fakeLimits) For(id string) *limits.Limits {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.tenants[id]; ok {
		return &t
	}
	d := l.defaults
	return &d
}

func (l *fakeLimits) set(id string, t limits.Limits) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tenants == nil {
		l.tenants = map[string]limits.Limits{}
	}
	l.tenants[id] = t
}

// testQuerier is a Queryable over a fakeCluster and the API in front of it.
type testQuerier struct {
	cluster *fakeCluster
	limits  *fakeLimits
	q       *Queryable
	reg     *prometheus.Registry
	handler http.Handler
}

func testConfig() Config {
	return Config{Timeout: 10 * time.Second, MaxConcurrent: 4, MaxSamples: 1e6, LookbackDelta: 5 * time.Minute, IngesterTimeout: 10 * time.Second,
		MinimizeIngesterRequests: true, HedgeDelay: 50 * time.Millisecond}
}

// newTestQuerier serves data (by tenant) from replicas identical
// ingesters; with federated, reads may name several tenants.
func newTestQuerier(t *testing.T, cfg Config, replicas int, data map[string][]fakeSeries, federated bool) *testQuerier {
	t.Helper()
	c := &fakeCluster{}
	for range replicas {
		c.ingesters = append(c.ingesters, &fakeIngester{data: data})
	}
	logger := slog.New(slog.DiscardHandler)
	tq := &testQuerier{cluster: c, limits: &fakeLimits{}, reg: prometheus.NewRegistry()}
	tq.q = NewQueryable(cfg, c, c, tq.limits, tq.reg, logger)
	api := NewAPI(cfg, NewEngine(cfg, tq.reg, logger), tq.q, BuildInfo{}, nil, "", tq.reg, logger)
	mux := http.NewServeMux()
	mw := tenant.Middleware
	if federated {
		mw = tenant.FederatedMiddleware
	}
	mux.Handle(PathPrefix+"/", mw(true, nil, api))
	mux.Handle(FederatePath, mw(true, nil, NewFederation(cfg, tq.q, logger)))
	tq.handler = mux
	return tq
}

// get requests path (with its query string) as tenant org and returns the
// status and body.
func (tq *testQuerier) get(t *testing.T, org, path string, params url.Values) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil)
	r.Header.Set(tenant.HeaderName, org)
	w := httptest.NewRecorder()
	tq.handler.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func (tq *testQuerier) rejected(org, reason string) float64 {
	return testutil.ToFloat64(tq.q.rejected.WithLabelValues(org, reason))
}

// series returns n series of metric, with instance labels i0…, each with
// a sample every 15s over [from, to].
func series(metric string, n int, from, to time.Time) []fakeSeries {
	out := make([]fakeSeries, n)
	for k := range out {
		out[k].lset = labels.FromStrings("__name__", metric, "instance", fmt.Sprint("i", k))
		for t := from; !t.After(to); t = t.Add(15 * time.Second) {
			out[k].ts = append(out[k].ts, t.UnixMilli())
		}
	}
	return out
}

// unix formats t as the API's time parameters.
func unix(t time.Time) string { return fmt.Sprint(t.Unix()) }

func contains(t *testing.T, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		require.True(t, strings.Contains(body, p), "%q not in %s", p, body)
	}
}
