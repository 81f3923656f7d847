package store

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// AUDIT: a damaged generation reads as math.MaxInt64 "so that caches stop
// trusting what they hold", but RaiseGeneration never replaces it (no
// value is higher), so from then on no deletion changes the generation
// and frontends keep serving answers cached before every later deletion.
func TestAuditDamagedGenerationFreezesGenerationForever(t *testing.T) {
	opts := testOptions(t)
	st, err := Open(opts, nil, nil)
	require.NoError(t, err)
	_, err = st.RaiseGeneration("a", 100)
	require.NoError(t, err)
	require.NoError(t, st.Close())

	db, err := bbolt.Open(opts.Path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketDeletions).Bucket([]byte("a")).Put(keyGeneration, []byte{1, 2, 3}) // torn
	}))
	require.NoError(t, db.Close())

	st, err = Open(opts, nil, nil)
	require.NoError(t, err)
	defer st.Close()
	d, err := st.Deletions()
	require.NoError(t, err)
	require.Equal(t, int64(-1), d["a"].Generation, "damaged reads as unknown")
	g1, err := st.RaiseGeneration("a", 200) // the next deletion
	require.NoError(t, err)
	g2, err := st.RaiseGeneration("a", 300) // and the one after
	require.NoError(t, err)
	require.Equal(t, int64(200), g1, "a raise replaces the damaged value")
	require.NotEqual(t, g1, g2, "a later deletion must still change the generation")
}
