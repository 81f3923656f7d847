package querier

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

// fetchStats counts what one request fetched from the ingesters.
type fetchStats struct {
	series, chunks, samples atomic.Int64
}

type fetchStatsKey struct{}

func withFetchStats(ctx context.Context) (context.Context, *fetchStats) {
	st := &fetchStats{}
	return context.WithValue(ctx, fetchStatsKey{}, st), st
}

// recordFetched adds fetched series to the request's stats, if it has any.
// Sample counts come from the chunk headers, without decoding.
func recordFetched(ctx context.Context, series []*ingesterpb.ChunkSeries) {
	st, ok := ctx.Value(fetchStatsKey{}).(*fetchStats)
	if !ok {
		return
	}
	var chunks, samples int64
	for _, s := range series {
		chunks += int64(len(s.Chunks))
		samples += chunkSamples(s.Chunks)
	}
	st.series.Add(int64(len(series)))
	st.chunks.Add(chunks)
	st.samples.Add(samples)
}

// recordPushed adds the series a pushed-down select read to the request's
// stats: series and their samples, from the replicas' digests.
func recordPushed(ctx context.Context, series int, samples int64) {
	st, ok := ctx.Value(fetchStatsKey{}).(*fetchStats)
	if !ok {
		return
	}
	st.series.Add(int64(series))
	st.samples.Add(samples)
}

// addFetchStats adds what st counted to the request's stats, if it has
// any.
func addFetchStats(ctx context.Context, st *fetchStats) {
	to, ok := ctx.Value(fetchStatsKey{}).(*fetchStats)
	if !ok {
		return
	}
	to.series.Add(st.series.Load())
	to.chunks.Add(st.chunks.Load())
	to.samples.Add(st.samples.Load())
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// logQuery writes the query log line: who asked what, how long it took and
// how much it fetched.
func logQuery(logger *slog.Logger, r *http.Request, code int, took time.Duration, st *fetchStats) {
	ids, _ := tenant.IDsFromContext(r.Context())
	attrs := []any{
		"tenant", tenant.JoinIDs(ids), "path", r.URL.Path, "query", r.Form.Get("query"), "status", code,
		"duration", took, "series_fetched", st.series.Load(), "chunks_fetched", st.chunks.Load(), "samples_fetched", st.samples.Load(),
	}
	for _, p := range []string{"time", "start", "end", "step"} {
		if v := r.Form.Get(p); v != "" {
			attrs = append(attrs, p, v)
		}
	}
	logger.Info("query", attrs...)
}
