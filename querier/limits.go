package querier

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/internal/promtime"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/runchunk"
)

// Limits gives a tenant's limits. The querier asks on every query, so a
// reloaded overrides file applies from the next query on.
type Limits interface {
	For(tenant string) *limits.Limits
}

// Reasons a query is rejected: the reason label of
// orrery_querier_queries_rejected_total and, as err-orrery-<reason>, the
// stable ID in the message the client sees.
const (
	reasonMaxSeries  = "max-series-per-query"
	reasonMaxSamples = "max-samples-per-query"
	reasonMaxLength  = "max-query-length"
	reasonTimeout    = "query-timeout"
)

// queryLimits are the limits one query runs under; zero is unlimited,
// except timeout, which is always set.
type queryLimits struct {
	maxSeries, maxSamples  int64
	maxLength, maxLookback time.Duration
	timeout                time.Duration
}

// limitsOf returns the limits of a query of the tenants ids. A cross-tenant
// query gets the smallest of its tenants' limits, as in Mimir: reading
// several tenants at once must not take any of them past its own limits.
// A tenant without query_timeout has -querier.timeout.
func (q *Queryable) limitsOf(ids []string) queryLimits {
	var out queryLimits
	for _, id := range ids {
		l := q.limits.For(id)
		out.maxSeries = smallestPositive(out.maxSeries, int64(l.MaxFetchedSeriesPerQuery))
		out.maxSamples = smallestPositive(out.maxSamples, int64(l.MaxFetchedSamplesPerQuery))
		out.maxLength = smallestPositive(out.maxLength, l.MaxQueryLength)
		out.maxLookback = smallestPositive(out.maxLookback, l.MaxQueryLookback)
		timeout := l.QueryTimeout
		if timeout == 0 {
			timeout = q.cfg.Timeout
		}
		out.timeout = smallestPositive(out.timeout, timeout)
	}
	if out.timeout == 0 {
		out.timeout = q.cfg.Timeout
	}
	return out
}

// smallestPositive is the smaller of two limits where zero means unlimited.
func smallestPositive[T int64 | time.Duration](a, b T) T {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

// minTime is the oldest timestamp a query may read under max_query_lookback:
// the start of every select is clamped to it, as Mimir does, so PromQL
// evaluates as if nothing older existed.
func (l queryLimits) minTime(now time.Time) int64 {
	if l.maxLookback <= 0 {
		return math.MinInt64
	}
	return now.Add(-l.maxLookback).UnixMilli()
}

// limitError is a query over a limit while it fetches. The Prometheus API
// answers it as it answers any error of a query's execution: 422, error
// type "execution", with this message.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

func isLimitError(err error) bool {
	var le *limitError
	return errors.As(err, &le)
}

// httpStatus is the status of a failed read answered outside the upstream
// API handler (federate, metadata): a query limit is 422 there too.
func httpStatus(err error) int {
	if isLimitError(err) {
		return http.StatusUnprocessableEntity
	}
	return apierr.HTTPStatus(err)
}

// checkQueryLength enforces max_query_length on the calls that take a time
// range: query_range, and series, labels and label values when both start
// and end are given (without them Prometheus reads all time, which Orrery
// leaves to the other limits). A missing or unparsable time is left to the
// upstream handler, whose error names it.
func checkQueryLength(r *http.Request, path string, limit time.Duration) error {
	if limit <= 0 {
		return nil
	}
	if path != "/query_range" && path != "/series" && path != "/labels" && !strings.HasPrefix(path, "/label/") {
		return nil
	}
	start, ok := formTime(r, "start")
	if !ok {
		return nil
	}
	end, ok := formTime(r, "end")
	if !ok {
		return nil
	}
	if length := end.Sub(start); length > limit {
		return apierr.New(apierr.BadData, "the query time range exceeds the limit (query length: %s, limit: %s) (err-orrery-%s: raise the tenant's max_query_length, or -querier.max-query-length)",
			length, limit, reasonMaxLength)
	}
	return nil
}

// formTime parses a time parameter as Prometheus does (web/api/v1
// parseTime); false when it is absent, invalid, or one of the boundary
// times that clients send to mean "unbounded".
func formTime(r *http.Request, name string) (time.Time, bool) {
	s := r.FormValue(name)
	if s == "" {
		return time.Time{}, false
	}
	t, err := promtime.Parse(s)
	if err != nil || t.Equal(v1.MinTime) || t.Equal(v1.MaxTime) {
		return time.Time{}, false
	}
	return t, true
}

// fetchLimiter holds one query to its tenants' max_fetched_series_per_query
// and max_fetched_samples_per_query while the ingesters stream to it. A
// series counts once however many ingesters (replicas) and selects return
// it; its samples count as the most that one ingester returned for it in
// one select, summed over the messages that ingester sent it in (an
// ingester sends the in-memory and the stored part of a series apart).
// Neither count then depends on the replication factor or on which replica
// answered first. Once over a limit, every further batch gets the same
// error, so all streams of the query stop. A nil *fetchLimiter (no limit
// set) accepts everything. Safe for concurrent use.
type fetchLimiter struct {
	maxSeries, maxSamples int64
	seed                  maphash.Seed
	rejected              func(reason string)

	mu      sync.Mutex
	series  map[uint64]struct{}
	samples int64
	err     error
	pushed  int64 // series read by pushed-down selects (addPushed)
}

// newFetchLimiter returns nil when neither limit is set: the common case
// then costs nothing. rejected is called once, when the query goes over.
func newFetchLimiter(l queryLimits, rejected func(reason string)) *fetchLimiter {
	if l.maxSeries <= 0 && l.maxSamples <= 0 {
		return nil
	}
	return &fetchLimiter{maxSeries: l.maxSeries, maxSamples: l.maxSamples, seed: maphash.MakeSeed(), rejected: rejected, series: map[uint64]struct{}{}}
}

// selectFetch is one select's account with its query's fetchLimiter.
type selectFetch struct {
	l      *fetchLimiter
	tenant string
	// samples is, per series, the most samples one ingester returned for
	// it; guarded by l.mu.
	samples map[uint64]int64
}

// newSelect opens the account of one select of tenant's data, or returns
// the error that already stopped the query.
func (l *fetchLimiter) newSelect(tenant string) (*selectFetch, error) {
	if l == nil {
		return nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, l.err
	}
	return &selectFetch{l: l, tenant: tenant, samples: map[uint64]int64{}}, nil
}

// ingesterFetch is the part of a select's account that one ingester's
// stream fills.
type ingesterFetch struct {
	f *selectFetch
	// sums is, per series, the samples this ingester sent so far; guarded
	// by f.l.mu.
	sums map[uint64]int64
}

// fromIngester opens the account of one ingester's answer to the select.
func (f *selectFetch) fromIngester() *ingesterFetch {
	if f == nil {
		return nil
	}
	return &ingesterFetch{f: f, sums: map[uint64]int64{}}
}

// addChunks accounts one message of series with chunks from the ingester
// and returns the limit error once the query is over a limit.
func (g *ingesterFetch) addChunks(batch []*ingesterpb.ChunkSeries) error {
	if g == nil {
		return nil
	}
	f, l := g.f, g.f.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	for _, s := range batch {
		h := l.seriesHash(f.tenant, s)
		if l.maxSeries > 0 {
			l.series[h] = struct{}{}
		}
		if l.maxSamples > 0 {
			g.sums[h] += chunkSamples(s.Chunks)
			if n := g.sums[h]; n > f.samples[h] {
				l.samples += n - f.samples[h]
				f.samples[h] = n
			}
		}
	}
	return l.check()
}

// addLabels accounts series fetched without chunks, for the series API.
func (f *selectFetch) addLabels(batch []*ingesterpb.Labels) error {
	if f == nil {
		return nil
	}
	l := f.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if l.maxSeries > 0 {
		for _, s := range batch {
			l.series[l.hash(f.tenant, s.Labels)] = struct{}{}
		}
	}
	return l.check()
}

// errPushedOverLimit says that the series or samples a pushed-down select
// has the ingesters evaluate would take the query over a limit.
var errPushedOverLimit = errors.New("querier: pushed-down series over the query's limit")

// addPushed accounts the series a pushed-down select has the ingesters
// evaluate, known by their digests only: series distinct series and
// samples the most any replica holds of each, summed. The series it
// merges here are counted by their select. Past a limit it adds nothing
// and returns errPushedOverLimit, without rejecting the query: by count,
// not by identity, a series that two selects read counts twice, so the
// query read whole decides.
func (l *fetchLimiter) addPushed(series int, samples int64) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if (l.maxSeries > 0 && int64(len(l.series))+l.pushed+int64(series) > l.maxSeries) ||
		(l.maxSamples > 0 && l.samples+samples > l.maxSamples) {
		return errPushedOverLimit
	}
	l.pushed += int64(series)
	l.samples += samples
	return nil
}

// check records the first limit the query went over. Called with l.mu held.
func (l *fetchLimiter) check() error {
	switch {
	case l.maxSeries > 0 && int64(len(l.series))+l.pushed > l.maxSeries:
		l.err = &limitError{fmt.Sprintf("the query exceeded the maximum number of series fetched (limit: %d) (err-orrery-%s: raise the tenant's max_fetched_series_per_query, or -querier.max-fetched-series-per-query)",
			l.maxSeries, reasonMaxSeries)}
		l.rejected(reasonMaxSeries)
	case l.maxSamples > 0 && l.samples > l.maxSamples:
		l.err = &limitError{fmt.Sprintf("the query exceeded the maximum number of samples fetched (limit: %d) (err-orrery-%s: raise the tenant's max_fetched_samples_per_query, or -querier.max-fetched-samples-per-query)",
			l.maxSamples, reasonMaxSamples)}
		l.rejected(reasonMaxSamples)
	}
	return l.err
}

// seriesHash identifies a streamed series of a tenant, from its labels
// packed or as pairs alike, so one series from an ingester of either kind
// counts once. Packed labels that do not decode hash as far as they do;
// reading the series reports the damage.
func (l *fetchLimiter) seriesHash(tenant string, cs *ingesterpb.ChunkSeries) uint64 {
	if len(cs.PackedLabels) == 0 {
		return l.hash(tenant, cs.Labels)
	}
	var h maphash.Hash
	h.SetSeed(l.seed)
	hashString(&h, tenant)
	ingesterpb.RangeLabels(cs.PackedLabels, func(name, value []byte) {
		hashBytes(&h, name)
		hashBytes(&h, value)
	})
	return h.Sum64()
}

// hash identifies a series of a tenant by its label pairs. Every name and
// value is length-prefixed, so distinct label sets hash apart whatever
// bytes they hold: packed labels are bytes, not protobuf strings, so not
// necessarily UTF-8, and a separator byte could occur in them.
func (l *fetchLimiter) hash(tenant string, ls []*ingesterpb.LabelPair) uint64 {
	var h maphash.Hash
	h.SetSeed(l.seed)
	hashString(&h, tenant)
	for _, p := range ls {
		hashString(&h, p.Name)
		hashString(&h, p.Value)
	}
	return h.Sum64()
}

func hashString(h *maphash.Hash, s string) {
	var n [binary.MaxVarintLen64]byte
	_, _ = h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	_, _ = h.WriteString(s)
}

func hashBytes(h *maphash.Hash, b []byte) {
	var n [binary.MaxVarintLen64]byte
	_, _ = h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
	_, _ = h.Write(b)
}

// chunkSamples counts the samples in chunks from their headers, without
// decoding them. A chunk that does not parse counts nothing here; decoding
// it reports the error.
func chunkSamples(chunks []*ingesterpb.Chunk) int64 {
	var n int64
	for _, c := range chunks {
		if chk, err := runchunk.FromData(chunkenc.Encoding(c.Encoding), c.Data); err == nil {
			n += int64(chk.NumSamples())
		}
	}
	return n
}
