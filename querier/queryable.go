package querier

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// Ring is what the querier needs of the ring: the ingesters to ask.
type Ring interface {
	ForQuery() (ring.ReplicationSet, error)
}

// Clients hands out an ingester client by address.
type Clients interface {
	Client(addr string) (ingesterpb.IngesterClient, error)
}

// Queryable is a storage.SampleAndChunkQueryable over the ingesters.
type Queryable struct {
	ring    Ring
	clients Clients
	cfg     Config
	logger  *slog.Logger
}

// NewQueryable returns a queryable that asks the ingesters r names.
func NewQueryable(cfg Config, r Ring, clients Clients, logger *slog.Logger) *Queryable {
	return &Queryable{ring: r, clients: clients, cfg: cfg, logger: logger}
}

// Querier implements storage.Queryable.
func (q *Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{q: q, mint: mint, maxt: maxt}, nil
}

// ChunkQuerier implements storage.ChunkQueryable, for remote read.
func (q *Queryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return &chunkQuerier{querier{q: q, mint: mint, maxt: maxt}}, nil
}

type querier struct {
	q          *Queryable
	mint, maxt int64
}

func (*querier) Close() error { return nil }

// Select implements storage.Querier. Series come back sorted whatever
// sortSeries says: the merge needs them sorted anyway.
func (qr *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	start, end := qr.mint, qr.maxt
	if hints != nil {
		start, end = hints.Start, hints.End
	}
	req := &ingesterpb.QueryRequest{StartMs: start, EndMs: end, Matchers: ingesterpb.FromMatchers(ms)}
	if hints != nil && hints.Func == "series" {
		return qr.selectLabelsOnly(ctx, &ingesterpb.SeriesRequest{StartMs: start, EndMs: end, Matchers: req.Matchers, Limit: int64(hints.Limit)})
	}
	var mu sync.Mutex
	var all []*ingesterpb.ChunkSeries
	err := qr.fanout(ctx, func(ctx context.Context, c ingesterpb.IngesterClient) error {
		stream, err := c.QueryStream(ctx, req)
		if err != nil {
			return err
		}
		for {
			resp, err := stream.Recv()
			if err != nil {
				return ignoreEOF(err)
			}
			mu.Lock()
			all = append(all, resp.Series...)
			mu.Unlock()
		}
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	recordFetched(ctx, all)
	set, err := newChunkSeriesSet(all)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	return set
}

func (qr *querier) selectLabelsOnly(ctx context.Context, req *ingesterpb.SeriesRequest) storage.SeriesSet {
	var mu sync.Mutex
	var sets []labels.Labels
	err := qr.fanout(ctx, func(ctx context.Context, c ingesterpb.IngesterClient) error {
		resp, err := c.Series(ctx, req)
		if err != nil {
			return err
		}
		var b labels.ScratchBuilder
		mu.Lock()
		defer mu.Unlock()
		for _, s := range resp.Series {
			sets = append(sets, ingesterpb.ToLabels(&b, s.Labels))
		}
		return nil
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	slices.SortFunc(sets, labels.Compare)
	sets = slices.CompactFunc(sets, labels.Equal)
	return &labelsSeriesSet{sets: sets, idx: -1}
}

// LabelValues implements storage.LabelQuerier.
func (qr *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &ingesterpb.LabelValuesRequest{Name: name, StartMs: qr.mint, EndMs: qr.maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: limitOf(hints)}
	return qr.unionStrings(ctx, limitOf(hints), func(ctx context.Context, c ingesterpb.IngesterClient) ([]string, error) {
		resp, err := c.LabelValues(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Values, nil
	})
}

// LabelNames implements storage.LabelQuerier.
func (qr *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &ingesterpb.LabelNamesRequest{StartMs: qr.mint, EndMs: qr.maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: limitOf(hints)}
	return qr.unionStrings(ctx, limitOf(hints), func(ctx context.Context, c ingesterpb.IngesterClient) ([]string, error) {
		resp, err := c.LabelNames(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Names, nil
	})
}

func (qr *querier) unionStrings(ctx context.Context, limit int64, call func(context.Context, ingesterpb.IngesterClient) ([]string, error)) ([]string, annotations.Annotations, error) {
	var mu sync.Mutex
	var out []string
	err := qr.fanout(ctx, func(ctx context.Context, c ingesterpb.IngesterClient) error {
		vals, err := call(ctx, c)
		mu.Lock()
		out = append(out, vals...)
		mu.Unlock()
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if limit > 0 && int64(len(out)) > limit {
		out = out[:limit]
	}
	return out, nil, nil
}

// fanout calls every ingester of the read replication set in parallel. Up to
// MaxErrors failures are tolerated, since the replicas on other ingesters
// hold the same series.
func (qr *querier) fanout(ctx context.Context, call func(context.Context, ingesterpb.IngesterClient) error) error {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return apierr.New(apierr.Unauthorized, "%s", err)
	}
	rs, err := qr.q.ring.ForQuery()
	if err != nil {
		return apierr.New(apierr.Unavailable, "querier: %s", err)
	}
	parent := ctx
	ctx = tenant.WithID(ctx, tenantID)
	errs := make([]error, len(rs.Instances))
	var wg sync.WaitGroup
	for k, inst := range rs.Instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The call does not inherit the query's deadline: gRPC would send
			// it along, and the ingester's copy could expire a moment before
			// the query's own, turning a timeout into a transport error.
			// The query's end reaches the ingester as a cancellation instead.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), qr.q.cfg.IngesterTimeout)
			defer cancel()
			defer context.AfterFunc(parent, cancel)()
			c, err := qr.q.clients.Client(inst.Addr)
			if err == nil {
				err = call(ctx, c)
			}
			if err != nil {
				errs[k] = fmt.Errorf("ingester %s: %w", inst.Id, apierr.FromGRPC(err))
			}
		}()
	}
	wg.Wait()
	// When the query itself was cancelled or timed out, that is the error,
	// not the broken streams it caused: the API maps it to Prometheus's
	// timeout or canceled error.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("querier: %w", err)
	}
	// Failures within the replication tolerance lose nothing: every series
	// has a replica on an ingester that answered.
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > rs.MaxErrors {
		return failed[0]
	}
	if len(failed) > 0 {
		qr.q.logger.Warn("ingesters failed within the replication tolerance", "failed", len(failed), "tolerated", rs.MaxErrors, "first", failed[0])
	}
	return nil
}

func limitOf(h *storage.LabelHints) int64 {
	if h == nil {
		return 0
	}
	return int64(h.Limit)
}

type chunkQuerier struct{ querier }

// Select implements storage.ChunkQuerier.
func (cq *chunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(cq.querier.Select(ctx, sortSeries, hints, ms...))
}
