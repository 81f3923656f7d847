package ingester

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// The widest range (MinInt64 to MaxInt64 ms), where end minus start
// overflows int64, is refused InvalidArgument, not evaluated.
func TestEvaluateRefusesTheWidestRange(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig(), withPushdown())
	t.Cleanup(func() { ti.stop(t) })
	writePushdownData(t, []*testIngester{ti}, 600, func(int, labels.Labels, int) bool { return true })
	c, err := ti.pool.PushdownClient(ti.addr)
	require.NoError(t, err)
	// A deadline only so that a failing run ends; the assertion is the code.
	ctx, cancel := context.WithTimeout(ctxFor("t"), 10*time.Second)
	defer cancel()
	_, err = c.Evaluate(ctx, &ingesterpb.EvaluateRequest{Query: `sum(load)`, StartMs: math.MinInt64, EndMs: math.MaxInt64, StepMs: 1, SeriesHashes: []uint64{1}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
}
