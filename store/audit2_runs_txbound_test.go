package store

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// zzAudit2Blocks returns partition 0's blocks of tenant t by key.
func zzAudit2Blocks(t *testing.T, st *Store) map[string][]byte {
	out := map[string][]byte{}
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		pb := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold).Bucket(timeKey(0))
		return pb.ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	}))
	return out
}

// TestAudit2CompactionTxReencodesUnboundedBlocks: compactBatchBytes (and
// docs/operations.md: "a compaction pass holds the store's writer for at
// most 4 MiB of chunks per transaction") bounds only the bytes of the
// chunks bucket a transaction takes in. Every group of a batch rewrites
// (decodes, rebuilds, re-encodes as runs) its whole existing block, which
// is not counted: a dirty partition whose late chunks are spread over its
// series re-encodes every block of the partition in one transaction.
func TestAudit2CompactionTxReencodesUnboundedBlocks(t *testing.T) {
	st := openTest(t, testOptions(t))
	batch := auditBatch(t, 8000)
	require.NoError(t, st.Put("t", batch))
	_, err := st.Compact(context.Background(), activeWidth)
	require.NoError(t, err)
	before := zzAudit2Blocks(t, st)

	// One late one-sample chunk for every fourth series: 2000 series
	// (compactBatchSeries), a few KiB of chunks in all.
	var late []SeriesChunks
	for k := 0; k < len(batch); k += 4 {
		late = append(late, seriesOf(batch[k].Labels, stepChunk(t, activeWidth-1, 1, 1)))
	}
	require.NoError(t, st.Put("t", late))

	var ids []uint64
	hotBytes := 0
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketChunks).ForEach(func(k, v []byte) error {
			ids = append(ids, binary.BigEndian.Uint64(k))
			hotBytes += len(v)
			return nil
		})
	}))
	require.Len(t, ids, len(late))

	// One compaction transaction, as compactPartition runs it.
	var used int
	start := time.Now()
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		w, err := openTenantWriter(tx, "t")
		if err != nil {
			return err
		}
		_, used, err = st.compactSeries(w, 0, ids[:min(len(ids), compactBatchSeries)], nil)
		return err
	}))
	took := time.Since(start)

	after := zzAudit2Blocks(t, st)
	rewritten, chunkBytes := 0, 0
	for k, v := range before {
		if string(after[k]) == string(v) {
			continue
		}
		rewritten++
		recs, err := decodeColdBlock(v)
		require.NoError(t, err)
		for _, r := range recs {
			chunkBytes += len(r.value)
		}
	}
	t.Logf("blocks %d; one transaction took in %d B of chunks (%d series) and re-encoded %d blocks holding %d B of chunks in %v",
		len(before), hotBytes, used, rewritten, chunkBytes, took)
	require.LessOrEqual(t, chunkBytes, compactBatchBytes,
		"one compaction transaction re-encoded %d B of chunks (%d blocks), past compactBatchBytes", chunkBytes, rewritten)
}
