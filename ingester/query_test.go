package ingester

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/querier/shard"
)

// recordingStream is a QueryStream server stream that keeps every message
// and calls onSend, if set, before keeping one.
type recordingStream struct {
	grpc.ServerStream
	ctx    context.Context
	onSend func(n int)
	msgs   []*ingesterpb.QueryStreamResponse
}

func (s *recordingStream) Context() context.Context { return s.ctx }

func (s *recordingStream) Send(resp *ingesterpb.QueryStreamResponse) error {
	if s.onSend != nil {
		s.onSend(len(s.msgs))
	}
	s.msgs = append(s.msgs, resp)
	return nil
}

// query runs QueryStream over all time for tenant "a" into a
// recordingStream.
func query(t *testing.T, ti *testIngester, onSend func(n int)) *recordingStream {
	t.Helper()
	return queryFrom(t, ti, math.MinInt64, onSend)
}

// queryFrom is query of the samples at or after start.
func queryFrom(t *testing.T, ti *testIngester, start int64, onSend func(n int)) *recordingStream {
	t.Helper()
	rs := &recordingStream{ctx: ctxFor("a"), onSend: onSend}
	require.NoError(t, ti.QueryStream(&ingesterpb.QueryRequest{StartMs: start, EndMs: math.MaxInt64}, rs))
	return rs
}

// timestamps decodes every sample of ws, in chunk order, duplicates kept.
func timestamps(t *testing.T, ws *ingesterpb.ChunkSeries) []int64 {
	t.Helper()
	var out []int64
	for _, c := range ws.Chunks {
		chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
		require.NoError(t, err)
		it := chk.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, _ := it.At()
			out = append(out, ts)
		}
		require.NoError(t, it.Err())
	}
	return out
}

// The answer is streamed, not built whole: a message carries at most
// QueryBatchSeries series, the answer is sorted by labels as a whole, and a
// series with chunks in memory and in the store comes once, with both.
func TestQueryStreamSendsSortedSeriesOnceInBatches(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	names := []string{"m3", "m0", "m4", "m1", "m2"}
	for _, n := range names {
		require.NoError(t, ti.push(t, "a", series(n, 0, 25)))
	}
	// Chunks hold 10 samples: two complete chunks per series go to the
	// store, the head chunk of 5 stays in memory.
	ti.flush(false)
	// m5 is only in the store, m6 only in memory.
	require.NoError(t, ti.push(t, "a", series("m5", 0, 20)))
	ti.flush(false)
	require.NoError(t, ti.push(t, "a", series("m6", 0, 5)))

	rs := query(t, ti, nil)
	var got []string
	for _, m := range rs.msgs {
		require.LessOrEqual(t, len(m.Series), testConfig().QueryBatchSeries)
		for _, ws := range m.Series {
			var b labels.ScratchBuilder
			name := ingesterpb.ToLabels(&b, ws.Labels).Get("__name__")
			got = append(got, name)
			want := 25
			switch name {
			case "m5":
				want = 20
			case "m6":
				want = 5
			}
			ts := timestamps(t, ws)
			slices.Sort(ts)
			require.Len(t, ts, want, name)
			require.Equal(t, int64(0), ts[0], name)
		}
	}
	require.Equal(t, []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6"}, got)
}

// Chunks are copied as messages go out, not all before the first: a sample
// appended, while the first message is being sent, to a series not sent yet
// is in the answer. Building the whole answer before sending (what
// QueryStream did) misses it.
func TestQueryStreamCopiesChunksAsItSends(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	for _, n := range []string{"m0", "m1", "m2"} {
		require.NoError(t, ti.push(t, "a", series(n, 0, 3)))
	}
	rs := query(t, ti, func(n int) {
		if n == 0 {
			require.NoError(t, ti.push(t, "a", series("m2", 3, 1)))
		}
	})
	require.Len(t, rs.msgs, 2)
	last := rs.msgs[1].Series
	require.Len(t, last, 1)
	require.Equal(t, []int64{0, 1000, 2000, 3000}, timestamps(t, last[0]))
}

// A query shard matcher selects the series the shard owns, memory and
// store alike, in QueryStream, Series, LabelNames and LabelValues: the
// shards of one n together answer exactly the unsharded read, each series
// whole in exactly one of them.
func TestQueryShardsPartitionMemoryAndStore(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	var names []string
	for k := range 40 {
		names = append(names, fmt.Sprint("m", k))
		require.NoError(t, ti.push(t, "a", series(names[k], 0, 25)))
	}
	// Two chunks of each series go to the store, the head stays in memory.
	ti.flush(false)
	whole := ti.samples(t, "a")
	require.Len(t, whole, 40)
	ctx := ctxFor("a")
	for _, n := range []int{1, 2, 3, 7} {
		union := map[string][]int64{}
		var unionSeries, unionValues []string
		for i := 1; i <= n; i++ {
			part := ti.samples(t, "a", shard.Matcher(i, n))
			for name, ts := range part {
				require.NotContains(t, union, name, "%s in two shards of %d", name, n)
				require.True(t, shard.Owns(labels.FromStrings("__name__", name, "job", "test"), i, n))
				union[name] = ts
			}
			wire := ingesterpb.FromMatchers([]*labels.Matcher{shard.Matcher(i, n)})
			sr, err := ti.client.Series(ctx, &ingesterpb.SeriesRequest{StartMs: math.MinInt64, EndMs: math.MaxInt64, Matchers: wire})
			require.NoError(t, err)
			for _, s := range sr.Series {
				var b labels.ScratchBuilder
				unionSeries = append(unionSeries, ingesterpb.ToLabels(&b, s.Labels).Get("__name__"))
			}
			lv, err := ti.client.LabelValues(ctx, &ingesterpb.LabelValuesRequest{Name: "__name__", StartMs: math.MinInt64, EndMs: math.MaxInt64, Matchers: wire})
			require.NoError(t, err)
			unionValues = append(unionValues, lv.Values...)
			ln, err := ti.client.LabelNames(ctx, &ingesterpb.LabelNamesRequest{StartMs: math.MinInt64, EndMs: math.MaxInt64, Matchers: wire})
			require.NoError(t, err)
			if len(lv.Values) > 0 {
				require.Equal(t, []string{"__name__", "job"}, ln.Names, "the shard label is no series' label")
			}
		}
		require.Equal(t, whole, union, "%d shards", n)
		slices.Sort(names)
		slices.Sort(unionSeries)
		slices.Sort(unionValues)
		require.Equal(t, names, unionSeries)
		require.Equal(t, names, unionValues)
	}
}

// A shard the ingester cannot honour is the client's error (400), never
// an answer as if the read were unsharded.
func TestQueryShardBadValuesAreBadData(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("m", 0, 3)))
	for _, ms := range [][]*labels.Matcher{
		{labels.MustNewMatcher(labels.MatchEqual, shard.Label, "4_of_3")},
		{labels.MustNewMatcher(labels.MatchEqual, shard.Label, "")},
		{labels.MustNewMatcher(labels.MatchRegexp, shard.Label, "1_of_3")},
		{shard.Matcher(1, 2), shard.Matcher(2, 2)},
	} {
		wire := ingesterpb.FromMatchers(ms)
		stream, err := ti.client.QueryStream(ctxFor("a"), &ingesterpb.QueryRequest{StartMs: 0, EndMs: math.MaxInt64, Matchers: wire})
		if err == nil {
			_, err = stream.Recv()
		}
		require.Equal(t, apierr.BadData, apierr.KindOf(apierr.FromGRPC(err)), "%v: %v", ms, err)
		_, err = ti.client.Series(ctxFor("a"), &ingesterpb.SeriesRequest{StartMs: 0, EndMs: math.MaxInt64, Matchers: wire})
		require.Equal(t, apierr.BadData, apierr.KindOf(apierr.FromGRPC(err)), "%v: %v", ms, err)
		_, err = ti.client.LabelNames(ctxFor("a"), &ingesterpb.LabelNamesRequest{StartMs: 0, EndMs: math.MaxInt64, Matchers: wire})
		require.Equal(t, apierr.BadData, apierr.KindOf(apierr.FromGRPC(err)), "%v: %v", ms, err)
	}
}

// A query whose client goes away mid-stream stops there and is counted as
// canceled, not failed: whether it notices at the next batch or by its
// send failing, as gRPC's does once the stream is canceled.
func TestQueryStreamStopsWhenCanceled(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	for _, n := range []string{"m0", "m1", "m2", "m3", "m4"} {
		require.NoError(t, ti.push(t, "a", series(n, 0, 3)))
	}
	for k, sendFails := range []bool{false, true} {
		ctx, cancel := context.WithCancel(ctxFor("a"))
		rs := &cancelingStream{recordingStream: recordingStream{ctx: ctx}, cancel: cancel, fail: sendFails}
		err := ti.QueryStream(&ingesterpb.QueryRequest{StartMs: math.MinInt64, EndMs: math.MaxInt64}, rs)
		require.Equal(t, apierr.Canceled, apierr.KindOf(apierr.FromGRPC(err)), "%v", err)
		wantMsgs := 1
		if sendFails {
			wantMsgs = 0
		}
		require.Len(t, rs.msgs, wantMsgs, "no batch read after the cancellation")
		require.Equal(t, float64(k+1), testutil.ToFloat64(ti.m.queriesCanceled))
		cancel()
	}
}

// cancelingStream cancels its query at the first send, which fails if
// fail is set.
type cancelingStream struct {
	recordingStream
	cancel context.CancelFunc
	fail   bool
}

func (s *cancelingStream) Send(resp *ingesterpb.QueryStreamResponse) error {
	s.cancel()
	if s.fail {
		return status.Error(codes.Canceled, "context canceled")
	}
	return s.recordingStream.Send(resp)
}

// Asked for packed labels, QueryStream sends each series' labels in the
// push encoding's form, from memory and store alike, and no label pairs;
// not asked (a querier that predates the field), label pairs as before.
func TestQueryStreamPackedLabels(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("stored", 0, 20)))
	ti.flush(false)
	require.NoError(t, ti.push(t, "a", series("memory", 0, 5)))

	names := func(packed bool) []string {
		rs := &recordingStream{ctx: ctxFor("a")}
		require.NoError(t, ti.QueryStream(&ingesterpb.QueryRequest{StartMs: math.MinInt64, EndMs: math.MaxInt64, PackedLabels: packed}, rs))
		var out []string
		var b labels.ScratchBuilder
		for _, m := range rs.msgs {
			for _, ws := range m.Series {
				ls := ingesterpb.ToLabels(&b, ws.Labels)
				if packed {
					require.Empty(t, ws.Labels)
					var err error
					ls, err = ingesterpb.DecodeLabels(&b, ws.PackedLabels)
					require.NoError(t, err)
				} else {
					require.Empty(t, ws.PackedLabels)
				}
				out = append(out, ls.String())
			}
		}
		return out
	}
	want := names(false)
	require.Len(t, want, 2)
	require.Equal(t, want, names(true))
}

// A query learns the store ID of each series it holds in memory, and the
// next query's Refs passes over that ID unread. Retention may delete the
// stored series and a later flush store it again under a new ID: the query
// must then read the new one, not trust the old ID.
func TestQueryAfterTheStoreGaveASeriesANewID(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("m", 1, 25)))
	require.True(t, ti.flush(false)) // [1-10] and [11-20] stored, [21-25] in memory
	require.Equal(t, seconds(1, 26), ti.samples(t, "a", nameM)["m"], "the query learns the stored ID")

	_, err := ti.st.ApplyRetention(time.UnixMilli(30_000), func(string) time.Duration { return 5 * time.Second })
	require.NoError(t, err)
	require.NoError(t, ti.push(t, "a", series("m", 26, 10)))
	require.True(t, ti.flush(false)) // [21-30] stored under a new ID, [31-35] in memory
	require.Equal(t, seconds(21, 36), ti.samples(t, "a", nameM)["m"])
}
