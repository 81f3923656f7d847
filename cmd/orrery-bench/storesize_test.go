package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// TestStoreSizeLeavesOutFreePages: after most of a file's data is
// deleted, store-size reports what is left, not the file's size.
func TestStoreSizeLeavesOutFreePages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	value := bytes.Repeat([]byte{7}, 1000)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		for _, name := range []string{"keep", "drop"} {
			b, err := tx.CreateBucket([]byte(name))
			require.NoError(t, err)
			n := map[string]int{"keep": 100, "drop": 10_000}[name]
			for k := range n {
				require.NoError(t, b.Put([]byte(fmt.Sprintf("%08d", k)), value))
			}
		}
		return nil
	}))
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("drop")) }))
	require.NoError(t, db.Close())
	fi, err := os.Stat(path)
	require.NoError(t, err)

	var out, errOut bytes.Buffer
	require.Equal(t, 0, storeSizeMain([]string{path}, &out, &errOut), errOut.String())
	size, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	require.NoError(t, err)
	require.Greater(t, size, int64(100*1000), "the kept values")
	require.Less(t, size, int64(300*1000), "not the dropped ones")
	require.Greater(t, fi.Size(), int64(10_000*1000), "the file keeps their pages")

	require.Equal(t, 1, storeSizeMain([]string{filepath.Join(t.TempDir(), "missing", "store.db")}, &out, &errOut))
	require.Equal(t, 2, storeSizeMain(nil, &out, &errOut))
}
