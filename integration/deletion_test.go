//go:build integration

package integration

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// deleteSeries POSTs Prometheus's delete_series form to base (Prometheus's
// root or Orrery's /prometheus) with the headers set adds.
func deleteSeries(t *testing.T, base string, form url.Values, set func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/admin/tsdb/delete_series", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	set(req)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func noHeaders(*http.Request) {}

// TestDeleteSeriesMatchesPrometheus3: at RF=3 behind a query frontend
// whose results cache holds the answers from before, the same deletions
// (part of one series' range, all of a matcher's series) made in
// Prometheus 3 and in Orrery leave every corpus query equal, through the
// frontend and the querier, at once and after one ingester was killed -9
// and another restarted. With an ingester down the deletion is refused,
// since it could not reach every copy.
func TestDeleteSeriesMatchesPrometheus3(t *testing.T) {
	prom := startPrometheus3WithConfig(t, func(int) string { return "global:\n  scrape_interval: 15s\n" }, "--web.enable-admin-api")
	c := newCluster(t, 3)
	c.extra["ing2"] = []string{"-ingester.handover-on-shutdown=false"}
	for _, id := range []string{"ing1", "ing2", "ing3", "dist", "qfe1", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")
	require.Eventually(t, func() bool {
		return metricValue(t, c.members["qfe1"], "orrery_frontend_connected_workers") > 0
	}, 30*time.Second, 200*time.Millisecond)

	w := newDualWriter(prom, c.members["dist"].url(""))
	for step := 0; step < genSteps; step++ {
		w.write(t, step)
	}
	frontend, querier := c.members["qfe1"].url("/prometheus"), c.members["quer"].url("/prometheus")
	compareQueries(t, prom, frontend, w.start, w.end)
	require.Positive(t, metricValue(t, c.members["qfe1"], "orrery_frontend_results_cache_requests_total"), "the answers from before the deletion are cached")

	sec := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }
	deletions := []url.Values{
		// Seen by the range functions at the steps the cache holds. It
		// ends before every select's start: Prometheus 3 (v0.316.0)
		// panics in tombstones.Intervals.Add when a select ends before a
		// tombstone and trims a chunk at both ends, so the reference
		// cannot answer for a tombstone in the middle of the window.
		{"match[]": {`node_load1{instance="host-000:9100"}`, `up{job="api"}`}, "start": {sec(w.start.Add(time.Minute))}, "end": {sec(w.start.Add(4 * time.Minute))}},
		{"match[]": {`{__name__=~"node_memory_.+", instance="host-001:9100"}`}},
	}
	for _, form := range deletions {
		code, body := deleteSeries(t, prom, form, noHeaders)
		require.Equal(t, http.StatusNoContent, code, body)
		code, body = deleteSeries(t, frontend, form, noHeaders)
		require.Equal(t, http.StatusNoContent, code, body)
	}
	counts := url.Values{"query": {`count_over_time({__name__=~"node_load1|up|node_memory_.+"}[1h])`}, "time": {sec(w.end)}}
	compareCounts := func(base string) {
		t.Helper()
		want, err := get(prom, "/api/v1/query", counts)
		require.NoError(t, err)
		got, err := get(base, "/api/v1/query", counts)
		require.NoError(t, err)
		require.Empty(t, diffResponses(want, got), "samples per series after the deletion")
	}
	compareCounts(frontend)
	compareQueries(t, prom, frontend, w.start, w.end)
	compareQueries(t, prom, querier, w.start, w.end)

	// Tombstones are durable: a crash and a restart keep them.
	c.members["ing1"].kill9(t)
	c.members["ing2"].stop(t)
	c.startMember("ing1")
	c.startMember("ing2")
	c.waitRing("quer", "ing1", "ing2", "ing3")
	compareCounts(querier)
	compareQueries(t, prom, querier, w.start, w.end)
	compareQueries(t, prom, frontend, w.start, w.end)

	c.members["ing3"].kill9(t)
	require.Eventually(t, func() bool { return !c.ring("quer")["ing3"].Healthy }, 30*time.Second, 200*time.Millisecond)
	// Every try is refused; on a loaded machine a live ingester's late
	// heartbeat may be the one named, so the refusal naming ing3 is
	// waited for.
	require.Eventually(t, func() bool {
		code, body := deleteSeries(t, frontend, url.Values{"match[]": {`up`}}, noHeaders)
		require.Equal(t, http.StatusServiceUnavailable, code, body)
		return strings.Contains(body, "ing3")
	}, 30*time.Second, 500*time.Millisecond, "the refusal names the ingester that is down")
	c.startMember("ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")
	compareCounts(querier)
}

// TestDeleteSeriesNeedsAdminCredential: with auth on, delete_series opens
// only to the admin credential naming one tenant in X-Scope-OrgID; every
// other caller is refused and deletes nothing; the admin's deletion
// touches that tenant only. So does deleting a whole tenant.
func TestDeleteSeriesNeedsAdminCredential(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	require.NoError(t, os.WriteFile(tokens, []byte("tokens: [{token: token-a, tenant: team-a}, {token: token-b, tenant: team-b}]\n"), 0o600))
	admins := filepath.Join(dir, "admins.yaml")
	require.NoError(t, os.WriteFile(admins, []byte("tokens: [{token: op-secret}]\n"), 0o600))
	o := startOrrery(t, t.TempDir(), "-auth.enabled=true", "-auth.tokens-file="+tokens, "-auth.admin-tokens-file="+admins)

	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	gen := loadgen.New(genSeed, 1)
	for _, token := range []string{"token-a", "token-b"} {
		var raw []byte
		for step := range 10 {
			raw = gen.AppendRequest(raw[:0], 0, gen.Len(), step, end.Add(time.Duration(step-9)*genInterval).UnixMilli())
			code, body := authed(t, http.MethodPost, o.url("/api/v1/push"), token, loadgen.Compress(nil, raw))
			require.Equal(t, http.StatusNoContent, code, body)
		}
	}
	countLoad := func(token string) string {
		t.Helper()
		code, body := authed(t, http.MethodGet, o.url("/prometheus/api/v1/query?query=count(node_load1)&time="+strconv.FormatInt(end.Unix(), 10)), token, nil)
		require.Equal(t, http.StatusOK, code, body)
		return body
	}
	before := countLoad("token-a")
	require.Contains(t, before, `"result":[{`)

	form := url.Values{"match[]": {`node_load1`}}
	base := o.url("/prometheus")
	for name, c := range map[string]struct {
		set  func(*http.Request)
		want int
	}{
		"no credential":         {noHeaders, http.StatusUnauthorized},
		"the tenant's token":    {bearerAuth("token-a"), http.StatusUnauthorized},
		"tenant token + header": {func(r *http.Request) { bearerAuth("token-a")(r); r.Header.Set("X-Scope-OrgID", "team-a") }, http.StatusUnauthorized},
		"a tenant header":       {func(r *http.Request) { r.Header.Set("X-Scope-OrgID", "team-a") }, http.StatusUnauthorized},
		"admin, no tenant":      {bearerAuth("op-secret"), http.StatusBadRequest},
		"admin, two tenants":    {func(r *http.Request) { bearerAuth("op-secret")(r); r.Header.Set("X-Scope-OrgID", "team-a|team-b") }, http.StatusBadRequest},
	} {
		code, body := deleteSeries(t, base, form, c.set)
		require.Equal(t, c.want, code, "%s: %s", name, body)
	}
	// A tenant reaching the path by another method, through the query
	// API, is not let in either.
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		code, body := authed(t, method, base+"/api/v1/admin/tsdb/delete_series?match[]=node_load1", "token-a", nil)
		require.Contains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, code, "%s: %s", method, body)
	}
	require.Equal(t, before, countLoad("token-a"), "a refused deletion deleted nothing")

	admin := func(r *http.Request) { bearerAuth("op-secret")(r); r.Header.Set("X-Scope-OrgID", "team-a") }
	code, body := deleteSeries(t, base, url.Values{"match[]": {`node_load1{`}}, admin)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "match[]")
	code, body = deleteSeries(t, base, url.Values{}, admin)
	require.Equal(t, http.StatusBadRequest, code, body)
	code, body = deleteSeries(t, base, form, admin)
	require.Equal(t, http.StatusNoContent, code, body)
	require.Contains(t, countLoad("token-a"), `"result":[]`)
	require.Equal(t, before, countLoad("token-b"), "another tenant's series stay")

	// A whole tenant: every series, every label, gone; the other stays.
	deleteTenant := func(set func(*http.Request)) (int, string) {
		t.Helper()
		return requestWith(t, http.MethodPost, o.url("/purger/delete_tenant"), set)
	}
	for _, set := range []func(*http.Request){noHeaders, bearerAuth("token-b"), bearerAuth("op-secret")} {
		code, body := deleteTenant(set)
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusBadRequest}, code, body)
	}
	require.Equal(t, before, countLoad("token-b"))
	code, body = deleteTenant(func(r *http.Request) { bearerAuth("op-secret")(r); r.Header.Set("X-Scope-OrgID", "team-b") })
	require.Equal(t, http.StatusNoContent, code, body)
	require.Contains(t, countLoad("token-b"), `"result":[]`)
	code, body = authed(t, http.MethodGet, base+"/api/v1/labels", "token-b", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"data":[]`)
	code, body = authed(t, http.MethodGet, base+"/api/v1/query?query=count(up)&time="+strconv.FormatInt(end.Unix(), 10), "token-a", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"result":[{`, "the other tenant keeps its series")
}

// TestDeletionOutlivesTheIngestersThatTookIt: a deletion is made while a
// frontend caches in Memcached; then the one ingester that took it hands
// over to a new one and leaves, and a new frontend, sharing the Memcached
// but knowing no generation, answers every corpus query as Prometheus 3
// does: the new ingester got the tombstones and the deletion generation
// with the handover, so no answer cached before the deletion is read.
func TestDeletionOutlivesTheIngestersThatTookIt(t *testing.T) {
	prom := startPrometheus3WithConfig(t, func(int) string { return "global:\n  scrape_interval: 15s\n" }, "--web.enable-admin-api")
	mcPort := startMemcached(t)
	c := newCluster(t, 1)
	cache := []string{"-frontend.split-interval=10m", "-frontend.max-cache-freshness=0s",
		"-frontend.results-cache.memcached-addresses=127.0.0.1:" + strconv.Itoa(mcPort)}
	c.extra["qfe1"], c.extra["qfe2"] = cache, cache
	for _, id := range []string{"ing1", "dist", "quer", "qfe1"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1")
	c.waitRing("quer", "ing1")
	w := newDualWriter(prom, c.members["dist"].url(""))
	for step := 0; step < genSteps; step++ {
		w.write(t, step)
	}
	qfe1 := c.members["qfe1"].url("/prometheus")
	require.Eventually(t, func() bool { return metricValue(t, c.members["qfe1"], "orrery_frontend_connected_workers") > 0 },
		30*time.Second, 200*time.Millisecond)
	compareQueries(t, prom, qfe1, w.start, w.end) // fills Memcached

	sec := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }
	form := url.Values{"match[]": {`{__name__=~"node_.+", instance="host-001:9100"}`}, "start": {sec(w.start)}, "end": {sec(w.start.Add(3 * time.Minute))}}
	code, body := deleteSeries(t, prom, form, noHeaders)
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = deleteSeries(t, qfe1, form, noHeaders)
	require.Equal(t, http.StatusNoContent, code, body)
	form = url.Values{"match[]": {`up{job="api"}`}}
	code, body = deleteSeries(t, prom, form, noHeaders)
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = deleteSeries(t, qfe1, form, noHeaders)
	require.Equal(t, http.StatusNoContent, code, body)

	// ing2 replaces ing1, which hands everything over and leaves.
	c.add("ing2")
	c.waitRing("quer", "ing1", "ing2")
	// ing1 decides whom to hand over to by its own view of the ring:
	// stopped before gossip brought it ing2, it would find itself alone
	// and keep its entry (CI saw this once).
	c.waitRing("ing1", "ing1", "ing2")
	c.reseed("ing1")
	waitClosed(t, c.stopAsync("ing1"), "ing1 hands over and stops")
	c.waitRing("quer", "ing2")
	require.Eventually(t, func() bool {
		m, ok := c.ring("quer")["ing1"]
		return !ok || m.State == "LEFT"
	}, 30*time.Second, 200*time.Millisecond, "the querier sees ing1 gone")
	c.members["qfe1"].stop(t)
	c.reseed("qfe1")
	c.add("qfe2")
	require.Eventually(t, func() bool { return metricValue(t, c.members["qfe2"], "orrery_frontend_connected_workers") > 0 },
		30*time.Second, 200*time.Millisecond)
	compareQueries(t, prom, c.members["qfe2"].url("/prometheus"), w.start, w.end)
	require.Positive(t, metricValue(t, c.members["qfe2"], "orrery_frontend_results_cache_requests_total"))
}
