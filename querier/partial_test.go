package querier

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// staticRing is a real ring over the test querier's ingesters (address k
// is ingesters[k]), at replication factor rf, each in the state given,
// plus forgotten tombstones of other ingesters.
func staticRing(rf int, states []ringpb.State, forgotten ...string) *ring.Ring {
	now := time.Now().UnixMilli()
	desc := &ringpb.Desc{Instances: map[string]*ringpb.Instance{}}
	for k, st := range states {
		id := fmt.Sprint("ingester-", k)
		desc.Instances[id] = &ringpb.Instance{Id: id, Addr: fmt.Sprint(k), State: st, Tokens: []uint32{uint32(k + 1)}, HeartbeatMs: now, OwnsTokens: true}
	}
	for _, id := range forgotten {
		desc.Instances[id] = &ringpb.Instance{Id: id, State: ringpb.State_LEFT, HeartbeatMs: now, OwnsTokens: true, Forgotten: true}
	}
	return ring.NewStaticRing(ring.Config{ReplicationFactor: rf, HeartbeatTimeout: time.Minute}, desc)
}

// warnings returns the warnings of a GET of the API, which must succeed.
func warnings(t *testing.T, tq *testQuerier, path string, params url.Values) []string {
	t.Helper()
	code, body := tq.get(t, "a", PathPrefix+path, params)
	require.Equal(t, http.StatusOK, code, body)
	var resp struct {
		Status   string   `json:"status"`
		Warnings []string `json:"warnings"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.Equal(t, "success", resp.Status)
	return resp.Warnings
}

// A read that may miss data says so in the API's warnings: at RF=1 an
// ingester forgotten without leaving took its data with it (query, series,
// labels and label values all say so); a settled ring answers without one.
func TestReadsWarnWhenOwnersWereForgotten(t *testing.T) {
	now := time.Now()
	data := map[string][]fakeSeries{"a": series("up", 2, now.Add(-time.Minute), now)}
	active := []ringpb.State{ringpb.State_ACTIVE}
	reads := map[string]url.Values{
		"/query":                 {"query": {"up"}, "time": {unix(now)}},
		"/series":                {"match[]": {"up"}},
		"/labels":                {},
		"/label/instance/values": {},
	}

	settled := newTestQuerier(t, testConfig(), 1, data, false)
	settled.cluster.ring = staticRing(1, active)
	forgotten := newTestQuerier(t, testConfig(), 1, data, false)
	forgotten.cluster.ring = staticRing(1, active, "ingester-gone")
	for path, params := range reads {
		require.Empty(t, warnings(t, settled, path, params), path)
		w := warnings(t, forgotten, path, params)
		require.Len(t, w, 1, path)
		require.Contains(t, w[0], "ingester-gone", path)
		require.Contains(t, w[0], "may be incomplete", path)
	}
	// /federate's format has no warnings field: an HTTP Warning header.
	for tq, want := range map[*testQuerier]int{settled: 0, forgotten: 1} {
		r := httptest.NewRequest(http.MethodGet, FederatePath+"?match[]=up", nil)
		r.Header.Set(tenant.HeaderName, "a")
		rec := httptest.NewRecorder()
		tq.handler.ServeHTTP(rec, r)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Len(t, rec.Header().Values("Warning"), want)
	}
}

// At RF=3 a paused replica does not hold a query up, and while every owner
// is ACTIVE the answer is complete without it; while one is LEAVING (its
// data on its way) an answer without every ingester says it may be
// partial.
func TestReadsWarnWhenAnIngesterIsMissingDuringARingChange(t *testing.T) {
	now := time.Now()
	data := map[string][]fakeSeries{"a": series("up", 2, now.Add(-time.Minute), now)}
	query := url.Values{"query": {"up"}, "time": {unix(now)}}
	for _, tc := range []struct {
		states []ringpb.State
		warn   bool
	}{
		{[]ringpb.State{ringpb.State_ACTIVE, ringpb.State_ACTIVE, ringpb.State_ACTIVE}, false},
		{[]ringpb.State{ringpb.State_ACTIVE, ringpb.State_ACTIVE, ringpb.State_LEAVING}, true},
	} {
		tq := newTestQuerier(t, testConfig(), 3, data, false)
		tq.cluster.ring = staticRing(3, tc.states)
		tq.cluster.ingesters[0].delay = time.Minute
		start := time.Now()
		w := warnings(t, tq, "/query", query)
		require.Less(t, time.Since(start), 5*time.Second, "the paused replica does not hold the query up")
		if !tc.warn {
			require.Empty(t, w, "%v", tc.states)
			continue
		}
		require.Len(t, w, 1, "%v", tc.states)
		require.Contains(t, w[0], "1 of 3 ingesters did not answer while the ring is changing")
	}
}

// A cross-tenant read carries the warnings of each tenant's reads.
func TestCrossTenantReadsKeepWarnings(t *testing.T) {
	now := time.Now()
	data := map[string][]fakeSeries{"a": series("up", 1, now.Add(-time.Minute), now), "b": series("up", 1, now.Add(-time.Minute), now)}
	tq := newTestQuerier(t, testConfig(), 1, data, true)
	tq.cluster.ring = staticRing(1, []ringpb.State{ringpb.State_ACTIVE}, "ingester-gone")
	for _, path := range []string{"/query", "/labels", "/label/instance/values", "/label/__tenant_id__/values"} {
		code, body := tq.get(t, "a|b", PathPrefix+path, url.Values{"query": {"up"}, "time": {unix(now)}})
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, "ingester-gone", path)
	}
}
