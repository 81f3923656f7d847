package querier

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

// An ingester that fails midway through its answer is replaced by the
// spare, read on past the series already merged: the answer is still
// complete and exact, though no replica holds every sample.
func TestStreamFailingMidwayIsReplacedBySpare(t *testing.T) {
	now := time.Now()
	tq, want := newQuorumQuerier(t, allActive)
	all := newTestQuerier(t, testConfig(), 1, map[string][]fakeSeries{"a": want}, false)
	wantBody := countsBody(t, all, now)
	tq.cluster.ingesters[1].failAfter = 2
	for q := 1; q <= 3; q++ {
		require.Equal(t, wantBody, countsBody(t, tq, now), "query %d", q)
	}
	require.Equal(t, 2.0, tq.spareCalls("failed"), "the two rotations that asked the failing ingester")
}

// With no spare left for a stream that fails midway, the read fails: what
// it returned so far may lack samples only that stream had.
func TestStreamFailingMidwayWithoutSpareFailsTheRead(t *testing.T) {
	now := time.Now()
	tq, _ := newQuorumQuerier(t, allActive)
	tq.cluster.ingesters[1].failAfter = 1
	tq.cluster.ingesters[2].failAfter = 1
	for q := 1; q <= 3; q++ {
		code, body := tq.get(t, "a", PathPrefix+"/query", countQuery(now))
		require.NotEqual(t, http.StatusOK, code, body)
		require.Contains(t, body, "no spare ingester is left", "query %d", q)
	}
}

// A select reads the ingesters' streams as it is iterated: after its first
// series only the first messages have been sent, and all of them by its
// end, each series once.
func TestSelectReadsStreamsAsItIterates(t *testing.T) {
	now := time.Now()
	tq := newTestQuerier(t, testConfig(), 3, map[string][]fakeSeries{"a": series("up", 200, now.Add(-time.Minute), now)}, false)
	qr, err := tq.q.Querier(now.Add(-time.Hour).UnixMilli(), now.UnixMilli())
	require.NoError(t, err)
	defer qr.Close()
	set := qr.Select(tenant.WithID(context.Background(), "a"), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	require.True(t, set.Next())
	// Two ingesters asked, one series a message: each sent the message it
	// was opened with and the next.
	require.LessOrEqual(t, tq.cluster.sent(), int64(4))
	n := 1
	var prev labels.Labels = set.At().Labels()
	for set.Next() {
		require.Negative(t, labels.Compare(prev, set.At().Labels()))
		prev = set.At().Labels()
		n++
	}
	require.NoError(t, set.Err())
	require.Equal(t, 200, n)
	require.Equal(t, int64(400), tq.cluster.sent())
}

// A stream whose series do not rise by labels is an error, never merged
// as if it were sorted.
func TestStreamOutOfOrderIsAnError(t *testing.T) {
	ctx := context.Background()
	msg := func(name string) *ingesterpb.QueryStreamResponse {
		return &ingesterpb.QueryStreamResponse{Series: []*ingesterpb.ChunkSeries{{Labels: ingesterpb.FromLabels(labels.FromStrings("__name__", name))}}}
	}
	st := &ingesterStream{id: "ingester-0", stream: &fakeStream{ctx: ctx, msgs: []*ingesterpb.QueryStreamResponse{msg("b"), msg("a")}, f: &fakeIngester{}}}
	more, err := st.load(ctx)
	require.NoError(t, err)
	require.True(t, more)
	_, err = st.next(ctx)
	require.ErrorContains(t, err, "ingester ingester-0: series {__name__=\"a\"} after {__name__=\"b\"}: the answer is not sorted by labels")
}

// A query that stops iterating a select (its end, an error elsewhere)
// ends the ingesters' streams when it closes the querier, not when they
// time out.
func TestCloseEndsOpenStreams(t *testing.T) {
	now := time.Now()
	tq := newTestQuerier(t, testConfig(), 1, map[string][]fakeSeries{"a": series("up", 50, now.Add(-time.Minute), now)}, false)
	qr, err := tq.q.Querier(now.Add(-time.Hour).UnixMilli(), now.UnixMilli())
	require.NoError(t, err)
	set := qr.Select(tenant.WithID(context.Background(), "a"), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	require.True(t, set.Next())
	ctx := *tq.cluster.ingesters[0].streamCtx.Load()
	require.NoError(t, ctx.Err(), "open while the select is read")
	require.NoError(t, qr.Close())
	require.ErrorIs(t, ctx.Err(), context.Canceled)
}
