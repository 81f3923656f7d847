//go:build integration

package integration

import (
	"bytes"
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

func authed(t *testing.T, method, u, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-protobuf")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestTenantsAreIsolated: two tenants behind built-in auth write the same
// metric names; every read API answers each with its own data only, and a
// request without a valid credential (none, unknown, or naming another
// tenant in X-Scope-OrgID) gets 401 and changes nothing in any tenant.
func TestTenantsAreIsolated(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(tokens, []byte("tokens:\n  - {token: token-a, tenant: team-a}\n  - {token: token-b, tenant: team-b}\n"), 0o644))
	o := startOrrery(t, t.TempDir(), "-auth.enabled=true", "-auth.tokens-file="+tokens)

	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	write := func(token string, gen *loadgen.Generator, steps int) {
		var raw []byte
		for step := 0; step < steps; step++ {
			raw = gen.AppendRequest(raw[:0], 0, gen.Len(), step, end.Add(time.Duration(step-steps+1)*genInterval).UnixMilli())
			code, body := authed(t, http.MethodPost, o.url("/api/v1/push"), token, loadgen.Compress(nil, raw))
			require.Equal(t, http.StatusNoContent, code, body)
		}
	}
	genA, genB := loadgen.New(1, 2), loadgen.New(2, 1)
	write("token-a", genA, 10)
	write("token-b", genB, 10)

	at := strconv.FormatInt(end.Unix(), 10)
	count := func(token string) string {
		code, body := authed(t, http.MethodGet, o.url("/prometheus/api/v1/query?query="+url.QueryEscape(`count({__name__=~".+"})`)+"&time="+at), token, nil)
		require.Equal(t, http.StatusOK, code, body)
		return body
	}
	require.Contains(t, count("token-a"), `"`+strconv.Itoa(genA.Len())+`"]`)
	require.Contains(t, count("token-b"), `"`+strconv.Itoa(genB.Len())+`"]`)

	// Instances host-001 exist only in team-a's data.
	for _, path := range []string{
		"/prometheus/api/v1/label/instance/values",
		"/prometheus/api/v1/series?match[]=" + url.QueryEscape(`{instance=~"host-001.*"}`),
		"/prometheus/api/v1/query?query=" + url.QueryEscape(`up{instance=~"host-001.*"}`) + "&time=" + at,
		"/prometheus/federate?match[]=" + url.QueryEscape(`{instance=~"host-001.*"}`),
	} {
		_, a := authed(t, http.MethodGet, o.url(path), "token-a", nil)
		_, b := authed(t, http.MethodGet, o.url(path), "token-b", nil)
		require.Contains(t, a, "host-001", path)
		require.NotContains(t, b, "host-001", "team-b sees team-a's data through %s", path)
	}

	labels := "/prometheus/api/v1/labels?match[]=" + url.QueryEscape(`{instance=~"host-001.*"}`)
	_, a := authed(t, http.MethodGet, o.url(labels), "token-a", nil)
	_, b := authed(t, http.MethodGet, o.url(labels), "token-b", nil)
	require.Contains(t, a, `"instance"`)
	require.Equal(t, `{"status":"success","data":[]}`, b)

	// Refused writes carry a series no tenant has, stamped at the time the
	// checks below look at, so wherever one of them lands (either tenant,
	// anonymous, or the tenant a bare header names) something changes.
	seriesBefore := metricValue(t, o, "orrery_ingester_memory_series")
	beforeA, beforeB := count("token-a"), count("token-b")
	canary := writeRequest(t, seriesAt(end.UnixMilli(), "__name__", "refused_write_canary"))
	for _, c := range []struct{ token, orgID string }{
		{"", ""}, {"token-unknown", ""}, {"", "team-a"}, {"token-unknown", "team-a"}, {"token-b", "team-a"},
	} {
		require.Equal(t, http.StatusUnauthorized, refusedPush(t, o.url("/api/v1/push"), c.token, c.orgID, canary), "token %q, X-Scope-OrgID %q", c.token, c.orgID)
		if c.orgID == "" {
			code, _ := authed(t, http.MethodGet, o.url("/prometheus/api/v1/query?query=up"), c.token, nil)
			require.Equal(t, http.StatusUnauthorized, code)
		}
	}
	require.Equal(t, beforeA, count("token-a"), "a refused write touched team-a")
	require.Equal(t, beforeB, count("token-b"), "a refused write touched team-b")
	for _, token := range []string{"token-a", "token-b"} {
		code, body := authed(t, http.MethodGet, o.url("/prometheus/api/v1/query?query="+url.QueryEscape("count_over_time(refused_write_canary[1h])")+"&time="+at), token, nil)
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, `{"status":"success","data":{"resultType":"vector","result":[]}}`, body, "a refused write landed in %s's data", token)
	}
	require.Equal(t, seriesBefore, metricValue(t, o, "orrery_ingester_memory_series"), "a refused write created a series in some tenant")
	require.True(t, strings.Contains(count("token-a"), "success"))
}

// refusedPush posts a remote-write body with the given bearer token and
// X-Scope-OrgID header (each omitted when empty) and returns the status.
func refusedPush(t *testing.T, u, token, orgID string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if orgID != "" {
		req.Header.Set("X-Scope-OrgID", orgID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
