package querier

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// TestAuditSpareSeriesBeforeTheGroup: a spare that replaces a stream
// failing midway is read past the last series returned, but the series
// being merged is later than that; a series only the spare has in between
// (one created after the other ingesters read their index, or written to
// that replica alone) comes to the top of the heap in the middle of the
// group. The group ends early, the set returns that series out of order,
// and then the group's series a second time: the engine sees one series
// twice (double counted by sum, a duplicate labelset error elsewhere).
func TestAuditSpareSeriesBeforeTheGroup(t *testing.T) {
	ctx := context.Background()
	msg := func(names ...string) *ingesterpb.QueryStreamResponse {
		m := &ingesterpb.QueryStreamResponse{}
		for _, n := range names {
			m.Series = append(m.Series, &ingesterpb.ChunkSeries{Labels: ingesterpb.FromLabels(labels.FromStrings("__name__", n))})
		}
		return m
	}
	open := func(id string, failAfter int, msgs ...*ingesterpb.QueryStreamResponse) *ingesterStream {
		st := &ingesterStream{id: id, stream: &fakeStream{ctx: ctx, msgs: msgs, f: &fakeIngester{failAfter: failAfter}}}
		_, err := st.load(ctx)
		require.NoError(t, err)
		return st
	}
	// A fails when it reads past its second message; C, the spare, also
	// has b.
	a := open("A", 2, msg("a"), msg("c"), msg("d"))
	b := open("B", 0, msg("a"), msg("c"), msg("d"))
	spareUsed := false
	spare := func() (*ingesterStream, bool, error) {
		if spareUsed {
			return nil, false, nil
		}
		spareUsed = true
		return open("C", 0, msg("a", "b", "c", "d")), true, nil
	}
	set := newStreamSeriesSet(ctx, []*ingesterStream{a, b}, 0, nil, spare, func() {})
	var got []string
	for set.Next() {
		got = append(got, set.At().Labels().Get("__name__"))
	}
	require.NoError(t, set.Err())
	require.True(t, spareUsed)
	require.IsIncreasing(t, got, "each series once, in order: %v", got)
}
