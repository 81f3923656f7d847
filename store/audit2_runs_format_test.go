package store

import (
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// TestAudit2CompactionRaisesFormatWithoutWritingABlock: compactSeries
// calls raiseFormat before it knows whether it writes a block, so a
// version 4 file whose compaction writes none (every chunk inside a
// tombstone here; before retained_from or too large would do too) becomes
// version 5 holding no version 2 block, against encoding.go's and
// FORMAT.md's "becomes version 5 only when compaction next writes a
// block".
func TestAudit2CompactionRaisesFormatWithoutWritingABlock(t *testing.T) {
	st := openTest(t, testOptions(t))
	ls := labels.FromStrings("__name__", "m", "k", "0")
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(ls, stepChunk(t, 100_000, 10, 1000))}))
	require.NoError(t, st.AddTombstone("t", Tombstone{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "k", "0")}}))
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormatVersion, binary.BigEndian.AppendUint32(nil, formatChunkBlocks))
	}))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	blocks := 0
	var version uint32
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		version = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormatVersion))
		cold := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold)
		if cold == nil {
			return nil
		}
		return cold.ForEachBucket(func(p []byte) error {
			return cold.Bucket(p).ForEach(func(_, _ []byte) error { blocks++; return nil })
		})
	}))
	t.Logf("format %d, blocks %d", version, blocks)
	if blocks == 0 {
		require.Equal(t, formatChunkBlocks, version, "raised to 5 without a version 2 block")
	}
}
