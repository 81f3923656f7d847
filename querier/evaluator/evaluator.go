package evaluator

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/queryplan"
	"github.com/orrery/orrery/runchunk"
)

// maxSteps bounds a range evaluation's steps, as Prometheus's API does.
const maxSteps = 11000

// Server serves ingesterpb.PushdownServer.
type Server struct {
	ingesterpb.UnimplementedPushdownServer
	engine    promql.QueryEngine
	queryable storage.Queryable
	ingester  ingesterpb.IngesterClient
	timeout   time.Duration
	running   chan struct{}
	parser    parser.Parser
}

// New returns a server that evaluates with engine over queryable (a
// querier.Queryable whose ring is this process's ingester alone) and
// digests the series of ingester (this process's, read in process). At
// most maxConcurrent calls run at once, the rest wait, so the memory they
// hold is bounded as a querier's is (-querier.max-concurrent times
// -querier.max-samples, or MaxDigestSeries digests). A call ends after
// timeout, or at its caller's deadline if sooner.
func New(engine promql.QueryEngine, queryable storage.Queryable, ingester ingesterpb.IngesterClient, maxConcurrent int, timeout time.Duration) *Server {
	return &Server{engine: engine, queryable: queryable, ingester: ingester, timeout: timeout,
		running: make(chan struct{}, maxConcurrent), parser: parser.NewParser(parser.Options{})}
}

// SeriesDigests implements ingesterpb.PushdownServer. A series' digest
// hashes its chunks in the range, each once, in order of time and bytes:
// the order the ingester sends them in depends on which it has flushed,
// and a chunk flushed while being read comes twice (QueryStream). So two
// replicas that hold the same chunks digest alike, and ones that hold
// different chunks almost surely not.
func (s *Server) SeriesDigests(ctx context.Context, req *ingesterpb.DigestRequest) (*ingesterpb.DigestResponse, error) {
	ctx, done, err := s.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	limit := req.Limit
	if limit <= 0 || limit > querier.MaxDigestSeries {
		limit = querier.MaxDigestSeries
	}
	stream, err := s.ingester.QueryStream(ctx, &ingesterpb.QueryRequest{StartMs: req.StartMs, EndMs: req.EndMs, Matchers: req.Matchers, PackedLabels: true, RunChunks: true})
	if err != nil {
		return nil, err
	}
	var (
		entries []entry
		b       labels.ScratchBuilder
		d       digester
	)
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		for _, cs := range msg.Series {
			ls, err := seriesLabels(&b, cs)
			if err != nil {
				return nil, apierr.ToGRPC(apierr.New(apierr.Internal, "evaluator: a series' labels: %s", err))
			}
			if int64(len(entries)) >= limit {
				return nil, apierr.ToGRPC(apierr.New(apierr.TooLarge, "evaluator: more than %d series to digest", limit))
			}
			sum, n := d.digest(cs.Chunks)
			entries = append(entries, entry{hash: labels.StableHash(ls), digest: sum, samples: n})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.hash, b.hash) })
	resp := &ingesterpb.DigestResponse{
		Hashes:  make([]uint64, len(entries)),
		Digests: make([]uint64, len(entries)),
		Samples: make([]int64, len(entries)),
	}
	for k, e := range entries {
		resp.Hashes[k], resp.Digests[k], resp.Samples[k] = e.hash, e.digest, e.samples
	}
	return resp, nil
}

type entry struct {
	hash, digest uint64
	samples      int64
}

func seriesLabels(b *labels.ScratchBuilder, cs *ingesterpb.ChunkSeries) (labels.Labels, error) {
	if len(cs.PackedLabels) > 0 {
		return ingesterpb.DecodeLabels(b, cs.PackedLabels)
	}
	return ingesterpb.ToLabels(b, cs.Labels), nil
}

// digester hashes series' chunks, reusing its buffers.
type digester struct {
	order []*ingesterpb.Chunk
	buf   []byte
}

// digest returns the hash of chunks, each distinct chunk once in a fixed
// order, and their samples (from the chunk headers; a chunk that does not
// parse counts none, and hashes all the same).
func (d *digester) digest(chunks []*ingesterpb.Chunk) (uint64, int64) {
	d.order = append(d.order[:0], chunks...)
	slices.SortFunc(d.order, compareChunks)
	d.order = slices.CompactFunc(d.order, func(a, b *ingesterpb.Chunk) bool { return compareChunks(a, b) == 0 })
	h := xxhash.New()
	var n int64
	for _, c := range d.order {
		d.buf = binary.BigEndian.AppendUint64(d.buf[:0], uint64(c.MinTimeMs))
		d.buf = binary.BigEndian.AppendUint64(d.buf, uint64(c.MaxTimeMs))
		d.buf = binary.BigEndian.AppendUint32(d.buf, c.Encoding)
		d.buf = binary.BigEndian.AppendUint64(d.buf, uint64(len(c.Data)))
		_, _ = h.Write(d.buf)
		_, _ = h.Write(c.Data)
		if chk, err := runchunk.FromData(chunkenc.Encoding(c.Encoding), c.Data); err == nil {
			n += int64(chk.NumSamples())
		}
	}
	return h.Sum64(), n
}

func compareChunks(a, b *ingesterpb.Chunk) int {
	if c := cmp.Compare(a.MinTimeMs, b.MinTimeMs); c != 0 {
		return c
	}
	if c := cmp.Compare(a.MaxTimeMs, b.MaxTimeMs); c != 0 {
		return c
	}
	if a.Encoding != b.Encoding {
		return cmp.Compare(a.Encoding, b.Encoding)
	}
	return slices.Compare(a.Data, b.Data)
}

// admit bounds a call to the server's timeout and waits for one of the
// places of the calls that run at once, until then. It returns the call's
// context and what ends it: the place's release and the timeout's cancel.
func (s *Server) admit(ctx context.Context) (context.Context, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	select {
	case s.running <- struct{}{}:
		return ctx, func() { <-s.running; cancel() }, nil
	case <-ctx.Done():
		cancel()
		return nil, nil, apierr.ToGRPC(ctx.Err())
	}
}

// Evaluate implements ingesterpb.PushdownServer.
func (s *Server) Evaluate(ctx context.Context, req *ingesterpb.EvaluateRequest) (*ingesterpb.EvaluateResponse, error) {
	if err := s.validate(req); err != nil {
		return nil, apierr.ToGRPC(err)
	}
	ctx, done, err := s.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx = querier.WithSeriesHashes(ctx, req.SeriesHashes)
	opts := promql.NewPrometheusQueryOpts(false, time.Duration(req.LookbackDeltaMs)*time.Millisecond, nil)
	var qry promql.Query
	if req.StepMs == 0 {
		qry, err = s.engine.NewInstantQuery(ctx, s.queryable, opts, req.Query, time.UnixMilli(req.StartMs))
	} else {
		qry, err = s.engine.NewRangeQuery(ctx, s.queryable, opts, req.Query, time.UnixMilli(req.StartMs), time.UnixMilli(req.EndMs), time.Duration(req.StepMs)*time.Millisecond)
	}
	if err != nil {
		return nil, apierr.ToGRPC(apierr.New(apierr.BadData, "evaluator: %s", err))
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, apierr.ToGRPC(engineError(ctx, res.Err))
	}
	resp := &ingesterpb.EvaluateResponse{Annotations: wireAnnotations(res.Warnings, req.Query)}
	if st := qry.Stats(); st != nil && st.Samples != nil {
		resp.TotalSamples = st.Samples.TotalSamples
	}
	if resp.Series, err = floatSeries(res.Value); err != nil {
		return nil, apierr.ToGRPC(err)
	}
	return resp, nil
}

// engineError is an evaluation's error with its kind: the query's end, a
// failed read (the ingester's fault), or else the query itself (bad
// matching, too many samples, …), which is the caller's.
func engineError(ctx context.Context, err error) error {
	var storageErr promql.ErrStorage
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &storageErr):
		return fmt.Errorf("evaluator: %w", err)
	}
	return apierr.New(apierr.BadData, "evaluator: %s", err)
}

// wireAnnotations returns annos for the querier: each with its raw text,
// which the querier de-duplicates by as the engine does, and as formatted
// against query, whose positions are the querier's query's.
func wireAnnotations(annos annotations.Annotations, query string) []*ingesterpb.Annotation {
	out := make([]*ingesterpb.Annotation, 0, len(annos))
	for _, err := range annos {
		a := &ingesterpb.Annotation{Raw: err.Error(), Info: errors.Is(err, annotations.PromQLInfo)}
		var q interface{ SetQuery(string) }
		if errors.As(err, &q) {
			q.SetQuery(query)
		}
		a.Formatted = err.Error()
		out = append(out, a)
	}
	return out
}

func floatSeries(v any) ([]*ingesterpb.FloatSeries, error) {
	var out []*ingesterpb.FloatSeries
	switch v := v.(type) {
	case promql.Matrix:
		out = make([]*ingesterpb.FloatSeries, 0, len(v))
		for _, s := range v {
			if len(s.Histograms) > 0 {
				return nil, apierr.New(apierr.BadData, querier.ErrHistograms)
			}
			fs := &ingesterpb.FloatSeries{PackedLabels: ingesterpb.AppendLabels(nil, s.Metric), TimestampsMs: make([]int64, len(s.Floats)), Values: make([]float64, len(s.Floats))}
			for k, p := range s.Floats {
				fs.TimestampsMs[k], fs.Values[k] = p.T, p.F
			}
			out = append(out, fs)
		}
	case promql.Vector:
		out = make([]*ingesterpb.FloatSeries, 0, len(v))
		for _, s := range v {
			if s.H != nil {
				return nil, apierr.New(apierr.BadData, querier.ErrHistograms)
			}
			out = append(out, &ingesterpb.FloatSeries{PackedLabels: ingesterpb.AppendLabels(nil, s.Metric), TimestampsMs: []int64{s.T}, Values: []float64{s.F}})
		}
	default:
		return nil, apierr.New(apierr.BadData, "evaluator: the query must give vectors, not %T", v)
	}
	return out, nil
}

// maxAbsMs bounds the times of an evaluation to those time.Time's
// UnixNano holds, which the engine computes with.
const maxAbsMs = math.MaxInt64 / int64(time.Millisecond)

func (s *Server) validate(req *ingesterpb.EvaluateRequest) error {
	if err := validateRequest(req); err != nil {
		return err
	}
	// Only what a querier pushes down: one shardable aggregation, so that
	// this door runs no other query.
	expr, err := s.parser.ParseExpr(req.Query)
	if err != nil {
		return apierr.New(apierr.BadData, "evaluator: %s", err)
	}
	if pl := queryplan.New(req.Query, expr); pl == nil || len(pl.Leaves) != 1 || !pl.Leaves[0].Sharded {
		return apierr.New(apierr.BadData, "evaluator: the query is not one shardable aggregation")
	}
	return nil
}

func validateRequest(req *ingesterpb.EvaluateRequest) error {
	switch {
	case req.StartMs < -maxAbsMs || req.StartMs > maxAbsMs || req.EndMs < -maxAbsMs || req.EndMs > maxAbsMs:
		return apierr.New(apierr.BadData, "evaluator: times out of range")
	case req.Query == "":
		return apierr.New(apierr.BadData, "evaluator: no query")
	case len(req.SeriesHashes) == 0:
		return apierr.New(apierr.BadData, "evaluator: series_hashes must name the series to evaluate")
	case !slices.IsSorted(req.SeriesHashes):
		return apierr.New(apierr.BadData, "evaluator: series_hashes must be sorted ascending")
	case req.StepMs < 0 || req.LookbackDeltaMs < 0:
		return apierr.New(apierr.BadData, "evaluator: negative step or lookback delta")
	case req.StepMs > 0 && req.EndMs < req.StartMs:
		return apierr.New(apierr.BadData, "evaluator: end before start")
	case req.StepMs > 0 && uint64(req.EndMs-req.StartMs)/uint64(req.StepMs) >= maxSteps:
		// Unsigned: end minus start overflows int64 for the widest range.
		return apierr.New(apierr.BadData, "evaluator: more than %d steps", maxSteps)
	}
	return nil
}
