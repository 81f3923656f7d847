package ingester

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// Evaluate runs only one shardable aggregation, what a querier pushes
// down: another query (here a many-to-many match) is the caller's bad
// input, refused InvalidArgument.
func TestEvaluateRefusesOtherQueries(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig(), withPushdown())
	t.Cleanup(func() { ti.stop(t) })
	writePushdownData(t, []*testIngester{ti}, 600, func(int, labels.Labels, int) bool { return true })
	var hs []uint64
	for _, ls := range pushdownSeries() {
		if ls.Get("__name__") == "load" {
			hs = append(hs, labels.StableHash(ls))
		}
	}
	slices.Sort(hs)
	c, err := ti.pool.PushdownClient(ti.addr)
	require.NoError(t, err)
	_, err = c.Evaluate(ctxFor("t"), &ingesterpb.EvaluateRequest{Query: `load * on() load`, StartMs: 300_000, SeriesHashes: hs})
	require.Error(t, err)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
}
