package store

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestAudit2CacheTooLargeBlockThrashes: a block whose parsed size fits a
// quarter of the budget but whose rebuilt runs do not is inserted on every
// read (evicting the least recently used entries to make room), then
// removed by grow once rebuilt. A workload reading it beside blocks that
// fit the cache together misses on every read of them too.
func TestAudit2CacheTooLargeBlockThrashes(t *testing.T) {
	big, _ := auditRealisticBlock(t, 400)
	small, _ := auditRealisticBlock(t, 40)
	c := newBlockCache(1 << 40)
	d, err := c.get("t", 0, idKey(1), big)
	require.NoError(t, err)
	parsed := c.size
	_, err = d.all()
	require.NoError(t, err)
	rebuilt := c.size
	d, err = c.get("t", 1, idKey(1), small)
	require.NoError(t, err)
	smallParsed := c.size - rebuilt
	_, err = d.all()
	require.NoError(t, err)
	smallRebuilt := c.size - rebuilt
	t.Logf("big block: parsed %d B, rebuilt %d B; small: parsed %d B, rebuilt %d B", parsed, rebuilt, smallParsed, smallRebuilt)

	// Room for the small blocks rebuilt, and for the big one parsed.
	budget := max(4*parsed+1, 4*smallRebuilt)
	nSmall := budget / smallRebuilt
	require.Greater(t, rebuilt, budget/4, "the big block grows past a quarter")
	c = newBlockCache(budget)
	read := func(p int64, v []byte) {
		d, err := c.get("t", p, idKey(1), v)
		require.NoError(t, err)
		_, err = d.all()
		require.NoError(t, err)
	}
	for p := range int64(nSmall) {
		read(p+1, small)
	}
	hits0 := testutil.ToFloat64(c.requests.WithLabelValues("hit"))
	for range 5 {
		read(0, big)
		for p := range int64(nSmall) {
			read(p+1, small)
		}
	}
	hits := testutil.ToFloat64(c.requests.WithLabelValues("hit")) - hits0
	misses := testutil.ToFloat64(c.requests.WithLabelValues("miss"))
	t.Logf("budget %d B, %d small blocks fit; hits %v, misses %v (of %d small reads)", budget, nSmall, hits, misses, 5*nSmall)
	require.Equal(t, float64(5*nSmall), hits, "the small blocks fit the cache: every read of them should hit")
}
