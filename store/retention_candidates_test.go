package store

import (
	"fmt"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// TestRetentionCandidatesTakeMemoryOfSeriesNotListings: the first pass
// after retention is enabled or shortened reads every partition of the
// history. Merging each partition's list keeps the candidates' memory
// proportional to the series (a review found 100,000 steady series over
// 335 days would have collected 402 million IDs, 3.2 GB), and past
// retentionCandidatesMax the pass walks every series instead.
func TestRetentionCandidatesTakeMemoryOfSeriesNotListings(t *testing.T) {
	st := openTest(t, testOptions(t))
	const nSeries, nParts = 300, 120
	for p := range nParts {
		var batch []SeriesChunks
		for k := range nSeries {
			ls := labels.FromStrings("__name__", "m", "i", fmt.Sprint(k))
			batch = append(batch, seriesOf(ls, stepChunk(t, int64(p)*activeWidth+3600_000, 2, 1000)))
		}
		require.NoError(t, st.Put("t", batch))
	}
	var ids []uint64
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		var all bool
		var err error
		ids, all, err = retentionCandidates(tx.Bucket(bucketTenants).Bucket([]byte("t")), math.MaxInt64/2, nil)
		require.False(t, all)
		return err
	}))
	require.Len(t, ids, nSeries)
	require.LessOrEqual(t, cap(ids), 4*nSeries, "the candidates of %d series took a slice of %d IDs", nSeries, cap(ids))
}
