package frontend

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/tenant"
)

// deletingDownstream answers delete_series as the queriers do: with
// deleteStatus, and on success a higher deletion generation. genStatus,
// when not 200, is how it answers generation requests instead.
type deletingDownstream struct {
	*downstream
	deleteStatus int
	genStatus    atomic.Int64
	deletes      atomic.Int64
}

func (d *deletingDownstream) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Path {
	case querier.PathPrefix + querier.DeleteSeriesPath:
		d.deletes.Add(1)
		if d.onRequest != nil {
			d.onRequest(req)
		}
		rec := httptest.NewRecorder()
		rec.WriteHeader(d.deleteStatus)
		if d.deleteStatus/100 == 2 {
			d.generation.Add(1)
		}
		return rec.Result(), nil
	case querier.PathPrefix + querier.DeletionGenerationPath:
		if s := d.genStatus.Load(); s != 0 && s != http.StatusOK {
			rec := httptest.NewRecorder()
			rec.WriteHeader(int(s))
			return rec.Result(), nil
		}
	}
	return d.downstream.RoundTrip(req)
}

func generationFixture(t *testing.T, now time.Time) (*Frontend, *deletingDownstream, *recorder) {
	down := &deletingDownstream{downstream: newDownstream(t, 1), deleteStatus: http.StatusNoContent}
	rec := &recorder{}
	down.onRequest = rec.hook
	cfg := testConfig()
	cfg.SplitInterval = time.Hour
	cfg.QueryShards = 1
	return newTestFrontend(t, cfg, down, defaultLimits(), now), down, rec
}

func deleteThrough(t *testing.T, f *Frontend, id string) int {
	t.Helper()
	form := url.Values{"match[]": {`node_load1`}}
	req := httptest.NewRequest(http.MethodPost, querier.PathPrefix+querier.DeleteSeriesPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req = req.WithContext(tenant.WithID(req.Context(), id))
	w := httptest.NewRecorder()
	f.ServeDeleteSeries(w, req)
	return w.Code
}

// TestDeletionRetiresCachedAnswers: once a deletion through this frontend
// succeeded, no answer cached before it is served, even within the
// generation's refresh period; a failed deletion changes nothing.
func TestDeletionRetiresCachedAnswers(t *testing.T) {
	f, down, rec := generationFixture(t, t0.Add(10*time.Hour))
	params := rangeParams(`max(node_load1)`, 60*time.Minute, 120*time.Minute, time.Minute)
	do(t, f, "a", "/query_range", params)
	require.NotEmpty(t, rec.take())
	do(t, f, "a", "/query_range", params)
	require.Empty(t, rec.take(), "the second query is cached")

	require.Equal(t, http.StatusNoContent, deleteThrough(t, f, "a"))
	require.EqualValues(t, 1, down.deletes.Load())
	do(t, f, "a", "/query_range", params)
	require.NotEmpty(t, rec.take(), "an answer cached before the deletion was served after it")
	do(t, f, "a", "/query_range", params)
	require.Empty(t, rec.take(), "answers computed after the deletion are cached again")

	// Another tenant's cache is untouched.
	do(t, f, "b", "/query_range", params)
	rec.take()
	require.Equal(t, http.StatusNoContent, deleteThrough(t, f, "a"))
	do(t, f, "b", "/query_range", params)
	require.Empty(t, rec.take())

	down.deleteStatus = http.StatusServiceUnavailable
	require.Equal(t, http.StatusServiceUnavailable, deleteThrough(t, f, "a"))
	do(t, f, "a", "/query_range", params)
	require.NotEmpty(t, rec.take(), "the first query after a deletion asks again")
	do(t, f, "a", "/query_range", params)
	require.Empty(t, rec.take())
}

// TestDeletionThroughAnotherFrontend: a deletion this frontend did not
// see retires its cached answers once the generation is asked again,
// within generationRefresh.
func TestDeletionThroughAnotherFrontend(t *testing.T) {
	now := t0.Add(10 * time.Hour)
	f, down, rec := generationFixture(t, now)
	params := rangeParams(`max(node_load1)`, 60*time.Minute, 120*time.Minute, time.Minute)
	do(t, f, "a", "/query_range", params)
	rec.take()
	asks := down.genAsks.Load()
	down.generation.Add(1)
	do(t, f, "a", "/query_range", params)
	require.Empty(t, rec.take(), "within the refresh period the generation is not asked")
	require.Equal(t, asks, down.genAsks.Load())

	f.now = func() time.Time { return now.Add(generationRefresh) }
	do(t, f, "a", "/query_range", params)
	require.NotEmpty(t, rec.take())
	require.Equal(t, asks+1, down.genAsks.Load())
}

// TestDeletionGenerationNeverGoesDown: ingesters that joined after a
// deletion know an older generation; the frontend keeps the higher one,
// so answers cached before the deletion stay retired.
func TestDeletionGenerationNeverGoesDown(t *testing.T) {
	now := t0.Add(10 * time.Hour)
	f, down, rec := generationFixture(t, now)
	params := rangeParams(`max(node_load1)`, 60*time.Minute, 120*time.Minute, time.Minute)
	do(t, f, "a", "/query_range", params)
	rec.take()
	require.Equal(t, http.StatusNoContent, deleteThrough(t, f, "a"))
	do(t, f, "a", "/query_range", params)
	require.NotEmpty(t, rec.take())

	down.generation.Store(0)
	f.now = func() time.Time { return now.Add(time.Minute) }
	do(t, f, "a", "/query_range", params)
	require.Empty(t, rec.take(), "a lower generation must not bring back the old keys, nor drop the new")
}

// TestDeletionGenerationUnknown: when the queriers cannot say the
// generation, queries are answered, exactly and uncached.
func TestDeletionGenerationUnknown(t *testing.T) {
	f, down, rec := generationFixture(t, t0.Add(10*time.Hour))
	down.genStatus.Store(http.StatusServiceUnavailable)
	params := rangeParams(`max(node_load1)`, 60*time.Minute, 120*time.Minute, time.Minute)
	for range 2 {
		code, got := do(t, f, "a", "/query_range", params)
		require.Equal(t, http.StatusOK, code)
		require.NotEmpty(t, rec.take(), "nothing may be cached without a generation")
		_, want := do(t, roundTripHandler{down}, "a", "/query_range", params)
		rec.take()
		require.Empty(t, diffResponses(want, got))
	}
}

// The generations kept are bounded: a flood of tenant names does not grow
// the frontend without end, and a forgotten tenant's is asked again.
func TestDeletionGenerationsBounded(t *testing.T) {
	g := &generations{}
	for k := range maxGenerationTenants + 5 {
		g.entry(strconv.Itoa(k))
	}
	g.mu.Lock()
	n := len(g.m)
	g.mu.Unlock()
	require.LessOrEqual(t, n, maxGenerationTenants)
}

// A caller's credential, checked at the edge, is not passed into the
// queue: neither a tenant's on a query nor the admin's on a deletion.
func TestCredentialsStayAtTheEdge(t *testing.T) {
	f, down, _ := generationFixture(t, t0.Add(10*time.Hour))
	var seen atomic.Int64
	down.onRequest = func(r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			seen.Add(1)
		}
	}
	params := rangeParams(`max(node_load1)`, 60*time.Minute, 120*time.Minute, time.Minute)
	req := httptest.NewRequest(http.MethodPost, querier.PathPrefix+"/query_range", strings.NewReader(params.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer tenant-secret")
	req = req.WithContext(tenant.WithID(req.Context(), "a"))
	w := httptest.NewRecorder()
	f.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	form := url.Values{"match[]": {`node_load1`}}
	req = httptest.NewRequest(http.MethodPost, querier.PathPrefix+querier.DeleteSeriesPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer admin-secret")
	req = req.WithContext(tenant.WithID(req.Context(), "a"))
	w = httptest.NewRecorder()
	f.ServeDeleteSeries(w, req)
	require.Equal(t, http.StatusNoContent, w.Code)
	require.Zero(t, seen.Load())
}
