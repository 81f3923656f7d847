package querier

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/tenant"
)

// A deletion's selectors are bounded in number and size: each becomes a
// tombstone every ingester keeps, checks and hands over. Too many, or one
// too long, is refused before any ingester is asked.
func TestDeleteSeriesBoundsSelectors(t *testing.T) {
	tq := newTestQuerier(t, testConfig(), 1, nil, false)
	post := func(form url.Values) (int, string) {
		r := httptest.NewRequest(http.MethodPost, PathPrefix+DeleteSeriesPath, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set(tenant.HeaderName, "a")
		w := httptest.NewRecorder()
		tq.handler.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	many := url.Values{}
	for range maxDeleteSelectors + 1 {
		many.Add("match[]", "up")
	}
	code, body := post(many)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "at most 100")
	code, body = post(url.Values{"match[]": {`up{job="` + strings.Repeat("x", maxDeleteSelectorBytes) + `"}`}})
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "bytes")
	code, body = post(url.Values{"match[]": {"up{"}})
	require.Equal(t, http.StatusBadRequest, code, body)
}
