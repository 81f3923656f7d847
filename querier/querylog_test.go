package querier

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/tenant"
)

// TestQueryLogNamesPostedQueries: Grafana sends queries as a form POST;
// the query log names them as it names a GET's, and the API still answers.
func TestQueryLogNamesPostedQueries(t *testing.T) {
	now := time.Now()
	c := &fakeCluster{ingesters: []*fakeIngester{{data: map[string][]fakeSeries{"a": series("up", 2, now.Add(-time.Minute), now)}}}}
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	q := NewQueryable(cfg, c, c, &fakeLimits{}, reg, logger)
	h := tenant.Middleware(true, nil, NewAPI(cfg, NewEngine(cfg, reg, logger), q, BuildInfo{}, nil, "", reg, logger))

	for _, method := range []string{http.MethodPost, http.MethodGet} {
		buf.Reset()
		form := url.Values{"query": {"count(up)"}, "time": {unix(now)}}
		var r *http.Request
		if method == http.MethodPost {
			r = httptest.NewRequest(method, PathPrefix+"/query", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			r = httptest.NewRequest(method, PathPrefix+"/query?"+form.Encode(), nil)
		}
		r.Header.Set(tenant.HeaderName, "a")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		require.Contains(t, w.Body.String(), `"value":[`, method)
		require.Contains(t, buf.String(), `query=count(up)`, method)
		require.Contains(t, buf.String(), `series_fetched=2`, method)
	}
}
