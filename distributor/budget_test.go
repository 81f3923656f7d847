package distributor

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/tenant"
)

// amplifyingV2 is defect 8's request: a few long symbols, and many series
// that each name all of them with references of a byte or two. Small on the
// wire; each series copies every symbol once decoded.
func amplifyingV2(t testing.TB, series, labelsPerSeries int) []byte {
	st := writev2.NewSymbolTable()
	value := strings.Repeat("v", 2000)
	req := &writev2.Request{}
	for k := 0; k < series; k++ {
		b := labels.NewScratchBuilder(labelsPerSeries + 2)
		b.Add("__name__", "amplified")
		b.Add("i", strings.Repeat("x", k%7)+string(rune('a'+k%26)))
		for j := 0; j < labelsPerSeries; j++ {
			b.Add(strings.Repeat("n", 900)+string(rune('a'+j)), value)
		}
		b.Sort()
		req.Timeseries = append(req.Timeseries, writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(b.Labels(), nil),
			Samples:    []writev2.Sample{{Value: 1, Timestamp: 1000}},
		})
	}
	req.Symbols = st.Symbols()
	return encodeV2(t, req)
}

// The decoded size is charged as decoding proceeds: an amplifying 2.0
// request is refused with 413 once its labels pass the limit, having
// allocated no more than about the limit. Before the limit existed, every
// series copied every symbol (a 162 KiB request grew 1.74 GB).
func TestDecodedLimitStopsAmplification(t *testing.T) {
	body := amplifyingV2(t, 2000, 20)
	require.Less(t, len(body), 200<<10, "the request is small on the wire")
	raw, err := snappy.Decode(nil, body)
	require.NoError(t, err)

	const limit = 4 << 20
	w := writeRequest{m: &meter{limit: limit}}
	err = w.parseV2(raw)
	require.Error(t, err)
	require.Equal(t, apierr.TooLarge, apierr.KindOf(err))
	require.Contains(t, err.Error(), errIDDecodedTooLarge)
	require.LessOrEqual(t, w.m.decoded, limit+labelCost+4000, "decoding stopped at the limit")
	require.Less(t, len(w.labels)*(labelCost+2900), 2*limit, "no more labels were kept than the limit pays for")

	// Unlimited, the same request decodes to about 2000 × 20 × 2.9 KB.
	unlimited := writeRequest{m: &meter{}}
	require.NoError(t, unlimited.parseV2(raw))
	require.Greater(t, unlimited.m.decoded, 100<<20)

	// Through the handler: a 413 that names the limit, and nothing sent.
	d, clients := newConfiguredDistributor(t, 1, &fixedLimits{}, func(c *Config) { c.MaxRequestDecodedBytes = limit })
	resp := post(d, body, v2Header)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.Code, resp.Body.String())
	require.Contains(t, resp.Body.String(), "-distributor.max-request-decoded-bytes")
	require.Empty(t, clients["ing-0"].series)
	require.Zero(t, d.inflight.used.Load(), "the refused request's memory was given back")
}

// 1.0 has no symbol table, but a label of two bytes still costs a slab
// entry of fifty: many empty labels are refused by the same limit.
func TestDecodedLimitCountsEmptyLabels(t *testing.T) {
	s := prompb.TimeSeries{Samples: one}
	for k := 0; k < 100_000; k++ {
		s.Labels = append(s.Labels, prompb.Label{})
	}
	d, _ := newConfiguredDistributor(t, 1, &fixedLimits{}, func(c *Config) { c.MaxRequestDecodedBytes = 1 << 20 })
	resp := post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}}), nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.Code, resp.Body.String())
	require.Contains(t, resp.Body.String(), errIDDecodedTooLarge)
}

// Each replica's copy counts: a request that fits at RF=1 may not at RF=3.
func TestDecodedLimitCountsReplicaCopies(t *testing.T) {
	var series []prompb.TimeSeries
	for k := 0; k < 2000; k++ {
		series = append(series, ts(one, "__name__", "m", "i", strings.Repeat("x", 200)+string(rune('a'+k%26))+strings.Repeat("y", k%50)))
	}
	body := encode(t, &prompb.WriteRequest{Timeseries: series})
	w := writeRequest{m: &meter{}}
	raw, err := snappy.Decode(nil, body)
	require.NoError(t, err)
	require.NoError(t, w.parse(raw))
	limit := 2 * w.m.decoded
	for _, c := range []struct {
		replicas, code int
	}{{1, http.StatusNoContent}, {3, http.StatusRequestEntityTooLarge}} {
		d, _ := newConfiguredDistributor(t, c.replicas, &fixedLimits{}, func(cfg *Config) { cfg.MaxRequestDecodedBytes = limit })
		resp := post(d, body, nil)
		require.Equal(t, c.code, resp.Code, "RF=%d: %s", c.replicas, resp.Body.String())
	}
}

// A body without Content-Length is cut at the size limit while it is read.
func TestBodyWithoutLengthIsCutAtTheLimit(t *testing.T) {
	d, _ := newTestDistributor(t, 1)
	// 2 MiB of a valid body's first bytes and then zeros, over the 1 MiB limit.
	r := httptest.NewRequest(http.MethodPost, "/api/v1/push", io.MultiReader(bytes.NewReader(make([]byte, 2<<20))))
	r.ContentLength = -1
	r.Header.Del("Content-Length")
	w := httptest.NewRecorder()
	tenant.Middleware(false, nil, d).ServeHTTP(w, r)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "err-orrery-request-too-large")
	require.Zero(t, d.inflight.used.Load())
}

// All requests in flight share a memory budget: while one request's push
// is held by a slow ingester, another that would pass the budget gets 503
// with Retry-After, and goes through once the first is done.
func TestInflightBytesLimit(t *testing.T) {
	var series []prompb.TimeSeries
	for k := 0; k < 1000; k++ {
		series = append(series, ts(one, "__name__", "m", "i", strings.Repeat("x", 100)+string(rune('a'+k%26))+strings.Repeat("y", k%40)))
	}
	body := encode(t, &prompb.WriteRequest{Timeseries: series})
	d, clients := newConfiguredDistributor(t, 1, &fixedLimits{}, func(c *Config) {
		c.MaxRecvMsgSize = 256 << 10
		c.MaxRequestDecodedBytes = 512 << 10
		c.InstanceLimits.MaxInflightPushRequestsBytes = 3*(256<<10) + 512<<10
		c.RemoteTimeout = 10 * time.Second
	})
	block := make(chan struct{})
	clients["ing-0"].block = block
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp := post(d, body, nil)
		require.Equal(t, http.StatusNoContent, resp.Code, resp.Body.String())
	}()
	// Once its push reached the ingester, the first request took all it will.
	require.Eventually(t, func() bool { return clients["ing-0"].entered.Load() == 1 }, 5*time.Second, time.Millisecond)
	// The first request holds about 400 KiB of the 1.25 MiB budget; a
	// second and third arrive while it is held.
	var refused *httptest.ResponseRecorder
	for k := 0; k < 3 && refused == nil; k++ {
		go func() { _ = post(d, body, nil) }()
		time.Sleep(10 * time.Millisecond)
		if resp := post(d, body, nil); resp.Code != http.StatusNoContent {
			refused = resp
		}
	}
	require.NotNil(t, refused, "a request past the in-flight budget is refused")
	require.Equal(t, http.StatusServiceUnavailable, refused.Code, refused.Body.String())
	require.Equal(t, retryAfter, refused.Header().Get("Retry-After"))
	require.Contains(t, refused.Body.String(), errIDInflightBytes)
	require.GreaterOrEqual(t, testutil.ToFloat64(d.rejected.WithLabelValues("max_inflight_push_requests_bytes")), 1.0)
	close(block)
	wg.Wait()
	require.Eventually(t, func() bool { return d.inflight.used.Load() == 0 }, 5*time.Second, time.Millisecond,
		"every request's memory is given back once its replicas answered")
	require.Equal(t, http.StatusNoContent, post(d, body, nil).Code)
}

// The number of requests in flight is capped before their bodies are read.
func TestInflightRequestsLimit(t *testing.T) {
	d, clients := newConfiguredDistributor(t, 1, &fixedLimits{}, func(c *Config) {
		c.InstanceLimits.MaxInflightPushRequests = 1
		c.RemoteTimeout = 10 * time.Second
	})
	block := make(chan struct{})
	clients["ing-0"].block = block
	body := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "up")}})
	done := make(chan int)
	go func() { done <- post(d, body, nil).Code }()
	require.Eventually(t, func() bool { return d.requests.Load() == 1 }, 5*time.Second, time.Millisecond)
	resp := post(d, body, nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.Code)
	require.Equal(t, retryAfter, resp.Header().Get("Retry-After"))
	require.Contains(t, resp.Body.String(), errIDInflightRequests)
	require.Equal(t, 1.0, testutil.ToFloat64(d.rejected.WithLabelValues("max_inflight_push_requests")))
	close(block)
	require.Equal(t, http.StatusNoContent, <-done)
	require.Equal(t, http.StatusNoContent, post(d, body, nil).Code)
}

// Defect 9: a tenant without exemplar storage (the default) stores no
// exemplars. Remote write 2.0 forbids a 2xx unless everything was written:
// the samples are stored, the answer is a 400 that says so, and the
// headers count what was written. 1.0 keeps accepting the samples and
// counts the dropped exemplars.
func TestExemplarsAreNotSilentlyDropped(t *testing.T) {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "with_exemplar"), nil),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: 1000}, {Value: 2, Timestamp: 2000}},
		Exemplars:  []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "abc"), nil), Value: 1, Timestamp: 1000}},
	}}}
	req.Symbols = st.Symbols()
	d, clients := newTestDistributor(t, 1)
	w := post(d, encodeV2(t, req), v2Header)
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "1 exemplars not written, 0 written")
	require.Contains(t, w.Body.String(), "err-orrery-exemplars-disabled")
	require.Equal(t, "2", w.Header().Get("X-Prometheus-Remote-Write-Samples-Written"))
	require.Equal(t, "0", w.Header().Get("X-Prometheus-Remote-Write-Exemplars-Written"))
	require.Equal(t, []labels.Labels{labels.FromStrings("__name__", "with_exemplar")}, clients["ing-0"].series, "the samples were stored")

	v1 := ts(one, "__name__", "with_exemplar_v1")
	v1.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: 1000}}
	w = post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{v1}}), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, 2.0, testutil.ToFloat64(d.exemplars.WithLabelValues("anonymous")))
}

// FuzzDecodeWithLimit decodes arbitrary bodies under a small decoded
// limit: nothing panics, every refusal is a client error, and a request
// that decodes stayed within the limit.
func FuzzDecodeWithLimit(f *testing.F) {
	f.Add(amplifyingV2(f, 3, 2), 4096)
	f.Add(encode(f, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(one, "__name__", "up", "job", "a")}}), 100)
	f.Fuzz(func(t *testing.T, body []byte, limit int) {
		limit = 1 + abs(limit)%(1<<20)
		raw, err := decompress(body, 1<<20, nil)
		if err != nil {
			return
		}
		for _, v2 := range []bool{false, true} {
			w := writeRequest{m: &meter{limit: limit, pool: &inflight{limit: 1 << 30}}}
			if v2 {
				err = w.parseV2(raw)
			} else {
				err = w.parse(raw)
			}
			if err == nil {
				require.LessOrEqual(t, w.m.decoded, limit)
			} else if k := apierr.KindOf(err); k != apierr.Internal {
				require.Equal(t, apierr.TooLarge, k, err.Error())
			}
			w.m.release()
			require.Zero(t, w.m.pool.used.Load())
		}
	})
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// A tenant that stores exemplars has valid ones sent on with their series,
// from 1.0 and 2.0, their labels sorted; an invalid one (labels over
// OpenMetrics' 128 characters, outside the grace period) is left out, a
// 400 for 2.0 that counts what was written, a 204 for 1.0.
func TestExemplarsAreSentOn(t *testing.T) {
	d, clients := newLimitedDistributor(t, 1, &fixedLimits{l: limits.Limits{MaxGlobalExemplarsPerUser: 10}})
	long := strings.Repeat("x", 130)
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "a"), nil),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: 1000}, {Value: 2, Timestamp: 2000}},
		Exemplars: []writev2.Exemplar{
			{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "t1", "span_id", "s1"), nil), Value: 1, Timestamp: 1000},
			{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", long), nil), Value: 2, Timestamp: 2000},
		},
	}}}
	req.Symbols = st.Symbols()
	w := post(d, encodeV2(t, req), v2Header)
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "err-orrery-invalid-exemplar")
	require.Equal(t, "1", w.Header().Get("X-Prometheus-Remote-Write-Exemplars-Written"))
	require.Equal(t, "2", w.Header().Get("X-Prometheus-Remote-Write-Samples-Written"))

	v1 := ts(one, "__name__", "b")
	v1.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "t2"}}, Value: 1, Timestamp: 1000}}
	w = post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{v1}}), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, []string{"a t1 1000", "b t2 1000"}, clients["ing-0"].exemplars)
	require.Equal(t, 1.0, testutil.ToFloat64(d.exemplars.WithLabelValues("anonymous")))
}

// Exemplars an ingester refuses (out of order) make a 2.0 request a 400
// that counts them out of what was written, as Prometheus 3's receiver
// answers; a 1.0 request keeps its 204.
func TestExemplarsRefusedByIngestersAreNotWritten(t *testing.T) {
	d, clients := newLimitedDistributor(t, 1, &fixedLimits{l: limits.Limits{MaxGlobalExemplarsPerUser: 10}})
	clients["ing-0"].refuseExemplars = 1
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "a"), nil),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: 1000}},
		Exemplars:  []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "t1"), nil), Value: 1, Timestamp: 1000}},
	}}}
	req.Symbols = st.Symbols()
	w := post(d, encodeV2(t, req), v2Header)
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "err-orrery-exemplar-out-of-order")
	require.Equal(t, "0", w.Header().Get("X-Prometheus-Remote-Write-Exemplars-Written"))
	require.Equal(t, "1", w.Header().Get("X-Prometheus-Remote-Write-Samples-Written"))

	v1 := ts(one, "__name__", "b")
	v1.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "t2"}}, Value: 1, Timestamp: 1000}}
	w = post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{v1}}), nil)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
}
