//go:build integration

package integration

import (
	"archive/tar"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSnapshotRestoresIntoAFreshProcess: POST /ingester/snapshot, with the
// admin credential only, streams a tar that, unpacked into an empty data
// directory, starts a process answering every query as the original did
// when the snapshot was taken: data flushed to the store, in memory, and in
// the WAL alike.
func TestSnapshotRestoresIntoAFreshProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	admins := filepath.Join(dir, "admins.yaml")
	require.NoError(t, os.WriteFile(admins, []byte("tokens: [{token: op-secret}]\n"), 0o600))
	o := startOrrery(t, t.TempDir(), "-auth.admin-tokens-file="+admins, "-ingester.flush-period=200ms", "-ingester.max-chunk-samples=20")

	now := time.Now().Truncate(time.Minute)
	// Two hours a minute apart: chunks of 20 samples, most completed and
	// flushed to the store, the newest in memory.
	pushSeries(t, o, "team-a", "snap_metric", 20, now.Add(-2*time.Hour), now.Add(-time.Minute), "job", "a")
	pushSeries(t, o, "team-b", "snap_other", 5, now.Add(-30*time.Minute), now, "job", "b")
	time.Sleep(time.Second) // a flush or two

	post := func(token string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, o.url("/ingester/snapshot"), nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp
	}
	for _, token := range []string{"", "wrong"} {
		resp := post(token)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "token %q", token)
	}
	resp := post("op-secret")
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/x-tar", resp.Header.Get("Content-Type"))

	restoredDir := t.TempDir()
	tr := tar.NewReader(resp.Body)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "a whole archive")
		names = append(names, h.Name)
		path := filepath.Join(restoredDir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			require.NoError(t, os.MkdirAll(path, 0o700))
			continue
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
		require.NoError(t, err)
		_, err = io.Copy(f, tr)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	require.Contains(t, names, "store.db")
	require.Contains(t, names, "tokens")

	restored := startOrrery(t, restoredDir)
	end := strconv.FormatInt(now.Unix(), 10)
	for _, q := range []url.Values{
		{"query": {`{__name__=~"snap_.+"}`}, "start": {strconv.FormatInt(now.Add(-2*time.Hour).Unix(), 10)}, "end": {end}, "step": {"60"}},
		{"query": {`count_over_time(snap_metric[3h])`}, "time": {end}},
		{"query": {`sum by (job) (snap_other)`}, "time": {end}},
	} {
		for _, tenantID := range []string{"team-a", "team-b"} {
			path := "/query"
			if q.Has("start") {
				path = "/query_range"
			}
			_, want := queryAs(t, o, tenantID, path, q)
			require.Equal(t, "success", want.Status)
			_, got := queryAs(t, restored, tenantID, path, q)
			require.Empty(t, diffResponses(&want, &got), "%s %s %v", tenantID, path, q)
		}
	}
	_, got := queryAs(t, restored, "team-a", "/query", url.Values{"query": {`count_over_time(snap_metric[3h])`}, "time": {end}})
	require.Contains(t, string(got.Data), `"120"`, "two hours of samples, flushed and not")
}
