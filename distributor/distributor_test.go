package distributor

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/distributor/hatracker"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// fakeIngester records the label sets pushed to it; err makes every push
// fail.
type fakeIngester struct {
	ingesterpb.IngesterClient
	mu       sync.Mutex
	series   []labels.Labels
	metadata []*ingesterpb.MetricMetadata
	// histograms are the histogram samples pushed, with their timestamps.
	histograms []pushedHistogram
	// floats are the timestamps of the float samples pushed.
	floats []int64
	// exemplars are the exemplars pushed: series name, trace_id, time.
	exemplars []string
	// rawExemplarLabels are the pushed exemplars' labels (audit).
	rawExemplarLabels []labels.Labels
	// refuseExemplars is how many exemplars each push answers refused.
	refuseExemplars int64
	err             error
	// block, when set, holds every push until it is closed or the push's
	// context ends: a paused ingester.
	block chan struct{}
	// delay makes every push take this long (unless its context ends).
	delay time.Duration
	// entered counts the pushes that arrived, held or not.
	entered atomic.Int32
}

func (f *fakeIngester) Push(ctx context.Context, req *ingesterpb.PushRequest, _ ...grpc.CallOption) (*ingesterpb.PushResponse, error) {
	f.entered.Add(1)
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.metadata = append(f.metadata, req.Metadata...)
	r := ingesterpb.NewSeriesReader(req.Series)
	var b labels.ScratchBuilder
	for r.Next() {
		ls, err := ingesterpb.DecodeLabels(&b, r.Labels())
		if err != nil {
			return nil, err
		}
		if r.Kind() == ingesterpb.Exemplars {
			for enc, t, _, ok := r.NextExemplar(); ok; enc, t, _, ok = r.NextExemplar() {
				var eb labels.ScratchBuilder
				els, err := ingesterpb.DecodeLabels(&eb, enc)
				if err != nil {
					return nil, err
				}
				f.exemplars = append(f.exemplars, fmt.Sprintf("%s %s %d", ls.Get("__name__"), els.Get("trace_id"), t))
				f.rawExemplarLabels = append(f.rawExemplarLabels, els)
			}
			continue
		}
		f.series = append(f.series, ls)
		for t, _, ok := r.NextSample(); ok; t, _, ok = r.NextSample() {
			f.floats = append(f.floats, t)
		}
		for r.Histograms() {
			t, h, fh, ok, err := r.NextHistogram()
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			f.histograms = append(f.histograms, pushedHistogram{ls, t, h, fh})
		}
	}
	return &ingesterpb.PushResponse{ExemplarsRefused: f.refuseExemplars}, r.Err()
}

type pushedHistogram struct {
	ls labels.Labels
	t  int64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

type fakeClients map[string]*fakeIngester

func (f fakeClients) Client(addr string) (ingesterpb.IngesterClient, error) { return f[addr], nil }

// fixedRing sends every key to the same replicas.
type fixedRing struct {
	rs           ring.ReplicationSet
	distributors int
}

func (r fixedRing) Get(uint32) (ring.ReplicationSet, error) { return r.rs, nil }
func (r fixedRing) CountHealthy(string) int                 { return r.distributors }

// fixedLimits gives every tenant the same limits.
type fixedLimits struct{ l limits.Limits }

func (f *fixedLimits) For(string) *limits.Limits { return &f.l }

func newTestDistributor(t *testing.T, replicas int) (*Distributor, fakeClients) {
	return newLimitedDistributor(t, replicas, &fixedLimits{})
}

func newLimitedDistributor(t *testing.T, replicas int, l Limits) (*Distributor, fakeClients) {
	t.Helper()
	return newConfiguredDistributor(t, replicas, l, func(*Config) {})
}

func newConfiguredDistributor(t *testing.T, replicas int, l Limits, configure func(*Config)) (*Distributor, fakeClients) {
	t.Helper()
	clients := fakeClients{}
	rs := ring.ReplicationSet{MaxErrors: replicas - (replicas/2 + 1)}
	for k := 0; k < replicas; k++ {
		addr := fmt.Sprintf("ing-%d", k)
		clients[addr] = &fakeIngester{}
		rs.Instances = append(rs.Instances, &ringpb.Instance{Id: addr, Addr: addr})
	}
	cfg := Config{MaxRecvMsgSize: 1 << 20, RemoteTimeout: 500 * time.Millisecond,
		HATracker: hatracker.Config{UpdateTimeout: time.Second, FailoverTimeout: 2 * time.Second}}
	configure(&cfg)
	d, err := New(cfg, fixedRing{rs: rs}, clients, l, nil, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return d, clients
}

func ts(samples []prompb.Sample, kv ...string) prompb.TimeSeries {
	out := prompb.TimeSeries{Samples: samples}
	for k := 0; k < len(kv); k += 2 {
		out.Labels = append(out.Labels, prompb.Label{Name: kv[k], Value: kv[k+1]})
	}
	return out
}

var one = []prompb.Sample{{Timestamp: 1000, Value: 1}}

func encode(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

func post(d *Distributor, body []byte, header http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	tenant.Middleware(false, nil, d).ServeHTTP(w, r)
	return w
}

func TestPushStatusAndPartialWrites(t *testing.T) {
	valid := ts(one, "__name__", "up", "job", "a")
	for _, c := range []struct {
		name   string
		series prompb.TimeSeries
		msg    string
	}{
		{"no metric name", ts(one, "job", "a"), "has no metric name"},
		{"invalid metric name", ts(one, "__name__", "1up"), "invalid metric name"},
		{"invalid label name", ts(one, "__name__", "up", "a-b", "x"), `invalid label name "a-b"`},
		{"empty label pair", ts(one, "__name__", "up", "", ""), `invalid label name ""`},
		{"duplicate label", ts(one, "__name__", "up", "job", "a", "job", "b"), `label name "job" more than once`},
		{"value not utf8", ts(one, "__name__", "up", "job", "\xff"), "not valid UTF-8"},
		{"out of order in request", ts([]prompb.Sample{{Timestamp: 2000, Value: 1}, {Timestamp: 1000, Value: 2}}, "__name__", "down"), "out of order within the request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, clients := newTestDistributor(t, 1)
			w := post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{valid, c.series}}), nil)
			require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), c.msg)
			require.Contains(t, w.Body.String(), "err-orrery-")
			// The valid series of the same request is kept.
			stored := clients["ing-0"].series
			require.NotEmpty(t, stored)
			require.Equal(t, "up", stored[0].Get("__name__"))
		})
	}
}

func TestPushRejectsBadBodies(t *testing.T) {
	d, _ := newTestDistributor(t, 1)
	raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "up")}}).Marshal()
	require.NoError(t, err)
	// A few bytes that declare a 4 GiB decoded length.
	bomb := []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00}
	for _, c := range []struct {
		name   string
		body   []byte
		header http.Header
		code   int
		msg    string
	}{
		{"empty", nil, nil, 400, "empty request body"},
		{"not snappy", []byte("hello world, not snappy at all"), nil, 400, "snappy"},
		{"not protobuf", snappy.Encode(nil, []byte("\xff\xff\xff garbage")), nil, 400, "not a valid prometheus.WriteRequest"},
		{"uncompressed protobuf", raw, nil, 400, "snappy"},
		{"snappy bomb", bomb, nil, 413, "decompresses to"},
		{"over the size limit", bytes.Repeat([]byte{1}, 2<<20), nil, 413, "over the limit"},
		{"unknown message", snappy.Encode(nil, raw), http.Header{"Content-Type": {"application/x-protobuf;proto=io.prometheus.write.v3.Request"}}, 415, "io.prometheus.write.v2.Request (2.0)"},
		{"json", []byte("{}"), http.Header{"Content-Type": {"application/json"}}, 415, "application/x-protobuf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := post(d, c.body, c.header)
			require.Equal(t, c.code, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), c.msg)
		})
	}
}

func TestQuorum(t *testing.T) {
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "up")}}
	for _, c := range []struct {
		name   string
		failed int
		err    error
		code   int
	}{
		{"all replicas", 0, nil, 204},
		{"one of three down", 1, apierr.ToGRPC(apierr.New(apierr.Unavailable, "down")), 204},
		{"two of three down", 2, apierr.ToGRPC(apierr.New(apierr.Unavailable, "down")), 503},
		{"replicas reject part", 3, apierr.ToGRPC(apierr.New(apierr.BadData, "out of order sample")), 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, clients := newTestDistributor(t, 3)
			for k := 0; k < c.failed; k++ {
				clients[fmt.Sprintf("ing-%d", k)].err = c.err
			}
			w := post(d, encode(t, req), nil)
			require.Equal(t, c.code, w.Code, w.Body.String())
		})
	}
}

// An ingester refusing a series over the tenant's series limit answers
// InvalidArgument having stored the rest: at RF=3 that is a 400 with its
// message whenever a quorum answered, never a 5xx the client would retry.
func TestQuorumWithSeriesLimits(t *testing.T) {
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "up")}}
	const msg = "per-user series limit of 1000 exceeded (err-orrery-max-series-per-user: raise the tenant's max_global_series_per_user or -ingester.max-global-series-per-user) (1 of 1 samples rejected, the rest stored)"
	limited := apierr.ToGRPC(apierr.New(apierr.BadData, "%s", msg))
	down := apierr.ToGRPC(apierr.New(apierr.Unavailable, "down"))
	for _, c := range []struct {
		name string
		errs []error
		code int
	}{
		{"two replicas over the limit", []error{limited, limited, nil}, 400},
		{"two over the limit, one down", []error{limited, limited, down}, 400},
		{"one over the limit, one down", []error{limited, nil, down}, 400},
		{"all three over the limit", []error{limited, limited, limited}, 400},
		{"one over the limit, two down: no quorum", []error{limited, down, down}, 503},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, clients := newTestDistributor(t, 3)
			for k, err := range c.errs {
				clients[fmt.Sprintf("ing-%d", k)].err = err
			}
			w := post(d, encode(t, req), nil)
			require.Equal(t, c.code, w.Code, w.Body.String())
			if c.code == 400 {
				require.Contains(t, w.Body.String(), msg)
			}
		})
	}
}

// A paused replica must not hold up a write that already has its quorum.
func TestQuorumDoesNotWaitForSlowReplica(t *testing.T) {
	d, clients := newTestDistributor(t, 3)
	release := make(chan struct{})
	defer close(release)
	clients["ing-2"].block = release
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "up")}}
	start := time.Now()
	w := post(d, encode(t, req), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Less(t, time.Since(start), d.cfg.RemoteTimeout/2, "answered at quorum")

	// Two paused replicas: no quorum, a 5xx once the timeout passes.
	clients["ing-1"].block = release
	w = post(d, encode(t, req), nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
}

// A write that reached its quorum waits briefly for its last replica, so
// the client's next write does not overtake it there: twice the time the
// quorum took, at most ReplicaWait. A paused replica costs that wait, not
// the timeout.
func TestQuorumWaitsBrieflyForTheLastReplica(t *testing.T) {
	d, clients := newConfiguredDistributor(t, 3, &fixedLimits{}, func(c *Config) { c.ReplicaWait = 300 * time.Millisecond })
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "up")}}
	stored := func() int {
		clients["ing-2"].mu.Lock()
		defer clients["ing-2"].mu.Unlock()
		return len(clients["ing-2"].series)
	}
	// The quorum takes 40ms; the last replica is 20ms behind it.
	clients["ing-0"].delay, clients["ing-1"].delay, clients["ing-2"].delay = 40*time.Millisecond, 40*time.Millisecond, 60*time.Millisecond
	w := post(d, encode(t, req), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, 1, stored(), "the write was answered after its slow replica stored it")

	// A partial write (400) waits as well: its client sends the next one
	// at once, too.
	clients["ing-0"].err = apierr.ToGRPC(apierr.New(apierr.BadData, "one sample out of order (the rest stored)"))
	w = post(d, encode(t, req), nil)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Equal(t, 2, stored(), "the partial write was answered after its slow replica stored it")
	clients["ing-0"].err = nil

	// A paused replica costs twice the quorum's time, not ReplicaWait.
	paused := make(chan struct{})
	defer close(paused)
	clients["ing-2"].block = paused
	start := time.Now()
	w = post(d, encode(t, req), nil)
	took := time.Since(start)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.GreaterOrEqual(t, took, 100*time.Millisecond, "waited for the paused replica (40ms + 2 × 40ms)")
	require.Less(t, took, d.cfg.RemoteTimeout, "but not the timeout")

	// No quorum: answered as soon as that is known, without the wait.
	clients["ing-1"].err = apierr.ToGRPC(apierr.New(apierr.Unavailable, "down"))
	clients["ing-0"].err = apierr.ToGRPC(apierr.New(apierr.Unavailable, "down"))
	start = time.Now()
	w = post(d, encode(t, req), nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.Less(t, time.Since(start), 2*40*time.Millisecond+40*time.Millisecond, "a failed write does not wait")
}

func TestReplicaWaitValidation(t *testing.T) {
	c := Config{MaxRecvMsgSize: 1, RemoteTimeout: 50 * time.Millisecond, HATracker: hatracker.Config{UpdateTimeout: time.Second, FailoverTimeout: 2 * time.Second}}
	c.ReplicaWait = -time.Millisecond
	require.ErrorContains(t, c.Validate(), "distributor.replica-wait")
	// Longer than the remote timeout is allowed: the pushes end there.
	c.ReplicaWait = 100 * time.Millisecond
	require.NoError(t, c.Validate())
}

func TestMetadata(t *testing.T) {
	d, clients := newTestDistributor(t, 1)
	req := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{MetricFamilyName: "http_requests_total", Type: prompb.MetricMetadata_COUNTER, Help: "Requests.", Unit: "requests"},
		{MetricFamilyName: "bad-name", Type: prompb.MetricMetadata_GAUGE},
	}}
	w := post(d, encode(t, req), nil)
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), `metadata for metric family "bad-name"`)
	got := clients["ing-0"].metadata
	require.Len(t, got, 1)
	require.Equal(t, "counter", got[0].Type)
	require.Equal(t, "requests", got[0].Unit)
}

func encodeV2(t testing.TB, req *writev2.Request) []byte {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

var v2Header = http.Header{"Content-Type": {"application/x-protobuf;proto=io.prometheus.write.v2.Request"}}

func TestRemoteWrite2(t *testing.T) {
	st := writev2.NewSymbolTable()
	up := labels.FromStrings("__name__", "up", "job", "node")
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(up, nil),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: 1000}, {Value: 0, Timestamp: 2000}},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("Target up."), UnitRef: st.Symbolize("")},
	}}}
	req.Symbols = st.Symbols()

	d, clients := newTestDistributor(t, 1)
	w := post(d, encodeV2(t, req), v2Header)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, "2", w.Header().Get("X-Prometheus-Remote-Write-Samples-Written"))
	require.Equal(t, "0", w.Header().Get("X-Prometheus-Remote-Write-Histograms-Written"))
	require.Equal(t, "0", w.Header().Get("X-Prometheus-Remote-Write-Exemplars-Written"))
	got := clients["ing-0"]
	require.Equal(t, []labels.Labels{up}, got.series)
	require.Len(t, got.metadata, 1)
	require.Equal(t, "up", got.metadata[0].MetricFamilyName)
	require.Equal(t, "gauge", got.metadata[0].Type)
	require.Equal(t, "Target up.", got.metadata[0].Help)

	// A partial write: the invalid series is a 400 that still reports what was written.
	bad := labels.FromStrings("job", "no-name")
	req.Timeseries = append(req.Timeseries, writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(bad, nil), Samples: []writev2.Sample{{Value: 1, Timestamp: 3000}}})
	req.Symbols = st.Symbols()
	req.Timeseries[0].Samples = []writev2.Sample{{Value: 1, Timestamp: 5000}}
	w = post(d, encodeV2(t, req), v2Header)
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "no metric name")
	require.Equal(t, "1", w.Header().Get("X-Prometheus-Remote-Write-Samples-Written"))

	// A label that refers past the symbol table rejects the request.
	req.Timeseries[0].LabelsRefs = []uint32{0, 999}
	w = post(d, encodeV2(t, req), v2Header)
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "symbol")
	require.Equal(t, "0", w.Header().Get("X-Prometheus-Remote-Write-Samples-Written"))
}

func TestFamilyOf(t *testing.T) {
	for _, c := range []struct{ name, typ, want string }{
		{"http_request_duration_seconds_bucket", "histogram", "http_request_duration_seconds"},
		{"http_request_duration_seconds_sum", "histogram", "http_request_duration_seconds"},
		{"rpc_seconds_count", "summary", "rpc_seconds"},
		{"rpc_seconds", "summary", "rpc_seconds"},
		{"requests_total", "counter", "requests_total"},
		{"odd_bucket", "gauge", "odd_bucket"},
	} {
		require.Equal(t, c.want, string(familyOf([]byte(c.name), c.typ)), c.name)
	}
}

func TestLimits(t *testing.T) {
	now := time.Now().UnixMilli()
	at := func(ms int64) []prompb.Sample { return []prompb.Sample{{Timestamp: ms, Value: 1}} }
	for _, c := range []struct {
		name   string
		limits limits.Limits
		series prompb.TimeSeries
		code   int
		msg    string
	}{
		{"too many labels", limits.Limits{MaxLabelNamesPerSeries: 2}, ts(at(now), "__name__", "up", "a", "1", "b", "2"), 400, "max_label_names_per_series"},
		{"label name too long", limits.Limits{MaxLabelNameLength: 4}, ts(at(now), "__name__", "up", "longname", "1"), 400, "max_label_name_length"},
		{"label value too long", limits.Limits{MaxLabelValueLength: 4}, ts(at(now), "__name__", "up", "a", "longvalue"), 400, "max_label_value_length"},
		{"too far in the future", limits.Limits{CreationGracePeriod: time.Minute}, ts(at(now+3600_000), "__name__", "up"), 400, "creation_grace_period"},
		{"too old", limits.Limits{PastGracePeriod: time.Hour}, ts(at(now-7200_000), "__name__", "up"), 400, "past_grace_period"},
		{"within every limit", limits.Limits{MaxLabelNamesPerSeries: 2, CreationGracePeriod: time.Minute, PastGracePeriod: time.Hour}, ts(at(now), "__name__", "up"), 204, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, _ := newLimitedDistributor(t, 1, &fixedLimits{c.limits})
			w := post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{c.series}}), nil)
			require.Equal(t, c.code, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), c.msg)
		})
	}
}

// The ingestion rate is a token bucket per tenant: over it, 429 with the
// limit to raise; another tenant is unaffected; raising the limit in the
// overrides file takes effect without a restart.
func TestIngestionRateFollowsOverrides(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  noisy:\n    ingestion_rate: 1\n    ingestion_burst_size: 2\n"), 0o644))
	o, err := limits.NewOverrides(limits.Config{OverridesFile: file, ReloadInterval: 10 * time.Millisecond},
		limits.Limits{IngestionRate: 1000, IngestionBurstSize: 1000}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, o.Start(context.Background()))
	defer func() { require.NoError(t, o.Stop(context.Background())) }()
	d, _ := newLimitedDistributor(t, 1, o)

	three := func(name string) []byte {
		return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			ts(one, "__name__", name, "i", "1"), ts(one, "__name__", name, "i", "2"), ts(one, "__name__", name, "i", "3"),
		}})
	}
	w := post(d, three("a"), http.Header{"X-Scope-Orgid": {"noisy"}})
	require.Equal(t, http.StatusTooManyRequests, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "ingestion_rate")
	require.Equal(t, http.StatusNoContent, post(d, three("b"), http.Header{"X-Scope-Orgid": {"quiet"}}).Code)

	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  noisy:\n    ingestion_rate: 100\n    ingestion_burst_size: 100\n"), 0o644))
	require.Eventually(t, func() bool {
		return post(d, three("c"), http.Header{"X-Scope-Orgid": {"noisy"}}).Code == http.StatusNoContent
	}, 5*time.Second, 20*time.Millisecond)
}

func TestMissingTenantWhenRequired(t *testing.T) {
	d, _ := newTestDistributor(t, 1)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/push", strings.NewReader(""))
	w := httptest.NewRecorder()
	tenant.Middleware(true, nil, d).ServeHTTP(w, r)
	require.Equal(t, http.StatusUnauthorized, w.Code)
}

// FuzzDecodeWriteRequest feeds arbitrary bodies through decompression,
// decoding and validation: nothing may panic, and every rejection must be a
// client error.
func FuzzDecodeWriteRequest(f *testing.F) {
	f.Add(encode(f, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "up", "job", "a")}}))
	f.Add(encode(f, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{histSeries("h", prompb.FromIntHistogram(1000, testHistogram()), prompb.FromFloatHistogram(2000, testHistogram().ToFloat(nil)))}}))
	f.Add(encode(f, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{histSeries("h", prompb.FromIntHistogram(1000, nhcb()))}}))
	withExemplar := ts(one, "__name__", "up")
	withExemplar.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: 1000}}
	f.Add(encode(f, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{withExemplar}}))
	f.Add(encode(f, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "job", "a", "job", "b")}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		raw, err := decompress(body, 1<<20, nil)
		if err != nil {
			require.Less(t, apierr.HTTPStatus(err), 500)
			return
		}
		var req writeRequest
		// The same bytes as 1.0 and as 2.0: both parsers must hold.
		if req.parseV2(raw) != nil || req.parse(raw) != nil {
			return
		}
		var d discards
		var out validated
		v := validator{scheme: model.LegacyValidation}
		v.setLimits(&limits.Limits{MaxLabelNamesPerSeries: 30, MaxLabelValueLength: 2048, MaxGlobalExemplarsPerUser: 10}, time.Now())
		v.validate("fuzz", &req, &d, &out)
		// What validation lets through must decode as the ingester decodes it.
		r := ingesterpb.NewSeriesReader(out.enc)
		var b labels.ScratchBuilder
		n := 0
		for r.Next() {
			ls, err := ingesterpb.DecodeLabels(&b, r.Labels())
			require.NoError(t, err)
			require.NotEmpty(t, ls.Get("__name__"))
			n++
			if r.Kind() == ingesterpb.Exemplars {
				for enc, _, _, ok := r.NextExemplar(); ok; enc, _, _, ok = r.NextExemplar() {
					_, err := ingesterpb.DecodeLabels(&b, enc)
					require.NoError(t, err)
				}
				continue
			}
			// Every histogram let through decodes and is valid.
			for r.Histograms() {
				_, h, fh, ok, err := r.NextHistogram()
				require.NoError(t, err)
				if !ok {
					break
				}
				if h != nil {
					require.NoError(t, h.Validate())
				} else {
					require.NoError(t, fh.Validate())
				}
			}
		}
		require.NoError(t, r.Err())
		require.Equal(t, len(out.series), n)
	})
}

// An HA pair: the first replica heard is elected and stored without its
// replica label; the other replica's requests get 202 and store nothing;
// tenants without accept_ha_samples keep both replicas' series.
func TestHAPairDeduplication(t *testing.T) {
	lim := &fixedLimits{limits.Limits{AcceptHASamples: true, HAClusterLabel: "cluster", HAReplicaLabel: "__replica__"}}
	d, clients := newLimitedDistributor(t, 1, lim)
	tr, err := hatracker.New(hatracker.Config{UpdateTimeout: time.Second, FailoverTimeout: time.Hour}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	d.ha = tr
	from := func(replica string) []byte {
		return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			ts(one, "__name__", "up", "__replica__", replica, "cluster", "prom", "job", "a"),
			ts(one, "__name__", "up", "__replica__", replica, "cluster", "prom", "job", "b"),
		}})
	}
	require.Equal(t, http.StatusNoContent, post(d, from("r1"), nil).Code)
	w := post(d, from("r2"), nil)
	require.Equal(t, http.StatusAccepted, w.Code)
	require.Contains(t, w.Body.String(), "replica=r2, elected=r1")
	require.Equal(t, "0", w.Header().Get("X-Prometheus-Remote-Write-Samples-Written"))
	stored := clients["ing-0"].series
	require.Len(t, stored, 2)
	for _, ls := range stored {
		require.False(t, ls.Has("__replica__"), ls.String())
		require.Equal(t, "prom", ls.Get("cluster"))
	}

	// A request without the cluster label is not an HA pair's: kept whole.
	w = post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "up", "__replica__", "r2")}}), nil)
	require.Equal(t, http.StatusNoContent, w.Code)
	require.True(t, clients["ing-0"].series[2].Has("__replica__"))

	lim.l.AcceptHASamples = false
	require.Equal(t, http.StatusNoContent, post(d, from("r2"), nil).Code)
	require.Equal(t, "r2", clients["ing-0"].series[3].Get("__replica__"))
}

// With two healthy distributors each allows half the tenant's rate, and
// the whole burst.
func TestIngestionRateSharedAcrossDistributors(t *testing.T) {
	d, _ := newTestDistributor(t, 1)
	d.ring = fixedRing{distributors: 2}
	l := &limits.Limits{IngestionRate: 10, IngestionBurstSize: 10}
	now := time.Unix(1000, 0)
	require.True(t, d.allow("t", l, now, 10), "the whole burst")
	require.False(t, d.allow("t", l, now.Add(time.Second), 6), "one second refills 5 of the 10/s, not 10")
	require.True(t, d.allow("t", l, now.Add(time.Second), 5))
}

// Push, the entry for writers inside Orrery, validates as remote write
// does: the valid series are stored, the invalid one refused by name.
func TestPushEntryValidatesAsRemoteWrite(t *testing.T) {
	d, clients := newTestDistributor(t, 1)
	now := time.Now().UnixMilli()
	n, err := d.Push(tenant.WithID(context.Background(), "team-a"), "team-a", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		ts([]prompb.Sample{{Timestamp: now, Value: 1}}, "__name__", "job:up:sum", "job", "a"),
		ts([]prompb.Sample{{Timestamp: now, Value: 2}}, "__name__", "bad-name"),
	}})
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, apierr.HTTPStatus(err))
	require.Contains(t, err.Error(), "bad-name")
	require.Equal(t, 1, n)
	require.Len(t, clients["ing-0"].series, 1)
	require.Equal(t, "job:up:sum", clients["ing-0"].series[0].Get("__name__"))
}

// Names are validated by the tenant's scheme: legacy refuses a dotted
// name, utf8 takes it (Prometheus 3's default), and neither takes a name
// that is not UTF-8.
func TestNameValidationPerTenant(t *testing.T) {
	dotted := ts(one, "__name__", "http.server.duration", "service.name", "checkout")
	for _, c := range []struct {
		scheme string
		code   int
	}{{"", http.StatusBadRequest}, {"legacy", http.StatusBadRequest}, {"utf8", http.StatusNoContent}} {
		t.Run("scheme "+c.scheme, func(t *testing.T) {
			d, clients := newLimitedDistributor(t, 1, &fixedLimits{limits.Limits{NameValidationScheme: c.scheme}})
			w := post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{dotted}}), nil)
			require.Equal(t, c.code, w.Code, w.Body.String())
			if c.code == http.StatusNoContent {
				require.Equal(t, "http.server.duration", clients["ing-0"].series[0].Get("__name__"))
			} else {
				require.Contains(t, w.Body.String(), `invalid label name "service.name"`)
			}
			w = post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "a\xffb")}}), nil)
			require.Equal(t, http.StatusBadRequest, w.Code)
		})
	}
}

// A tenant with an out-of-order window has a series' samples forwarded in
// the order sent, older ones too: the ingesters judge each against the
// window, as Prometheus appends a request's samples one by one.
func TestOutOfOrderWindowForwardsSamplesInOrderSent(t *testing.T) {
	l := &fixedLimits{}
	l.l.OutOfOrderTimeWindow = time.Hour
	d, clients := newLimitedDistributor(t, 1, l)
	h := prompb.FromIntHistogram(2000, testHistogram())
	h2 := prompb.FromIntHistogram(1000, testHistogram())
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		ts([]prompb.Sample{{Timestamp: 2000, Value: 1}, {Timestamp: 1000, Value: 2}, {Timestamp: 3000, Value: 3}, {Timestamp: 1000, Value: 2}}, "__name__", "up"),
		{Labels: []prompb.Label{{Name: "__name__", Value: "h"}}, Histograms: []prompb.Histogram{h, h2}},
	}}
	w := post(d, encode(t, req), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, []int64{2000, 1000, 3000, 1000}, clients["ing-0"].floats)
	require.Len(t, clients["ing-0"].histograms, 2)
	require.Equal(t, int64(1000), clients["ing-0"].histograms[1].t)
}
