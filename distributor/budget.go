package distributor

import (
	"sync/atomic"
	"unsafe"

	"github.com/prometheus/prometheus/model/histogram"

	"github.com/orrery/orrery/apierr"
)

// What a request's decoded form costs beyond the bytes of its label names
// and values, which are copied once into the push encoding: the slab entry
// of each label, sample, series and metadata entry, and the encoding's
// length prefixes. A body aliases its strings, so a two-byte field can cost
// fifty bytes, and a remote write 2.0 label reference of one byte can cost
// the whole length of the symbol it names: this is what is counted.
const (
	labelCost    = int(unsafe.Sizeof(rawLabel{})) + 4
	sampleCost   = int(unsafe.Sizeof(rawSample{})) + 18
	seriesCost   = int(unsafe.Sizeof(rawSeries{}) + unsafe.Sizeof(validSeries{}))
	symbolCost   = int(unsafe.Sizeof([]byte(nil)))
	refCost      = int(unsafe.Sizeof(uint32(0)))
	metadataCost = int(unsafe.Sizeof(rawMetadata{}))
	// A histogram is charged its slab entry, its decoded struct and the
	// push encoding's prefixes, histogramExpansion times its bytes, and
	// spanCost per span: a span decodes into a remote-write span (grown by
	// append), a histogram.Span and, until compacted, both again (measured:
	// 220 bytes allocated per empty span, TestAuditZeroLengthSpans...).
	histogramCost      = int(unsafe.Sizeof([]byte(nil))+unsafe.Sizeof(histogram.FloatHistogram{})) + 16
	histogramExpansion = 10
	spanCost           = 224
	exemplarCost       = int(unsafe.Sizeof(rawExemplar{})) + 24
)

// inflightChunk is how much a request takes from the in-flight budget at a
// time, so that a request does not touch the shared counter per label.
const inflightChunk = 256 << 10

// inflight is the memory all requests in flight hold, against a limit.
// Safe for concurrent use.
type inflight struct {
	limit int64 // 0: unlimited
	used  atomic.Int64
}

// take reserves n bytes, or reports false and reserves nothing when that
// would pass the limit.
func (b *inflight) take(n int64) bool {
	if b.limit <= 0 {
		b.used.Add(n)
		return true
	}
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *inflight) give(n int64) { b.used.Add(-n) }

// meter charges the memory one request takes, before it is allocated,
// against the request's own limit (decoded, not what the body holds) and
// the distributor's in-flight budget, when it has one. A nil meter charges
// nothing. Not safe
// for concurrent use: it belongs to one request.
type meter struct {
	limit   int // of decoded bytes; 0: unlimited
	decoded int
	held    int64 // taken from pool
	used    int64 // of held
	pool    *inflight
}

// hold charges n bytes of the body or its decompression: they count in
// flight, and the body's own limit bounds them.
func (m *meter) hold(n int) error {
	if m == nil {
		return nil
	}
	m.used += int64(n)
	if m.used <= m.held || m.pool == nil {
		return nil
	}
	chunk := max(m.used-m.held, inflightChunk)
	if !m.pool.take(chunk) {
		m.used -= int64(n)
		return overloaded{apierr.New(apierr.Unavailable, "the distributor holds %d bytes of requests in flight, its limit; retry later (%s: raise -distributor.instance-limits.max-inflight-push-requests-bytes, or add distributors)", m.pool.limit, errIDInflightBytes), "max_inflight_push_requests_bytes"}
	}
	m.held += chunk
	return nil
}

// add charges n bytes of the decoded request, checked against the
// request's limit before the in-flight budget.
func (m *meter) add(n int) error {
	if m == nil {
		return nil
	}
	m.decoded += n
	if m.limit > 0 && m.decoded > m.limit {
		return apierr.New(apierr.TooLarge, "the request takes more than %d bytes once decoded (%s: send smaller requests, or raise -distributor.max-request-decoded-bytes)", m.limit, errIDDecodedTooLarge)
	}
	return m.hold(n)
}

// release gives back everything the request took from the in-flight
// budget; the meter can then be reused.
func (m *meter) release() {
	if m.pool != nil {
		m.pool.give(m.held)
	}
	m.decoded, m.held, m.used = 0, 0, 0
}

// overloaded is the error of an instance limit: the distributor as a whole
// is full, whatever the tenant, so the answer is a 503 with Retry-After, as
// Mimir answers its instance limits, and not a tenant's 429.
type overloaded struct {
	error
	limit string // the metric label of the limit
}

func (o overloaded) Unwrap() error { return o.error }

// retryAfter is the Retry-After of an overloaded answer, in seconds: a
// request in flight takes about that long.
const retryAfter = "1"

// Stable IDs of the size and in-flight limits.
const (
	errIDDecodedTooLarge  = "err-orrery-request-decoded-too-large"
	errIDInflightBytes    = "err-orrery-distributor-max-inflight-push-requests-bytes"
	errIDInflightRequests = "err-orrery-distributor-max-inflight-push-requests"
)
