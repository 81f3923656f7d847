package ingester

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/querier/shard"
	"github.com/orrery/orrery/tenant"
)

const (
	minTime = math.MinInt64
	maxTime = math.MaxInt64
)

// QueryStream implements ingesterpb.IngesterServer: matching series with
// their chunks, memory and store together, sorted by labels as a whole and
// each series once, in messages of at most QueryBatchSeries series. A
// reader can therefore merge ingesters' streams as they arrive.
//
// A first pass names the matching series: memory's by handle, the store's
// by ID (store.Refs, which copies the labels of those not in memory only
// while sorting). Then,
// a batch of QueryBatchSeries at a time, it copies the batch's memory
// chunks and only then reads its stored chunks in a fresh read
// transaction (store.ChunksOf), looking up by labels the memory series
// that had no stored ID in the first pass. A flush stores a chunk before
// it drops it from memory (putAndRelease), so a chunk not copied from
// memory is in that transaction: no chunk is missed, and one flushed
// between the two reads is sent twice, identical, which readers keep once.
// So the ingester holds a handle or ID per matching series and one batch
// of chunks, never the answer. Series created after the first pass are
// not in the answer, as a sample written after the read began may not be.
func (i *Ingester) QueryStream(req *ingesterpb.QueryRequest, stream ingesterpb.Ingester_QueryStreamServer) error {
	ctx := stream.Context()
	i.m.queries.Inc()
	tenantID, ms, keep, err := requestScope(ctx, req.Matchers)
	if err != nil {
		return apierr.ToGRPC(err)
	}
	if keep, err = keepHashes(keep, req.SeriesHashes); err != nil {
		return apierr.ToGRPC(err)
	}
	entries, err := i.streamEntries(ctx, tenantID, req.StartMs, req.EndMs, ms, keep)
	if err != nil {
		return i.queryFailed(ctx, err)
	}
	out := &queryBatcher{stream: stream, size: i.cfg.QueryBatchSeries, packed: req.PackedLabels, runs: req.RunChunks}
	for len(entries) > 0 {
		if ctx.Err() != nil {
			return i.queryCanceled(ctx)
		}
		batch := entries[:min(len(entries), i.cfg.QueryBatchSeries)]
		entries = entries[len(batch):]
		if err := i.streamBatch(tenantID, req.StartMs, req.EndMs, batch, out); err != nil {
			return i.queryFailed(ctx, err)
		}
	}
	if err := out.flush(); err != nil {
		return i.queryFailed(ctx, err)
	}
	return nil
}

// queryFailed returns a query's error, as a cancellation when the query
// ended meanwhile: a read or send it broke off is not the ingester's error.
func (i *Ingester) queryFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return i.queryCanceled(ctx)
	}
	return apierr.ToGRPC(err)
}

// streamEntry is one series of a QueryStream answer: its memory handle
// (nil when only stored) and its stored ID (0 when it had none in the
// first pass).
type streamEntry struct {
	s  *memSeries
	id uint64
}

// streamEntries is QueryStream's first pass: the series that match ms, keep
// keeps and have data in [start, end], memory and store joined by labels,
// sorted. Memory is named before the store, so a series flushed and
// forgotten in between is in the store's part. A stored series also in
// memory only lends its ID to the memory entry (found by binary search,
// memory's list being sorted), so the store copies the labels only of
// series that are not in memory.
func (i *Ingester) streamEntries(ctx context.Context, tenantID string, start, end int64, ms []*labels.Matcher, keep chunks.Keep) ([]streamEntry, error) {
	var mem []streamEntry
	// The store passes over a series memory holds by the ID an earlier
	// query learned, before reading it; else by its labels, learning the
	// ID for the next query. So does it over one whose labels keep
	// refuses: a shard's or a pushed-down share's query would otherwise
	// read and decode every other share's stored series to refuse them.
	var byID map[uint64]struct{}
	if h := i.head(tenantID, false); h != nil {
		all, err := h.selectSeries(ctx, ms)
		if err != nil {
			return nil, err
		}
		for k, s := range all {
			if k%1024 == 0 && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if keep != nil && !keep(s.lset) {
				if id := s.storeID.Load(); id != 0 {
					if byID == nil {
						byID = make(map[uint64]struct{})
					}
					byID[id] = struct{}{}
				}
				continue
			}
			if s.overlaps(start, end) {
				mem = append(mem, streamEntry{s: s})
			}
		}
		slices.SortFunc(mem, func(a, b streamEntry) int { return labels.Compare(a.s.lset, b.s.lset) })
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if byID == nil {
		byID = make(map[uint64]struct{}, len(mem))
	}
	for k, e := range mem {
		if id := e.s.storeID.Load(); id != 0 {
			byID[id] = struct{}{}
			mem[k].id = id
		}
	}
	inMemory := chunks.Known{
		ID: func(id uint64) bool { _, ok := byID[id]; return ok },
		Labels: func(id uint64, ls labels.Labels) bool {
			k, found := slices.BinarySearchFunc(mem, ls, func(e streamEntry, ls labels.Labels) int { return labels.Compare(e.s.lset, ls) })
			if found {
				mem[k].id = id
				mem[k].s.storeID.Store(id)
			}
			return found
		},
	}
	stored, err := i.store.Refs(tenantID, start, end, keep, inMemory, ms...)
	if err != nil {
		return nil, err
	}
	// Both are sorted by labels and share none: merge them.
	out := make([]streamEntry, 0, len(mem)+len(stored))
	for len(mem) > 0 || len(stored) > 0 {
		if len(stored) == 0 || len(mem) > 0 && labels.Compare(mem[0].s.lset, stored[0].Labels) < 0 {
			out, mem = append(out, mem[0]), mem[1:]
		} else {
			out, stored = append(out, streamEntry{id: stored[0].ID}), stored[1:]
		}
	}
	return out, nil
}

// streamBatch sends the series of batch that have chunks in [start, end]:
// memory chunks copied first, then the stored ones read (see QueryStream).
// A series whose memory holds every sample it has from start on (stored
// samples all end before start, or the chunks holding them are kept in
// memory: Config.RetainPeriod) is not looked up in the store: for a
// dashboard's newest minutes that is most of them, each a store lookup
// saved.
func (i *Ingester) streamBatch(tenantID string, start, end int64, batch []streamEntry, out *queryBatcher) error {
	mem := make([][]chunkCopy, len(batch))
	refs := make([]chunks.SeriesRef, 0, len(batch))
	inStore := make([]int, len(batch)) // index in refs, or -1
	for k, e := range batch {
		if e.s != nil {
			var storeMayHold bool
			if mem[k], storeMayHold = e.s.copyChunks(start, end); !storeMayHold {
				inStore[k] = -1
				continue
			}
		}
		inStore[k] = len(refs)
		refs = append(refs, chunks.SeriesRef{ID: e.id})
		if e.s != nil {
			refs[len(refs)-1].Labels = e.s.lset
		}
	}
	var (
		stored []chunks.SeriesChunks
		err    error
	)
	if len(refs) > 0 {
		if stored, err = i.store.ChunksOf(tenantID, start, end, refs); err != nil {
			return err
		}
	}
	stones := i.deleted.tombstones(tenantID)
	for k, e := range batch {
		var sc chunks.SeriesChunks
		if inStore[k] >= 0 {
			sc = stored[inStore[k]]
			// A querier that did not ask for runs reads the chunks they
			// were made from.
			if !out.runs {
				if sc.Chunks, err = chunks.ExpandRuns(sc.Chunks, start, end); err != nil {
					return err
				}
			}
		}
		if e.s != nil {
			sc.Labels = e.s.lset
			sc.Chunks = append(toStoreChunks(mem[k]), sc.Chunks...)
		}
		if sc.Chunks, err = withoutDeleted(sc.Chunks, deletedIntervals(stones, sc.Labels)); err != nil {
			return err
		}
		if len(sc.Chunks) == 0 {
			continue
		}
		if err := out.add(sc); err != nil {
			return err
		}
	}
	return nil
}

// queryCanceled counts a query abandoned mid-stream and returns its error.
func (i *Ingester) queryCanceled(ctx context.Context) error {
	i.m.queriesCanceled.Inc()
	return apierr.ToGRPC(ctx.Err())
}

// queryBatchBytes ends a message early once its chunks hold this many
// bytes: series with long histories would otherwise make a message of
// QueryBatchSeries series arbitrarily large.
const queryBatchBytes = 16 << 20

// queryBatcher sends series in messages of at most size series (or about
// queryBatchBytes of chunks, but at least one series).
type queryBatcher struct {
	stream ingesterpb.Ingester_QueryStreamServer
	size   int
	packed bool // labels in ChunkSeries.packed_labels
	runs   bool // compacted data as runs (QueryRequest.run_chunks)
	bytes  int
	resp   *ingesterpb.QueryStreamResponse
}

func (b *queryBatcher) add(sc chunks.SeriesChunks) error {
	if b.resp == nil {
		b.resp = &ingesterpb.QueryStreamResponse{Series: make([]*ingesterpb.ChunkSeries, 0, b.size)}
	}
	b.resp.Series = append(b.resp.Series, toWire(sc, b.packed))
	for _, c := range sc.Chunks {
		b.bytes += len(c.Data)
	}
	if len(b.resp.Series) >= b.size || b.bytes >= queryBatchBytes {
		return b.flush()
	}
	return nil
}

func (b *queryBatcher) flush() error {
	if b.resp == nil || len(b.resp.Series) == 0 {
		return nil
	}
	resp := b.resp
	b.resp, b.bytes = nil, 0
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
	out = slices.CompactFunc(out, labels.Equal)
	return i.withoutDeletedSeries(tenantID, start, end, out)
}

// withoutDeletedSeries leaves out of sets the series a tombstone touches
// that have no sample left in [start, end]. Only those are read, and only
// when the tenant has tombstones.
func (i *Ingester) withoutDeletedSeries(tenantID string, start, end int64, sets []labels.Labels) ([]labels.Labels, error) {
	stones := i.deleted.tombstones(tenantID)
	if len(stones) == 0 {
		return sets, nil
	}
	out := sets[:0]
	for _, ls := range sets {
		ivs := deletedIntervals(stones, ls)
		if len(ivs) == 0 {
			out = append(out, ls)
			continue
		}
		// Only what no tombstone covers at either end is read: after a
		// tenant's deletion, a call over all time reads the time since.
		start, end, ok := trimDeleted(ivs, start, end)
		if !ok {
			continue
		}
		var cs []chunks.Chunk
		if h := i.head(tenantID, false); h != nil {
			enc := ingesterpb.AppendLabels(nil, ls)
			h.mu.RLock()
			s := h.lookup(seriesHash(enc), enc, new([]byte))
			h.mu.RUnlock()
			if s != nil {
				mem, _ := s.copyChunks(start, end)
				cs = toStoreChunks(mem)
			}
		}
		stored, err := i.store.ChunksOf(tenantID, start, end, []chunks.SeriesRef{{Labels: ls}})
		if err != nil {
			return nil, err
		}
		cs = append(cs, stored[0].Chunks...)
		if cs, err = withoutDeleted(cs, ivs); err != nil {
			return nil, err
		}
		if hasSampleIn(cs, start, end) {
			out = append(out, ls)
		}
	}
	return out, nil
}

// trimDeleted narrows [start, end] by the intervals of ivs that cover
// either end; ok is false when nothing is left.
func trimDeleted(ivs []interval, start, end int64) (int64, int64, bool) {
	for changed := true; changed && start <= end; {
		changed = false
		for _, iv := range ivs {
			if iv.mint <= start && start <= iv.maxt {
				if iv.maxt == math.MaxInt64 {
					return 0, 0, false
				}
				start, changed = iv.maxt+1, true
			}
			if iv.mint <= end && end <= iv.maxt {
				if iv.mint == math.MinInt64 {
					return 0, 0, false
				}
				end, changed = iv.mint-1, true
			}
		}
	}
	return start, end, start <= end
}

// hasSampleIn reports whether any chunk of cs has a sample in [start, end].
func hasSampleIn(cs []chunks.Chunk, start, end int64) bool {
	for _, c := range cs {
		if c.MaxTime < start || c.MinTime > end {
			continue
		}
		smps, _ := c.Samples()
		for _, s := range smps {
			if s.T >= start && s.T <= end {
				return true
			}
		}
	}
	return false
}

// requestScope returns a read's tenant, its matchers and, when it carries
// a query shard matcher (querier/shard), the shard as keep, with the shard
// matcher removed from ms: no series has the label, so matching it would
// select nothing. keep is nil for an unsharded read.
func requestScope(ctx context.Context, wire []*ingesterpb.LabelMatcher) (string, []*labels.Matcher, chunks.Keep, error) {
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

// keepHashes narrows keep to the series whose labels.StableHash is in
// hashes (QueryRequest.series_hashes), which must be sorted; none narrows
// nothing.
func keepHashes(keep chunks.Keep, hashes []uint64) (chunks.Keep, error) {
	if len(hashes) == 0 {
		return keep, nil
	}
	if !slices.IsSorted(hashes) {
		return nil, apierr.New(apierr.BadData, "ingester: series_hashes must be sorted ascending")
	}
	return func(ls labels.Labels) bool {
		if keep != nil && !keep(ls) {
			return false
		}
		_, found := slices.BinarySearch(hashes, labels.StableHash(ls))
		return found
	}, nil
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

func toStoreChunks(cs []chunkCopy) []chunks.Chunk {
	out := make([]chunks.Chunk, len(cs))
	for k, c := range cs {
		out[k] = chunks.Chunk{MinTime: c.minT, MaxTime: c.maxT, Encoding: c.enc, Data: c.data}
	}
	return out
}

// toWire is one series of a QueryStream answer or a handover, its labels
// packed (the push encoding's form) or as label pairs.
func toWire(sc chunks.SeriesChunks, packed bool) *ingesterpb.ChunkSeries {
	cs := &ingesterpb.ChunkSeries{Chunks: make([]*ingesterpb.Chunk, len(sc.Chunks))}
	if packed {
		cs.PackedLabels = ingesterpb.AppendLabels(nil, sc.Labels)
	} else {
		cs.Labels = ingesterpb.FromLabels(sc.Labels)
	}
	for k, c := range sc.Chunks {
		cs.Chunks[k] = &ingesterpb.Chunk{MinTimeMs: c.MinTime, MaxTimeMs: c.MaxTime, Encoding: uint32(c.Encoding), Data: c.Data}
	}
	return cs
}
