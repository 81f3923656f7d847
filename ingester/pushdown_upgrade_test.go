package ingester

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// previousReleaseRing is replicaRing where ingester old runs the release before
// pushdown: it serves no Pushdown service and, not knowing
// QueryRequest.series_hashes (field 6, new in this change), ignores it as
// proto3 ignores any unknown field.
type previousReleaseRing struct {
	replicaRing
	old int
}

func (r previousReleaseRing) Client(addr string) (ingesterpb.IngesterClient, error) {
	c, err := r.replicaRing.Client(addr)
	if err != nil {
		return nil, err
	}
	var k int
	if _, err := fmt.Sscan(addr, &k); err != nil {
		return nil, err
	}
	if k == r.old {
		return previousReleaseClient{c}, nil
	}
	return c, nil
}

type previousReleaseClient struct{ ingesterpb.IngesterClient }

func (c previousReleaseClient) QueryStream(ctx context.Context, in *ingesterpb.QueryRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[ingesterpb.QueryStreamResponse], error) {
	req := proto.Clone(in).(*ingesterpb.QueryRequest)
	req.SeriesHashes = nil // unknown to the old binary
	return c.IngesterClient.QueryStream(ctx, req, opts...)
}

func previousReleaseQuerier(r previousReleaseRing, pushdown bool) (http.Handler, *prometheus.Registry) {
	cfg := pushdownQuerierConfig(pushdown)
	cfg.MinimizeIngesterRequests = true
	return pushdownQuerierWith(cfg, r, fixedLimits{})
}

// RF=3 during a rolling upgrade (docs/operations: queriers and ingesters
// may be upgraded in either order): two ingesters run this release, one
// the previous, which serves no Pushdown service and ignores
// QueryRequest.series_hashes. Its failed digest is one tolerated failure;
// the merge of differing series may read it, and the querier drops the
// series it sends unasked, so none is counted twice.
func TestPushdownCountsOnceWithAnIngesterOfThePreviousRelease(t *testing.T) {
	tis := []*testIngester{
		newTestIngester(t, t.TempDir(), testConfig(), withPushdown()),
		newTestIngester(t, t.TempDir(), testConfig(), withPushdown()),
		newTestIngester(t, t.TempDir(), testConfig()), // previous release
	}
	t.Cleanup(func() {
		for _, ti := range tis {
			ti.stop(t)
		}
	})
	writePushdownData(t, tis, 1800, func(r int, ls labels.Labels, ts int) bool {
		// Replica 0 missed a few minutes of one series: it is merged.
		return !(r == 0 && ls.Get("job") == "api" && ls.Get("instance") == "i0" && ts >= 600 && ts < 900)
	})
	r := previousReleaseRing{replicaRing: replicaRing{tis: tis, maxErrors: 1}, old: 2}
	plain, _ := previousReleaseQuerier(r, false)
	pushed, _ := previousReleaseQuerier(r, true)
	params := url.Values{"query": {`count(load)`}, "start": {"0"}, "end": {"1800"}, "step": {"60"}}
	code, want := apiGet(t, plain, "/query_range", params)
	require.Equal(t, http.StatusOK, code, want)
	require.Contains(t, want, `"12"`, "12 load series")
	for range 6 { // every rotation of the two reads
		code, got := apiGet(t, pushed, "/query_range", params)
		require.Equal(t, http.StatusOK, code, got)
		requireSameValues(t, []string{"q\n" + want}, []string{"q\n" + got})
	}
}
