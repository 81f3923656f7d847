package store

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// The cache answers a block again without decoding it, never answers a
// rewritten block (other bytes, same place) with the old one's records,
// and stays within its budget.
func TestBlockCache(t *testing.T) {
	block := func(id uint64, data string) []byte {
		return encodeColdBlock([]coldRecord{{id: id, maxTime: 10, value: encodeChunkValue(rawChunk(1, 10, data))}})
	}
	c := newBlockCache(4 << 10)
	key := idKey(1)
	v1 := block(1, "first")
	recs, err := c.get("t", 0, key, v1)
	require.NoError(t, err)
	again, err := c.get("t", 0, key, v1)
	require.NoError(t, err)
	require.Equal(t, recs, again)
	require.Equal(t, 1.0, testutil.ToFloat64(c.requests.WithLabelValues("hit")))

	v2 := block(1, "rewritten")
	got, err := c.get("t", 0, key, v2)
	require.NoError(t, err)
	all, err := got.all()
	require.NoError(t, err)
	require.Equal(t, encodeChunkValue(rawChunk(1, 10, "rewritten")), all[0].value)
	other, err := c.get("u", 0, key, v1)
	require.NoError(t, err)
	recsAll, err := recs.all()
	require.NoError(t, err)
	otherAll, err := other.all()
	require.NoError(t, err)
	require.Equal(t, recsAll, otherAll, "another tenant's block of the same bytes decodes the same")
	require.NotSame(t, recs, other)
	require.Equal(t, 1.0, testutil.ToFloat64(c.requests.WithLabelValues("hit")), "neither was a hit")

	for k := range 200 {
		_, err := c.get("t", int64(k), key, block(1, fmt.Sprint(k)))
		require.NoError(t, err)
	}
	require.LessOrEqual(t, c.size, c.budget)
	require.Equal(t, c.lru.Len(), len(c.entries))

	_, err = c.get("t", 0, key, []byte{coldBlockVersion, 0, 0, 0, 0, 1})
	require.ErrorIs(t, err, errCorrupt, "a damaged block is an error, and not cached")
}
