package querier

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// genIngester keeps tombstones and a deletion generation per tenant with
// the ingester's semantics (ingester.DeletionGeneration: a raise moves it
// to RaiseTo or past the current one, whichever is higher; see
// TestDeletionGenerationRises).
type genIngester struct {
	ingesterpb.IngesterClient
	mu     sync.Mutex
	stones map[string]int
	gen    map[string]int64
}

func (g *genIngester) DeleteSeries(ctx context.Context, _ *ingesterpb.DeleteSeriesRequest, _ ...grpc.CallOption) (*ingesterpb.DeleteSeriesResponse, error) {
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stones[id]++
	return &ingesterpb.DeleteSeriesResponse{}, nil
}

func (g *genIngester) DeletionGeneration(ctx context.Context, req *ingesterpb.DeletionGenerationRequest, _ ...grpc.CallOption) (*ingesterpb.DeletionGenerationResponse, error) {
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if req.RaiseTo > 0 {
		g.gen[id] = max(req.RaiseTo, g.gen[id]+1)
	}
	return &ingesterpb.DeletionGenerationResponse{Generation: g.gen[id]}, nil
}

type genCluster []*genIngester

func (c genCluster) instances() []*ringpb.Instance {
	var out []*ringpb.Instance
	for k := range c {
		out = append(out, &ringpb.Instance{Id: fmt.Sprint("ingester-", k), Addr: fmt.Sprint(k)})
	}
	return out
}

func (c genCluster) ForQuery() (ring.ReplicationSet, error) {
	return ring.ReplicationSet{Instances: c.instances(), MaxErrors: 1}, nil
}
func (c genCluster) ForDeletion() ([]*ringpb.Instance, error) { return c.instances(), nil }
func (c genCluster) Client(addr string) (ingesterpb.IngesterClient, error) {
	var k int
	_, err := fmt.Sscan(addr, &k)
	return c[k], err
}

// AUDIT: the deletion generation is the raising querier's wall clock, and
// an ingester only ever raises it. A deletion through a querier whose
// clock is behind the one that made the previous deletion (skew between
// querier hosts, an NTP step back, or a generation that read as
// math.MaxInt64 from a damaged store) leaves the generation unchanged,
// so every frontend keeps serving the answers it cached between the two
// deletions, with the second deletion's samples, for results_cache_ttl.
func TestAuditDeletionGenerationDoesNotRiseBehindASkewedClock(t *testing.T) {
	c := genCluster{}
	for range 3 {
		c = append(c, &genIngester{stones: map[string]int{}, gen: map[string]int64{}})
	}
	// The previous deletion went through a querier whose clock is one
	// second ahead of this one's.
	prev := time.Now().Add(time.Second).UnixNano()
	for _, g := range c {
		g.gen["a"] = prev
	}
	q := NewQueryable(testConfig(), c, c, &fakeLimits{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	ctx := tenant.WithID(context.Background(), "a")
	require.NoError(t, q.DeleteSeries(ctx, "a", 0, 1000, [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")}}))
	for _, g := range c {
		require.Equal(t, 1, g.stones["a"], "the deletion reached every ingester")
	}
	gen, err := q.DeletionGeneration(ctx, "a")
	require.NoError(t, err)
	require.Greater(t, gen, prev, "a completed deletion must change the generation the caches key by")
}
