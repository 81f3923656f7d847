package ingester

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The ingester compacts its stored chunks once their partition is old
// enough, and every query answers the same before, after and across a
// restart.
func TestIngesterCompactsItsStore(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.CompactAfter = time.Millisecond
	ti := newTestIngester(t, dir, cfg)
	// Three hours of samples from the epoch: the first 2-hour partition
	// ends long ago.
	for from := 0; from < 3*3600; from += 600 {
		require.NoError(t, ti.push(t, "t", series("up", from, 600)))
	}
	ti.flush(true)
	before := ti.samples(t, "t")
	require.Len(t, before["up"], 3*3600)
	ti.compact()
	mfs, err := ti.reg.Gather()
	require.NoError(t, err)
	moved := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "orrery_store_compacted_chunks_total" {
			moved = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	require.Positive(t, moved, "the first partition was compacted")
	require.Equal(t, before, ti.samples(t, "t"))
	ti.stop(t)
	ti = newTestIngester(t, dir, cfg)
	defer ti.stop(t)
	require.Equal(t, before, ti.samples(t, "t"))
}
