package ingester

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/tenant"
)

type fixedLimits struct{ l limits.Limits }

func (l fixedLimits) For(string) *limits.Limits { v := l.l; return &v }

func apiGet(t *testing.T, h http.Handler, path string, params url.Values) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, querier.PathPrefix+path+"?"+params.Encode(), nil)
	r.Header.Set(tenant.HeaderName, "t")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// remoteReadTimes reads up over [mint, maxt] by remote read (samples)
// and returns the sample times of the one series.
func remoteReadTimes(t *testing.T, h http.Handler, mint, maxt int64) []int64 {
	t.Helper()
	req := &prompb.ReadRequest{
		Queries: []*prompb.Query{{StartTimestampMs: mint, EndTimestampMs: maxt,
			Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}}}},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES},
	}
	raw, err := req.Marshal()
	require.NoError(t, err)
	r := httptest.NewRequest(http.MethodPost, querier.PathPrefix+"/read", bytes.NewReader(snappy.Encode(nil, raw)))
	r.Header.Set(tenant.HeaderName, "t")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	decoded, err := snappy.Decode(nil, w.Body.Bytes())
	require.NoError(t, err)
	var resp prompb.ReadResponse
	require.NoError(t, resp.Unmarshal(decoded))
	require.Len(t, resp.Results, 1)
	require.Len(t, resp.Results[0].Timeseries, 1)
	var ts []int64
	for _, s := range resp.Results[0].Timeseries[0].Samples {
		ts = append(ts, s.Timestamp)
	}
	return ts
}

// compactedIngester is an ingester holding three hours of one sample a second
// from the epoch (chunks of 10 samples), flushed; compact compacts the
// first 2-hour partition into runs.
func compactedIngester(t *testing.T) *testIngester {
	t.Helper()
	cfg := testConfig()
	cfg.CompactAfter = time.Millisecond
	ti := newTestIngester(t, t.TempDir(), cfg)
	for from := 0; from < 3*3600; from += 600 {
		require.NoError(t, ti.push(t, "t", series("up", from, 600)))
	}
	ti.flush(true)
	return ti
}

// max_fetched_samples_per_query counts what a query fetched: a query of
// ten seconds of one series fetches about two 10-sample chunks before the
// store compacted them, and the same after, not the whole 2-hour
// partition's run (7200 samples), which would refuse it.
func TestFetchedSamplesLimitIsTheSameAfterCompaction(t *testing.T) {
	ti := compactedIngester(t)
	defer ti.stop(t)
	h := querierOver(t, limits.Limits{MaxFetchedSamplesPerQuery: 100}, ti)
	params := url.Values{"query": {"count_over_time(up[10s])"}, "time": {"1000"}}
	code, before := apiGet(t, h, "/query", params)
	require.Equal(t, http.StatusOK, code, before)
	ti.compact()
	code, after := apiGet(t, h, "/query", params)
	require.Equal(t, http.StatusOK, code, "the query that passed before compaction is refused after it: %s", after)
	require.JSONEq(t, before, after)
}

// Remote read (samples) answers with what the selects return, unclipped
// (upstream's ToQueryResult): a read of ten seconds gets the few 10-sample
// chunks overlapping them before compaction and after it, not the whole
// 2-hour partition (7200 samples for 11 asked).
func TestRemoteReadAnswersTheSameAfterCompaction(t *testing.T) {
	ti := compactedIngester(t)
	defer ti.stop(t)
	h := querierOver(t, limits.Limits{}, ti)
	before := remoteReadTimes(t, h, 990_000, 1_000_000)
	ti.compact()
	after := remoteReadTimes(t, h, 990_000, 1_000_000)
	require.Equal(t, len(before), len(after), "samples returned for [990s, 1000s]: %d before compaction, %d after (first %d, last %d)",
		len(before), len(after), after[0], after[len(after)-1])
	require.Equal(t, before, after)
}

// PromQL answers over compacted data are those before compaction, at the
// edges of chunks and partitions.
func TestPromQLAnswersTheSameAfterCompaction(t *testing.T) {
	ti := compactedIngester(t)
	defer ti.stop(t)
	h := querierOver(t, limits.Limits{}, ti)
	var queries []url.Values
	for _, at := range []int{0, 9, 10, 11, 999, 1000, 7199, 7200, 7201, 7500} {
		queries = append(queries,
			url.Values{"query": {"up"}, "time": {fmt.Sprint(at)}},
			url.Values{"query": {"count_over_time(up[10s])"}, "time": {fmt.Sprint(at)}},
			url.Values{"query": {"sum_over_time(up[1s])"}, "time": {fmt.Sprint(at)}},
		)
	}
	ranges := []url.Values{
		{"query": {"up"}, "start": {"0"}, "end": {"10799"}, "step": {"7"}},
		{"query": {"rate(up[1m])"}, "start": {"7100"}, "end": {"7300"}, "step": {"1"}},
	}
	answer := func() []string {
		var out []string
		for _, q := range queries {
			code, body := apiGet(t, h, "/query", q)
			require.Equal(t, http.StatusOK, code, body)
			out = append(out, body)
		}
		for _, q := range ranges {
			code, body := apiGet(t, h, "/query_range", q)
			require.Equal(t, http.StatusOK, code, body)
			out = append(out, body)
		}
		return out
	}
	before := answer()
	ti.compact()
	after := answer()
	for k := range before {
		require.JSONEq(t, before[k], after[k], "answer %d", k)
	}
}
