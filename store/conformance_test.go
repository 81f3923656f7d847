package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks/chunkstest"

	"github.com/orrery/orrery/ingester/chunks"
)

// The bbolt store keeps the ingester's chunks.Store contract.
func TestConformance(t *testing.T) {
	chunkstest.Run(t, func(t *testing.T, dir string) (chunks.Store, func() error) {
		opts := DefaultOptions()
		opts.Path = filepath.Join(dir, "store.db")
		opts.NoSync = true
		s, err := Open(opts, nil, nil)
		require.NoError(t, err)
		return s, s.Close
	}, func(t *testing.T, dir string, backup []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "store.db"), backup, 0o600))
	})
}
