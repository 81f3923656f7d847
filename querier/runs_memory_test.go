package querier

import (
	"math"
	"runtime"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/runchunk"
)

// craftedRun is a run of n samples 1 ms apart from t0, all of value 1, in
// chunks of 65535: a few KiB that stand for 16 bytes a sample decoded.
func craftedRun(t0 int64, n int) []byte {
	ts, vs := make([]int64, n), make([]float64, n)
	for k := range ts {
		ts[k], vs[k] = t0+int64(k), 1
	}
	var counts []int
	for left := n; left > 0; left -= min(left, math.MaxUint16) {
		counts = append(counts, min(left, math.MaxUint16))
	}
	return runchunk.Append(nil, counts, ts, vs)
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A run's iterator decodes as it goes, as an XOR chunk's does: a series
// of runs of a million samples each (a few KiB on the wire each) holds a
// packed group of each, not their samples, however many it has read. So
// the querier's memory does not follow what a run claims, which no limit
// sees unless max_fetched_samples_per_query is set.
func TestRunsAreDecodedAsTheyAreRead(t *testing.T) {
	const runs, n = 4, 1 << 20
	var wire []*ingesterpb.Chunk
	size := 0
	for k := range int64(runs) {
		data := craftedRun(k*2*n, n)
		size += len(data)
		wire = append(wire, &ingesterpb.Chunk{MinTimeMs: k * 2 * n, MaxTimeMs: k*2*n + n - 1, Encoding: uint32(runchunk.Encoding), Data: data})
	}
	before := liveHeap()
	ms, err := newMergedSeries(labels.FromStrings("__name__", "m"), wire, math.MinInt64)
	require.NoError(t, err)
	it := ms.Iterator(nil)
	for read := range 3 * n / 2 {
		require.Equal(t, chunkenc.ValFloat, it.Next())
		if read == 0 || read == 3*n/2-1 {
			grew := int64(liveHeap()) - int64(before)
			require.Less(t, grew, int64(1<<20), "after %d samples of a series of %d runs (%d bytes received), %d KiB held", read+1, runs, size, grew>>10)
		}
	}
	runtime.KeepAlive(it)
}
