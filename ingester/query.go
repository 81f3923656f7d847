package ingester

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/querier/shard"
	"github.com/orrery/orrery/store"
	"github.com/orrery/orrery/tenant"
)

const (
	minTime = math.MinInt64
	maxTime = math.MaxInt64
)

// QueryStream implements ingesterpb.IngesterServer: matching series with
// their chunks, first from memory, then from the store, each part streamed
// in messages of at most QueryBatchSeries series, so an answer never sits
// whole in the ingester: it holds the matching series' handles and one
// message's chunk copies (and one store batch) at a time.
//
// Memory is read before the store, so a chunk flushed in between is sent
// twice, never missed. A series with data in both is therefore sent in
// two messages (or more, if a store batch boundary falls between its
// copies); readers merge by labels and de-duplicate samples. Each part is
// sorted by labels, the answer as a whole is not.
func (i *Ingester) QueryStream(req *ingesterpb.QueryRequest, stream ingesterpb.Ingester_QueryStreamServer) error {
	ctx := stream.Context()
	i.m.queries.Inc()
	tenantID, ms, keep, err := requestScope(ctx, req.Matchers)
	if err != nil {
		return apierr.ToGRPC(err)
	}
	out := &queryBatcher{stream: stream, size: i.cfg.QueryBatchSeries}
	if h := i.head(tenantID, false); h != nil {
		series, err := h.selectSeries(ctx, ms)
		if err != nil {
			return apierr.ToGRPC(err)
		}
		for k, s := range series {
			if k%1024 == 0 && ctx.Err() != nil {
				return i.queryCanceled(ctx)
			}
			if keep != nil && !keep(s.lset) {
				continue
			}
			if cs := s.copyChunks(req.StartMs, req.EndMs); len(cs) > 0 {
				if err := out.add(store.SeriesChunks{Labels: s.lset, Chunks: toStoreChunks(cs)}); err != nil {
					return err
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return i.queryCanceled(ctx)
	}
	err = i.store.SelectBatches(tenantID, req.StartMs, req.EndMs, i.cfg.QueryBatchSeries, keep, func(batch []store.SeriesChunks) error {
		if ctx.Err() != nil {
			return i.queryCanceled(ctx)
		}
		for _, sc := range batch {
			if err := out.add(sc); err != nil {
				return err
			}
		}
		return nil
	}, ms...)
	if err != nil {
		return apierr.ToGRPC(err)
	}
	return out.flush()
}

// queryCanceled counts a query abandoned mid-stream and returns its error.
func (i *Ingester) queryCanceled(ctx context.Context) error {
	i.m.queriesCanceled.Inc()
	return apierr.ToGRPC(ctx.Err())
}

// queryBatcher sends series in messages of at most size series.
type queryBatcher struct {
	stream ingesterpb.Ingester_QueryStreamServer
	size   int
	resp   *ingesterpb.QueryStreamResponse
}

func (b *queryBatcher) add(sc store.SeriesChunks) error {
	if b.resp == nil {
		b.resp = &ingesterpb.QueryStreamResponse{Series: make([]*ingesterpb.ChunkSeries, 0, b.size)}
	}
	b.resp.Series = append(b.resp.Series, toWire(sc))
	if len(b.resp.Series) >= b.size {
		return b.flush()
	}
	return nil
}

func (b *queryBatcher) flush() error {
	if b.resp == nil || len(b.resp.Series) == 0 {
		return nil
	}
	resp := b.resp
	b.resp = nil
	return b.stream.Send(resp)
}

// Series implements ingesterpb.IngesterServer.
func (i *Ingester) Series(ctx context.Context, req *ingesterpb.SeriesRequest) (*ingesterpb.SeriesResponse, error) {
	sets, err := i.seriesLabels(ctx, req.Matchers, req.StartMs, req.EndMs)
	if err != nil {
		return nil, apierr.ToGRPC(err)
	}
	if req.Limit > 0 && int64(len(sets)) > req.Limit {
		sets = sets[:req.Limit]
	}
	resp := &ingesterpb.SeriesResponse{Series: make([]*ingesterpb.Labels, 0, len(sets))}
	for _, ls := range sets {
		resp.Series = append(resp.Series, &ingesterpb.Labels{Labels: ingesterpb.FromLabels(ls)})
	}
	return resp, nil
}

// LabelNames implements ingesterpb.IngesterServer.
func (i *Ingester) LabelNames(ctx context.Context, req *ingesterpb.LabelNamesRequest) (*ingesterpb.LabelNamesResponse, error) {
	sets, err := i.seriesLabels(ctx, req.Matchers, req.StartMs, req.EndMs)
	if err != nil {
		return nil, apierr.ToGRPC(err)
	}
	seen := map[string]struct{}{}
	for _, ls := range sets {
		ls.Range(func(l labels.Label) { seen[l.Name] = struct{}{} })
	}
	return &ingesterpb.LabelNamesResponse{Names: sortedLimited(seen, req.Limit)}, nil
}

// LabelValues implements ingesterpb.IngesterServer.
func (i *Ingester) LabelValues(ctx context.Context, req *ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
	sets, err := i.seriesLabels(ctx, req.Matchers, req.StartMs, req.EndMs)
	if err != nil {
		return nil, apierr.ToGRPC(err)
	}
	seen := map[string]struct{}{}
	for _, ls := range sets {
		if v := ls.Get(req.Name); v != "" {
			seen[v] = struct{}{}
		}
	}
	return &ingesterpb.LabelValuesResponse{Values: sortedLimited(seen, req.Limit)}, nil
}

// seriesLabels returns the sorted, unique label sets of series with data in
// [start, end], from memory and store.
func (i *Ingester) seriesLabels(ctx context.Context, wire []*ingesterpb.LabelMatcher, start, end int64) ([]labels.Labels, error) {
	tenantID, ms, keep, err := requestScope(ctx, wire)
	if err != nil {
		return nil, err
	}
	var out []labels.Labels
	if h := i.head(tenantID, false); h != nil {
		series, err := h.selectSeries(ctx, ms)
		if err != nil {
			return nil, err
		}
		for _, s := range series {
			if s.overlaps(start, end) && (keep == nil || keep(s.lset)) {
				out = append(out, s.lset)
			}
		}
	}
	stored, err := i.store.Series(tenantID, start, end, keep, ms...)
	if err != nil {
		return nil, err
	}
	out = append(out, stored...)
	slices.SortFunc(out, labels.Compare)
	return slices.CompactFunc(out, labels.Equal), nil
}

// requestScope returns a read's tenant, its matchers and, when it carries
// a query shard matcher (querier/shard), the shard as keep, with the shard
// matcher removed from ms: no series has the label, so matching it would
// select nothing. keep is nil for an unsharded read.
func requestScope(ctx context.Context, wire []*ingesterpb.LabelMatcher) (string, []*labels.Matcher, store.Keep, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return "", nil, nil, apierr.New(apierr.Unauthorized, "%s", err)
	}
	ms, err := ingesterpb.ToMatchers(wire)
	if err != nil {
		return "", nil, nil, apierr.New(apierr.BadData, "%s", err)
	}
	ms, si, sn, sharded, err := shard.Strip(ms)
	if err != nil {
		return "", nil, nil, apierr.New(apierr.BadData, "ingester: %s", err)
	}
	if !sharded {
		return tenantID, ms, nil, nil
	}
	return tenantID, ms, func(ls labels.Labels) bool { return shard.Owns(ls, si, sn) }, nil
}

func sortedLimited(set map[string]struct{}, limit int64) []string {
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	if limit > 0 && int64(len(out)) > limit {
		out = out[:limit]
	}
	return out
}

func toStoreChunks(cs []chunkCopy) []store.Chunk {
	out := make([]store.Chunk, len(cs))
	for k, c := range cs {
		out[k] = store.Chunk{MinTime: c.minT, MaxTime: c.maxT, Encoding: chunkenc.EncXOR, Data: c.data}
	}
	return out
}

func toWire(sc store.SeriesChunks) *ingesterpb.ChunkSeries {
	cs := &ingesterpb.ChunkSeries{Labels: ingesterpb.FromLabels(sc.Labels), Chunks: make([]*ingesterpb.Chunk, len(sc.Chunks))}
	for k, c := range sc.Chunks {
		cs.Chunks[k] = &ingesterpb.Chunk{MinTimeMs: c.MinTime, MaxTimeMs: c.MaxTime, Encoding: uint32(c.Encoding), Data: c.Data}
	}
	return cs
}
