package ingester

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// listDir names what dir holds.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// FuzzTenantFiles pushes arbitrary tenant IDs and request bodies through
// the ingester's gRPC entry point, then flushes to the store and
// checkpoints the WAL: nothing may panic, and nothing may be created
// outside the data dir, whatever the tenant ID says ("../x", "/etc",
// NUL bytes…). The tenant interceptor refuses invalid IDs; behind it
// tenant IDs name bbolt buckets and WAL record fields, never paths.
func FuzzTenantFiles(f *testing.F) {
	valid := series("up", 1, 3)
	for _, id := range []string{"team-a", "..", ".", "../../escape", "/tmp/abs", "a/b", `a\b`, "%2e%2e%2f", "a\x00b", "a|b", strings.Repeat("x", 151), "x.."} {
		f.Add(id, valid)
	}
	f.Add("team-a", []byte{0xff, 0xff, 0xff})
	f.Add("team-b", bytes.Repeat(valid, 3))
	f.Add("team-c", []byte{})

	parent := f.TempDir()
	dataDir := filepath.Join(parent, "data")
	cwd, err := os.Getwd()
	require.NoError(f, err)
	ti := newTestIngester(f, dataDir, testConfig())
	f.Cleanup(func() { ti.stop(f) })
	cwdBefore := listDir(f, cwd)

	f.Fuzz(func(t *testing.T, id string, body []byte) {
		_, _ = ti.client.Push(ctxFor(id), &ingesterpb.PushRequest{Series: body})
		ti.flush(true)
		require.NoError(t, ti.checkpoint())
		require.Equal(t, []string{"data"}, listDir(t, parent), "only the data dir is written")
		require.True(t, slices.Equal(cwdBefore, listDir(t, cwd)), "nothing is written to the working directory")
	})
}
