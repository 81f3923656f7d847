package ingester

import (
	"cmp"
	"io"
	"math"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
)

// testHist is the counter histogram at step k: it gains a bucket at step
// 5 (a layout change the chunk absorbs by recoding) and resets at step 12.
func testHist(k int) *histogram.Histogram {
	n := uint64(k + 1)
	if k >= 12 {
		n = uint64(k - 11)
	}
	h := &histogram.Histogram{
		Schema: 0, ZeroThreshold: 1e-3, ZeroCount: n, Count: 3 * n, Sum: float64(n) * 2.5,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{int64(n), 0},
	}
	if k >= 5 && k < 12 {
		h.Count += 2
		h.PositiveSpans = []histogram.Span{{Offset: 0, Length: 2}, {Offset: 2, Length: 1}}
		h.PositiveBuckets = []int64{int64(n), 0, 2 - int64(n)}
	}
	return h
}

func histLabels(name string) []byte {
	return ingesterpb.AppendLabels(nil, labels.FromStrings("__name__", name, "job", "test"))
}

// histPush encodes samples of series name: floats as a float series and
// histograms as a histogram series, in runs, in the given order.
func histPush(name string, smps ...chunks.Sample) []byte {
	var buf []byte
	for k := 0; k < len(smps); {
		j := k
		isHist := smps[k].H != nil || smps[k].FH != nil
		for j < len(smps) && (smps[j].H != nil || smps[j].FH != nil) == isHist {
			j++
		}
		if isHist {
			buf = ingesterpb.AppendHistogramSeriesHeader(buf, histLabels(name), j-k)
			for _, s := range smps[k:j] {
				buf = ingesterpb.AppendHistogram(buf, s.T, s.H, s.FH)
			}
		} else {
			buf = ingesterpb.AppendSeriesHeader(buf, histLabels(name), j-k)
			for _, s := range smps[k:j] {
				buf = ingesterpb.AppendSample(buf, s.T, s.V)
			}
		}
		k = j
	}
	return buf
}

// allSamples returns every sample of series name the ingester streams,
// memory and store merged by timestamp, as the querier merges them.
func (ti *testIngester) allSamples(t *testing.T, tenantID, name string) []chunks.Sample {
	t.Helper()
	stream, err := ti.client.QueryStream(ctxFor(tenantID), &ingesterpb.QueryRequest{StartMs: math.MinInt64, EndMs: math.MaxInt64,
		Matchers: ingesterpb.FromMatchers([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", name)})})
	require.NoError(t, err)
	byT := map[int64]chunks.Sample{}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		for _, s := range resp.Series {
			for _, c := range s.Chunks {
				smps, err := chunks.Chunk{MinTime: c.MinTimeMs, MaxTime: c.MaxTimeMs, Encoding: chunkenc.Encoding(c.Encoding), Data: c.Data}.Samples()
				require.NoError(t, err)
				for _, smp := range smps {
					byT[smp.T] = smp
				}
			}
		}
	}
	out := make([]chunks.Sample, 0, len(byT))
	for _, smp := range byT {
		out = append(out, smp)
	}
	slices.SortFunc(out, func(a, b chunks.Sample) int { return cmp.Compare(a.T, b.T) })
	return out
}

// throughEveryPath calls check on the ingester's data in memory, then
// after a crash (read back from the WAL), from a checkpoint and from the
// store, restarting the ingester in dir each time, and returns the last
// ingester, still running.
func throughEveryPath(t *testing.T, ti *testIngester, dir string, check func(ti *testIngester, when string), opts ...testOption) *testIngester {
	t.Helper()
	check(ti, "memory")
	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig(), opts...)
	check(ti, "wal")
	require.NoError(t, ti.checkpoint())
	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig(), opts...)
	check(ti, "checkpoint")
	ti.flush(true)
	require.NoError(t, ti.checkpoint())
	ti.crash(t)
	ti = newTestIngester(t, dir, testConfig(), opts...)
	check(ti, "store")
	return ti
}

func requireSamples(t *testing.T, want, got []chunks.Sample) {
	t.Helper()
	require.Len(t, got, len(want))
	for k := range want {
		require.True(t, chunks.Same(want[k], got[k]), "sample %d: want %v, got %v", k, want[k], got[k])
	}
}

// Integer and float histograms, a layout change, a counter reset and a
// series turning from floats to histograms and back are stored and read
// back exactly: from memory, after a crash (WAL), from a checkpoint, and
// from the store.
func TestHistogramsSurviveEveryPath(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	var ints, floats, mixed []chunks.Sample
	for k := range 30 {
		ints = append(ints, chunks.Sample{T: int64(k) * 1000, H: testHist(k)})
		fh := testHist(k).ToFloat(nil)
		fh.Sum = float64(k) / 3
		floats = append(floats, chunks.Sample{T: int64(k) * 1000, FH: fh})
		switch {
		case k < 10 || k >= 20:
			mixed = append(mixed, chunks.Sample{T: int64(k) * 1000, V: float64(k)})
		default:
			mixed = append(mixed, chunks.Sample{T: int64(k) * 1000, H: testHist(k)})
		}
	}
	// In pushes of five, so that chunks are cut, and the series that
	// changes type does so within a push.
	for k := 0; k < 30; k += 5 {
		require.NoError(t, ti.push(t, "a", histPush("ints", ints[k:k+5]...), histPush("floats", floats[k:k+5]...), histPush("mixed", mixed[k:k+5]...)))
	}
	// A retry is a duplicate; another histogram at a held time conflicts.
	require.NoError(t, ti.push(t, "a", histPush("ints", ints[3:8]...)))
	require.ErrorContains(t, ti.push(t, "a", histPush("ints", chunks.Sample{T: 3000, H: testHist(20)})), "duplicate sample with a different value")
	require.ErrorContains(t, ti.push(t, "a", histPush("ints", chunks.Sample{T: 3000, V: 1})), "duplicate sample with a different value")

	ti = throughEveryPath(t, ti, dir, func(ti *testIngester, when string) {
		for name, want := range map[string][]chunks.Sample{"ints": ints, "floats": floats, "mixed": mixed} {
			t.Run(when+"/"+name, func(t *testing.T) { requireSamples(t, want, ti.allSamples(t, "a", name)) })
		}
	})
	// Judged against the store now: still a duplicate, still a conflict.
	require.NoError(t, ti.push(t, "a", histPush("floats", floats[3:8]...)))
	require.ErrorContains(t, ti.push(t, "a", histPush("floats", chunks.Sample{T: 4000, FH: floats[5].FH})), "duplicate sample with a different value")
	ti.stop(t)
}

// A histogram that does not validate is refused and counted; the rest of
// the push is stored.
func TestInvalidHistogramIsRefusedAlone(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	bad := testHist(1)
	bad.Count = 1 // fewer than its buckets hold
	err := ti.push(t, "a", histPush("h", chunks.Sample{T: 1000, H: testHist(0)}, chunks.Sample{T: 2000, H: bad}, chunks.Sample{T: 3000, H: testHist(2)}), onePush("up", 1000, 1))
	require.ErrorContains(t, err, "invalid histogram")
	require.Len(t, ti.allSamples(t, "a", "h"), 2)
	require.Len(t, ti.allSamples(t, "a", "up"), 1)
}

// A leaving ingester hands its histogram chunks over, flushed and in
// memory, and the new owner, which took the series' later samples itself,
// answers every sample: its store merges the chunks it is handed with its
// own.
func TestHandoverKeepsHistograms(t *testing.T) {
	from := newTestIngester(t, t.TempDir(), testConfig())
	defer from.stop(t)
	to := newTestIngester(t, t.TempDir(), testConfig())
	defer to.stop(t)
	var all []chunks.Sample
	for k := range 30 {
		all = append(all, chunks.Sample{T: int64(k) * 1000, H: testHist(k)})
	}
	require.NoError(t, from.push(t, "team", histPush("h", all[:15]...)))
	from.flush(true)
	require.NoError(t, from.push(t, "team", histPush("h", all[15:25]...)))
	require.NoError(t, to.push(t, "team", histPush("h", all[20:]...)))
	r := testRing(1, map[string]member{
		"from": {addr: from.addr, state: ringpb.State_LEAVING, tokens: []uint32{1<<31 + 1}},
		"to":   {addr: to.addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
	})
	require.NoError(t, from.Handover(ctxFor("team"), from.addr, r, from.pool))
	requireSamples(t, all, to.allSamples(t, "team", "h"))
	require.Zero(t, testutil.ToFloat64(to.m.chunksRefused))
}
