package querier

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

func TestForTenants(t *testing.T) {
	m := func(typ labels.MatchType, name, value string) *labels.Matcher {
		return labels.MustNewMatcher(typ, name, value)
	}
	job := m(labels.MatchEqual, "job", "x")
	for _, c := range []struct {
		name     string
		ms       []*labels.Matcher
		selected []string
		rest     []string
	}{
		{"no tenant matcher", []*labels.Matcher{job}, []string{"a", "b", "c"}, []string{`job="x"`}},
		{"equal", []*labels.Matcher{m(labels.MatchEqual, TenantLabel, "b"), job}, []string{"b"}, []string{`job="x"`}},
		{"not equal", []*labels.Matcher{m(labels.MatchNotEqual, TenantLabel, "b")}, []string{"a", "c"}, nil},
		{"regexp", []*labels.Matcher{m(labels.MatchRegexp, TenantLabel, "a|c")}, []string{"a", "c"}, nil},
		{"two matchers intersect", []*labels.Matcher{m(labels.MatchRegexp, TenantLabel, "a|b"), m(labels.MatchNotRegexp, TenantLabel, "a")}, []string{"b"}, nil},
		{"unknown tenant", []*labels.Matcher{m(labels.MatchEqual, TenantLabel, "z")}, []string{}, nil},
		{"the series' own label", []*labels.Matcher{m(labels.MatchEqual, originalTenantLabel, "own")}, []string{"a", "b", "c"}, []string{`__tenant_id__="own"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ids := []string{"a", "b", "c"}
			selected, rest := forTenants(ids, c.ms)
			require.Equal(t, c.selected, selected)
			require.Equal(t, []string{"a", "b", "c"}, ids, "the caller's ids are not modified")
			var got []string
			for _, r := range rest {
				got = append(got, r.String())
			}
			require.Equal(t, c.rest, got)
		})
	}
}

func TestWithTenant(t *testing.T) {
	for _, c := range []struct{ in, want labels.Labels }{
		{labels.FromStrings("__name__", "up"), labels.FromStrings("__name__", "up", TenantLabel, "a")},
		{labels.FromStrings("__name__", "up", TenantLabel, "own"), labels.FromStrings("__name__", "up", TenantLabel, "a", originalTenantLabel, "own")},
		{labels.EmptyLabels(), labels.FromStrings(TenantLabel, "a")},
	} {
		require.Equal(t, c.want, withTenant(c.in, "a"))
	}
}

// Two tenants with overlapping metric names, a third not asked for. Every
// read API answers a|b with both tenants' data, each series labelled with
// its tenant, and answers one tenant as before.
func TestCrossTenantReads(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	from := now.Add(-time.Minute)
	withLabels := func(ss []fakeSeries, kv ...string) []fakeSeries {
		for k := range ss {
			b := labels.NewBuilder(ss[k].lset)
			for j := 0; j < len(kv); j += 2 {
				b.Set(kv[j], kv[j+1])
			}
			ss[k].lset = b.Labels()
		}
		return ss
	}
	data := map[string][]fakeSeries{
		"a": withLabels(series("up", 2, from, now), "job", "x"),
		"b": append(withLabels(series("up", 1, from, now), "job", "y"), withLabels(series("odd", 1, from, now), TenantLabel, "own")...),
		"c": withLabels(series("up", 5, from, now), "job", "z"),
	}
	tq := newTestQuerier(t, testConfig(), 3, data, true)
	for _, c := range tq.cluster.ingesters {
		c.meta = map[string][]*ingesterpb.MetricMetadata{
			"a": {{MetricFamilyName: "up", Type: "gauge", Help: "a's"}},
			"b": {{MetricFamilyName: "odd", Type: "counter", Help: "b's"}},
		}
	}
	at := unix(now)
	for _, c := range []struct {
		name, org, path string
		params          url.Values
		want            string
	}{
		{
			"instant query", "a|b", "/query", url.Values{"query": {"up"}, "time": {at}},
			`[{"__name__":"up","__tenant_id__":"a","instance":"i0","job":"x"},{"__name__":"up","__tenant_id__":"a","instance":"i1","job":"x"},{"__name__":"up","__tenant_id__":"b","instance":"i0","job":"y"}]`,
		},
		{
			"order of the header does not matter", "b|a|b", "/query", url.Values{"query": {"count by (__tenant_id__) (up)"}, "time": {at}},
			`[{"__tenant_id__":"a"},{"__tenant_id__":"b"}]`,
		},
		{
			"a matcher selects a tenant", "a|b", "/query", url.Values{"query": {`up{__tenant_id__="b"}`}, "time": {at}},
			`[{"__name__":"up","__tenant_id__":"b","instance":"i0","job":"y"}]`,
		},
		{
			"a tenant not in the header stays out", "a|b", "/query", url.Values{"query": {`up{__tenant_id__="c"}`}, "time": {at}},
			`[]`,
		},
		{
			"the series' own tenant label is kept", "a|b", "/query", url.Values{"query": {"odd"}, "time": {at}},
			`[{"__name__":"odd","__tenant_id__":"b","instance":"i0","original___tenant_id__":"own"}]`,
		},
		{
			"and can be matched", "a|b", "/query", url.Values{"query": {`{original___tenant_id__="own"}`}, "time": {at}},
			`[{"__name__":"odd","__tenant_id__":"b","instance":"i0","original___tenant_id__":"own"}]`,
		},
		{
			"range query", "a|b", "/query_range", url.Values{"query": {"sum by (__tenant_id__) (up)"}, "start": {unix(from)}, "end": {at}, "step": {"60"}},
			`[{"__tenant_id__":"a"},{"__tenant_id__":"b"}]`,
		},
		{
			"one tenant has no label", "a", "/query", url.Values{"query": {"up"}, "time": {at}},
			`[{"__name__":"up","instance":"i0","job":"x"},{"__name__":"up","instance":"i1","job":"x"}]`,
		},
		{
			"series", "a|b", "/series", url.Values{"match[]": {`{job=~"x|y"}`}},
			`[{"__name__":"up","__tenant_id__":"a","instance":"i0","job":"x"},{"__name__":"up","__tenant_id__":"a","instance":"i1","job":"x"},{"__name__":"up","__tenant_id__":"b","instance":"i0","job":"y"}]`,
		},
		{"label names", "a|b", "/labels", nil, `["__name__","__tenant_id__","instance","job","original___tenant_id__"]`},
		{"label names of one tenant", "a|b", "/labels", url.Values{"match[]": {`{__tenant_id__="a"}`}}, `["__name__","__tenant_id__","instance","job"]`},
		{"label names of nothing", "a|b", "/labels", url.Values{"match[]": {`{__name__="nothing"}`}}, `[]`},
		{"tenant label values", "a|b", "/label/__tenant_id__/values", nil, `["a","b"]`},
		{"tenants with a matching series", "a|b", "/label/__tenant_id__/values", url.Values{"match[]": {`{job="y"}`}}, `["b"]`},
		{"label values", "a|b", "/label/job/values", nil, `["x","y"]`},
		{"own tenant label values", "a|b", "/label/original___tenant_id__/values", nil, `["own"]`},
		{"label values of one tenant", "a|b", "/label/job/values", url.Values{"match[]": {`{__tenant_id__="b"}`}}, `["y"]`},
		{"metadata", "a|b", "/metadata", nil, `{"odd":[{"type":"counter","help":"b's","unit":""}],"up":[{"type":"gauge","help":"a's","unit":""}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := tq.get(t, c.org, PathPrefix+c.path, c.params)
			require.Equal(t, http.StatusOK, code, body)
			require.JSONEq(t, c.want, resultMetrics(t, c.path, decode(t, body).Data), body)
		})
	}

	code, body := tq.get(t, "a|b", FederatePath, url.Values{"match[]": {"up"}})
	require.Equal(t, http.StatusOK, code, body)
	contains(t, body, `up{__tenant_id__="a",instance="i0",job="x"}`, `up{__tenant_id__="b",instance="i0",job="y"}`)
	require.NotContains(t, body, `"c"`)
}

// Remote read goes through the same queryable: a Prometheus reading
// Orrery as team-a|team-b gets both tenants, labelled.
func TestCrossTenantRemoteRead(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	data := map[string][]fakeSeries{"a": series("up", 1, now.Add(-time.Minute), now), "b": series("up", 1, now.Add(-time.Minute), now)}
	tq := newTestQuerier(t, testConfig(), 1, data, true)
	req := &prompb.ReadRequest{
		Queries: []*prompb.Query{{
			StartTimestampMs: now.Add(-time.Minute).UnixMilli(), EndTimestampMs: now.UnixMilli(),
			Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}},
		}},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES},
	}
	raw, err := req.Marshal()
	require.NoError(t, err)
	r := httptest.NewRequest(http.MethodPost, PathPrefix+"/read", bytes.NewReader(snappy.Encode(nil, raw)))
	r.Header.Set(tenant.HeaderName, "a|b")
	w := httptest.NewRecorder()
	tq.handler.ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	decoded, err := snappy.Decode(nil, w.Body.Bytes())
	require.NoError(t, err)
	var resp prompb.ReadResponse
	require.NoError(t, resp.Unmarshal(decoded))
	require.Len(t, resp.Results, 1)
	var tenants []string
	for _, ts := range resp.Results[0].Timeseries {
		for _, l := range ts.Labels {
			if l.Name == TenantLabel {
				tenants = append(tenants, l.Value)
			}
		}
		require.Len(t, ts.Samples, 5)
	}
	require.Equal(t, []string{"a", "b"}, tenants)
}

// resultMetrics is the part of an API response a test compares: the
// metrics of a query's result, or the data of the other calls.
func resultMetrics(t *testing.T, path string, data json.RawMessage) string {
	t.Helper()
	if path != "/query" && path != "/query_range" {
		return string(data)
	}
	var res struct {
		Result []struct {
			Metric json.RawMessage `json:"metric"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(data, &res))
	metrics := []json.RawMessage{}
	for _, r := range res.Result {
		metrics = append(metrics, r.Metric)
	}
	out, err := json.Marshal(metrics)
	require.NoError(t, err)
	return string(out)
}

// A cross-tenant query is held to the smallest of its tenants' limits,
// counting both tenants' series, and its rejection is counted for a|b.
func TestCrossTenantLimits(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	data := map[string][]fakeSeries{"a": series("m", 3, now.Add(-time.Minute), now), "b": series("m", 3, now.Add(-time.Minute), now)}
	tq := newTestQuerier(t, testConfig(), 1, data, true)
	tq.limits.set("a", limits.Limits{MaxFetchedSeriesPerQuery: 5})
	q := url.Values{"query": {"count(m)"}, "time": {unix(now)}}
	code, body := tq.get(t, "a", PathPrefix+"/query", q)
	require.Equal(t, http.StatusOK, code, body, "a alone is within its limit")
	code, body = tq.get(t, "a|b", PathPrefix+"/query", q)
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	contains(t, body, "(limit: 5)")
	require.Equal(t, 1.0, tq.rejected("a|b", reasonMaxSeries))
	code, body = tq.get(t, "a|b", PathPrefix+"/query", url.Values{"query": {`count(m{__tenant_id__="b"})`}, "time": {unix(now)}})
	require.Equal(t, http.StatusOK, code, body, "a tenant not selected fetches nothing")
}
