package ingester

import (
	"io"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/runchunk"
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
	// A querier that asks for runs reads the compacted partition as one;
	// one that does not gets the XOR chunks it was made from.
	for _, runs := range []bool{true, false} {
		encs, times := ti.queryEncodings(t, "t", runs)
		require.Equal(t, runs, encs[uint32(runchunk.Encoding)] > 0, "runs asked: %v; encodings %v", runs, encs)
		require.Equal(t, before["up"], times)
	}
	ti.stop(t)
	ti = newTestIngester(t, dir, cfg)
	defer ti.stop(t)
	require.Equal(t, before, ti.samples(t, "t"))
}

// queryEncodings queries every series of tenantID, asking for runs or not,
// and returns how many chunks of each encoding came and the distinct
// sample times, sorted.
func (ti *testIngester) queryEncodings(t *testing.T, tenantID string, runs bool) (map[uint32]int, []int64) {
	t.Helper()
	stream, err := ti.client.QueryStream(ctxFor(tenantID), &ingesterpb.QueryRequest{StartMs: math.MinInt64, EndMs: math.MaxInt64, RunChunks: runs})
	require.NoError(t, err)
	encs := map[uint32]int{}
	seen := map[int64]bool{}
	var times []int64
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			slices.Sort(times)
			return encs, times
		}
		require.NoError(t, err)
		for _, s := range resp.Series {
			for _, c := range s.Chunks {
				encs[c.Encoding]++
				chk, err := runchunk.FromData(chunkenc.Encoding(c.Encoding), c.Data)
				require.NoError(t, err)
				it := chk.Iterator(nil)
				for it.Next() == chunkenc.ValFloat {
					ts, v := it.At()
					require.Equal(t, float64(ts/1000), v)
					if !seen[ts] {
						seen[ts] = true
						times = append(times, ts)
					}
				}
				require.NoError(t, it.Err())
			}
		}
	}
}

// A leaving ingester whose store holds runs hands over the chunks they
// were made from: the receiver, whatever its version, stores chunks it
// reads, and answers as the sender did, its own later compaction included.
func TestHandoverOfCompactedData(t *testing.T) {
	cfg := testConfig()
	cfg.CompactAfter = time.Millisecond
	from := newTestIngester(t, t.TempDir(), cfg)
	defer from.stop(t)
	to := newTestIngester(t, t.TempDir(), cfg)
	defer to.stop(t)
	for start := 0; start < 3*3600; start += 600 {
		require.NoError(t, from.push(t, "t", series("up", start, 600)))
	}
	from.flush(true)
	from.compact()
	encs, want := from.queryEncodings(t, "t", true)
	require.Positive(t, encs[uint32(runchunk.Encoding)], "the sender holds runs")
	r := testRing(1, map[string]member{
		"from": {addr: from.addr, state: ringpb.State_LEAVING, tokens: []uint32{1<<31 + 1}},
		"to":   {addr: to.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
	})
	require.NoError(t, from.Handover(ctxFor("t"), from.addr, r, from.pool))
	encs, got := to.queryEncodings(t, "t", true)
	require.Zero(t, encs[uint32(runchunk.Encoding)], "received as chunks, not yet compacted")
	require.Equal(t, want, got)
	to.compact()
	encs, got = to.queryEncodings(t, "t", true)
	require.Positive(t, encs[uint32(runchunk.Encoding)], "the receiver compacts what it received")
	require.Equal(t, want, got)
}
